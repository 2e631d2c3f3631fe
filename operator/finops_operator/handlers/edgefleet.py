"""Handlers for the edgefleet kind (being built: see the issue); the pure planner is in planners/."""

from __future__ import annotations

import kopf

from finops_operator.settings import Settings


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the reconcilers (none yet)."""


def register_admission(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the admission webhooks (none yet)."""
