"""Leader election over a coordination.k8s.io/v1 Lease, as data: who holds it, and what to write.

One replica holds the Lease and acts (reconciles, writes); the others wait. The holder renews every
``renew_seconds``; a Lease not renewed for ``duration_seconds`` is free, and the first replica to
write it (guarded by its resourceVersion, so exactly one of two racing replicas wins) holds it.
These are client-go's rules, so ``kubectl get lease`` reads the same as for any controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from finops_operator.api.common import parse_timestamp

API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseDecision:
    """``write`` is the Lease to create (no resourceVersion) or update (with it), or None: wait."""

    leader: bool
    write: Mapping[str, Any] | None
    holder: str | None


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plan_lease(
    current: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    identity: str,
    duration_seconds: int,
    now: datetime,
) -> LeaseDecision:
    """Renew our Lease, take a free or expired one, or wait for the holder's to expire."""
    spec = (current or {}).get("spec") or {}
    holder = spec.get("holderIdentity") or None
    renewed = parse_timestamp(spec.get("renewTime")) or parse_timestamp(spec.get("acquireTime"))
    lasts = timedelta(seconds=int(spec.get("leaseDurationSeconds") or duration_seconds))
    expired = holder is None or renewed is None or renewed + lasts <= now
    if holder not in (identity, None) and not expired:
        return LeaseDecision(leader=False, write=None, holder=holder)
    ours = holder == identity and not expired
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if current is not None:
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
    transitions = int(spec.get("leaseTransitions") or 0)
    lease = {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration_seconds,
            "acquireTime": spec.get("acquireTime") if ours else _stamp(now),
            "renewTime": _stamp(now),
            "leaseTransitions": transitions if ours or current is None else transitions + 1,
        },
    }
    return LeaseDecision(leader=True, write=lease, holder=identity)
