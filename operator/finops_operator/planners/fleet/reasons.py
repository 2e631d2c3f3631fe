"""Condition and Event reasons of EdgeFleet, and how site lists are quoted in messages."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

MAX_LISTED_SITES = 10
"""Site names quoted in condition messages and events before the list is cut short."""


class FleetReason:
    """Condition reasons specific to EdgeFleet (Argo CD health reads Ready, Progressing, Degraded)."""

    ALL_SITES_READY = "AllSitesReady"
    SITES_NOT_READY = "SitesNotReady"
    ALL_SITES_OFFLINE = "AllSitesOffline"
    NO_SITES = "NoSites"
    DEPLOYING = "Deploying"
    WAVE_IN_PROGRESS = "WaveInProgress"
    PAUSED = "Paused"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_UNAVAILABLE = "RollbackUnavailable"
    SITES_FAILING = "SitesFailing"
    HEALTHY = "Healthy"
    GATE_REFUSED = "GateRefused"


class FleetEventReason:
    """Reasons of the Kubernetes events the plan asks the handler to post."""

    ROLLOUT_STARTED = "RolloutStarted"
    WAVE_STARTED = "WaveStarted"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_UNAVAILABLE = "RollbackUnavailable"
    SITES_ADDED = "SitesAdded"
    SITES_REMOVED = "SitesRemoved"
    POLICY_NOT_FOUND = "PolicyNotFound"
    GATE_REFUSED = "GateRefused"


class FleetEvent(NamedTuple):
    type: str
    reason: str
    message: str


def listed(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:MAX_LISTED_SITES])
    return shown + (f" (+{len(items) - MAX_LISTED_SITES} more)" if len(items) > MAX_LISTED_SITES else "")


def seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
