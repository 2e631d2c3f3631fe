"""Holding the leader Lease: try, renew, step down (decisions in ``planners.lease``).

Why a Lease and not Kopf peering: peering is not leader election (replicas of equal priority all
pause, so two identical Deployment replicas would both stop), and a paused Kopf stops its watch
streams, so a standby's indexes would go stale while it keeps answering admission. With a Lease the
standby runs a Kopf instance that only indexes and serves admission (no change handlers, so it never
writes a finalizer or an annotation), and the leader runs the full operator.

A leader that cannot renew for ``renew deadline`` (2/3 of the duration, as client-go) steps down
before anyone else may take over, so two replicas never act at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.lease import API_VERSION, plan_lease
from finops_operator.settings import Settings

logger = logging.getLogger(__name__)


def identity() -> str:
    """The pod's name (downward API ``POD_NAME``) when in a cluster, else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Leadership:
    """One replica's view of the Lease; ``step`` runs in a thread (synchronous API calls)."""

    kube: KubeClient
    settings: Settings
    me: str = field(default_factory=identity)
    renewed_at: float | None = None
    """Monotonic time of our last successful write of the Lease."""
    holder: str | None = None
    """Who held the Lease when we last looked."""

    @property
    def namespace(self) -> str:
        return self.settings.own_namespace or "default"

    def step(self) -> bool:
        """Take or renew the Lease if we may; True while we hold it."""
        current = self.kube.get(API_VERSION, "Lease", self.namespace, self.settings.lease_name)
        decision = plan_lease(
            current,
            name=self.settings.lease_name,
            namespace=self.namespace,
            identity=self.me,
            duration_seconds=self.settings.lease_duration_seconds,
            now=datetime.now(UTC),
        )
        self.holder = decision.holder
        if decision.write is None:
            return False
        try:
            if current is None:
                self.kube.create(decision.write)
            else:
                self.kube.replace(decision.write)
        except ApiException as error:
            if error.status in (404, 409):  # another replica wrote first: it holds the Lease
                self.holder = "another replica"
                return False
            raise
        self.renewed_at = time.monotonic()
        return True

    def release(self) -> None:
        """On a clean exit: hand the Lease over at once instead of after it expires."""
        current = self.kube.get(API_VERSION, "Lease", self.namespace, self.settings.lease_name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != self.me:
            return
        current["spec"]["holderIdentity"] = None
        current["spec"]["renewTime"] = None
        self.kube.replace(current)


async def hold(leadership: Leadership, acquired: asyncio.Event, lost: asyncio.Event) -> None:
    """Retry every 2 s until ``acquired``; then renew every third of the duration and set ``lost``
    (and return) once renewing failed for the renew deadline or another replica holds the Lease."""
    duration = leadership.settings.lease_duration_seconds
    deadline = duration * 2 / 3
    while True:
        try:
            holding = await asyncio.to_thread(leadership.step)
        except Exception as error:
            logger.warning("Lease %s: %s", leadership.settings.lease_name, error)
            holding = False
        if holding and not acquired.is_set():
            logger.info("Lease %s acquired by %s", leadership.settings.lease_name, leadership.me)
            acquired.set()
        if acquired.is_set() and not holding:
            since = time.monotonic() - (leadership.renewed_at or 0.0)
            if since >= deadline or leadership.holder not in (None, leadership.me):
                logger.warning(
                    "Lease %s lost by %s: stepping down", leadership.settings.lease_name, leadership.me
                )
                lost.set()
                return
        await asyncio.sleep(duration / 3 if acquired.is_set() else 2.0)
