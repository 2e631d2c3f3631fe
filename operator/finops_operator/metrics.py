"""Every Prometheus metric the operator exports, in one place, with the ``finops_`` prefix.

Callers use the ``record_*``/``forget_*`` helpers, never the metric objects, so label sets stay
consistent and series of deleted objects are removed.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

RECONCILE_SECONDS = Histogram(
    "finops_reconcile_duration_seconds",
    "Time spent reconciling one object. Labels: kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GOVERNED_WORKLOADS = Gauge(
    "finops_governed_workloads",
    "Deployments governed by a FinOpsPolicy. Labels: namespace, policy.",
    ["namespace", "policy"],
)
STATUS_WRITES = Counter(
    "finops_status_writes_total",
    "Status patches written (only when the status changed). Labels: kind.",
    ["kind"],
)


def record_reconcile(kind: str, seconds: float) -> None:
    RECONCILE_SECONDS.labels(kind=kind).observe(seconds)


def record_status_write(kind: str) -> None:
    STATUS_WRITES.labels(kind=kind).inc()


def record_policy(namespace: str, policy: str, governed: int) -> None:
    GOVERNED_WORKLOADS.labels(namespace=namespace, policy=policy).set(governed)


def forget_policy(namespace: str, policy: str) -> None:
    GOVERNED_WORKLOADS.remove(namespace, policy)


def serve(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics from a background thread (prometheus_client's own server)."""
    start_http_server(port, addr=addr, registry=registry)
