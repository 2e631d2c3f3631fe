"""Kopf handlers: fetch observed state, call a planner, apply its plan, write status and Events.
No decisions are made here."""
