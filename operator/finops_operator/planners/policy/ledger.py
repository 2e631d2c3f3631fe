"""The GPU-hour ledger: how many GPU-hours (and how much money) the governed workloads used in the
current budget window.

The ledger is a running sum kept in the policy's status together with the instant it is accounted up
to (``accountedUntil``). Each sample adds, for every pod, its GPUs times the part of its running
interval that falls after that instant. Pods carry a finalizer while they are governed, so a pod
deleted while the operator is down is still there, with its ``deletionTimestamp`` as the end of its
interval, when the operator comes back: the sum is exact across restarts and ``kill -9``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finops_operator.api.common import parse_timestamp
from finops_operator.api.finopspolicy import Pricing
from finops_operator.workloads.owners import owner_key
from finops_operator.workloads.resources import gpus_in_pod_spec

LEDGER_FINALIZER = "finops.dev/gpu-ledger"
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class LedgerPod:
    """A pod as the ledger needs it."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    gpus: int = 0
    node_name: str | None = None
    running_since: datetime | None = None
    """When its containers started (unset while Pending)."""
    ended_at: datetime | None = None
    """deletionTimestamp, or when its containers finished; unset while it runs."""
    has_finalizer: bool = False
    owner: str | None = None
    """The workload controlling the pod (``workload_key``: the Deployment through its ReplicaSet, the
    StatefulSet, the Job), when it has one; None for a pod nothing recreates (a bare pod)."""


def ledger_pod(
    *,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> LedgerPod:
    """LedgerPod from a pod as the API server returns it: the running interval from its containers'
    start and finish, else its deletion; GPUs and owner by the shared rules."""
    states = [cs.get("state") or {} for cs in status.get("containerStatuses") or []]
    starts = [
        parse_timestamp(s[k].get("startedAt")) for s in states for k in ("running", "terminated") if k in s
    ]
    started = min((t for t in starts if t), default=None)
    if started is None and status.get("phase") == "Running":
        started = parse_timestamp(status.get("startTime"))
    finished = [parse_timestamp(s["terminated"].get("finishedAt")) for s in states if "terminated" in s]
    ended: datetime | None = None
    if status.get("phase") in ("Succeeded", "Failed"):
        ended = max((t for t in finished if t), default=None) or parse_timestamp(
            meta.get("deletionTimestamp")
        )
    elif meta.get("deletionTimestamp"):
        ended = parse_timestamp(meta.get("deletionTimestamp"))
    return LedgerPod(
        namespace=namespace,
        name=name,
        labels=dict(labels),
        gpus=gpus_in_pod_spec(spec),
        node_name=spec.get("nodeName"),
        running_since=started,
        ended_at=ended,
        has_finalizer=LEDGER_FINALIZER in (meta.get("finalizers") or []),
        owner=owner_key(meta.get("ownerReferences"), labels),
    )


@dataclass(frozen=True)
class Usage:
    """GPU-hours, their cost, and the idle part of those GPU-hours."""

    gpu_hours: float = 0.0
    cost: float = 0.0
    idle_gpu_hours: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.gpu_hours + other.gpu_hours,
            self.cost + other.cost,
            self.idle_gpu_hours + other.idle_gpu_hours,
        )


@dataclass(frozen=True)
class Ledger:
    """GPU use of one policy's workloads in one window."""

    window_start: datetime
    accounted_until: datetime
    gpu_hours: float = 0.0
    cost: float = 0.0
    by_workload: Mapping[str, float] = field(default_factory=dict)
    usage_by_workload: Mapping[str, Usage] = field(default_factory=dict)
    """GPU-hours, cost and idle GPU-hours per workload (showback); ``by_workload`` is its GPU-hours."""

    @property
    def idle_gpu_hours(self) -> float:
        return sum(u.idle_gpu_hours for u in self.usage_by_workload.values())


@dataclass(frozen=True)
class LedgerAdvance:
    ledger: Ledger
    running_gpus: int
    """GPUs running right now: the burn rate in GPU-hours per hour."""
    cost_per_hour: float
    """Current spend rate at the pods' prices."""
    releasable: tuple[LedgerPod, ...]
    """Ended pods that the *persisted* ledger already covers to their end: their finalizer may go now.
    (Pods ending in this sample wait one more sample, until the ledger that counts them is stored.)"""


def gpu_hours_between(pod: LedgerPod, since: datetime, until: datetime) -> float:
    """GPU-hours the pod used within [since, until)."""
    if pod.gpus <= 0 or pod.running_since is None:
        return 0.0
    start = max(pod.running_since, since)
    end = min(pod.ended_at or until, until)
    seconds = (end - start).total_seconds()
    return pod.gpus * seconds / SECONDS_PER_HOUR if seconds > 0 else 0.0


def hourly_rate(pricing: Pricing | None, gpu_product: str | None) -> float:
    """Price of one GPU-hour on a node with ``gpu_product``; the default rate when not priced."""
    if pricing is None:
        return 0.0
    if gpu_product is not None and gpu_product in pricing.gpu_product_rates:
        return pricing.gpu_product_rates[gpu_product]
    return pricing.gpu_hourly_rate


def advance_ledger(
    *,
    previous: Ledger | None,
    window_start: datetime,
    pods_by_workload: Mapping[str, Sequence[LedgerPod]],
    gpu_product_of_node: Mapping[str, str],
    pricing: Pricing | None,
    now: datetime,
    pod_utilization: Mapping[str, float] | None = None,
) -> LedgerAdvance:
    """Account GPU use up to ``now``. Pure.

    A ledger from an earlier window is dropped (its window was billed); a new window starts at its
    reset time, so a policy created mid-day, or an operator back after a night away, counts every
    GPU-hour of today that the pods still show. ``pod_utilization`` (GPU utilisation in percent by
    pod name) splits off the idle part of the GPU-hours: held but unused.
    """
    if previous is None or previous.window_start != window_start:
        previous = Ledger(window_start=window_start, accounted_until=window_start)
    since = min(previous.accounted_until, now)
    by_workload = dict(previous.by_workload)
    usage = dict(previous.usage_by_workload)
    gpu_hours, cost, running_gpus, cost_per_hour = previous.gpu_hours, previous.cost, 0, 0.0
    releasable: list[LedgerPod] = []
    for workload, pods in sorted(pods_by_workload.items()):
        for pod in pods:
            rate = hourly_rate(pricing, gpu_product_of_node.get(pod.node_name or ""))
            used = gpu_hours_between(pod, since, now)
            if used:
                by_workload[workload] = by_workload.get(workload, 0.0) + used
                gpu_hours += used
                cost += used * rate
                busy = (pod_utilization or {}).get(pod.name)
                added = Usage(
                    used,
                    used * rate,
                    used * (1 - min(max(busy, 0.0), 100.0) / 100) if busy is not None else 0.0,
                )
                usage[workload] = usage.get(workload, Usage(by_workload[workload] - used)) + added
            if pod.running_since is not None and pod.ended_at is None:
                running_gpus += pod.gpus
                cost_per_hour += pod.gpus * rate
            if pod.ended_at is not None and pod.ended_at <= since:
                releasable.append(pod)
    ledger = Ledger(
        window_start=window_start,
        accounted_until=max(now, previous.accounted_until),
        gpu_hours=gpu_hours,
        cost=cost,
        by_workload=by_workload,
        usage_by_workload=usage,
    )
    return LedgerAdvance(ledger, running_gpus, cost_per_hour, tuple(releasable))
