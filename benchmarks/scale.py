"""The operator at scale on the local control plane: every kind at once, sizes as flags.

Defaults (issue 16): 5,000 governed GPU Deployments (1 replica, 1 GPU) across 500 FinOpsPolicies
(budgetAction ScaleToZero, daily budget far away) in 50 namespaces, 2 SovereignRegions binding half
of the namespaces (their Deployments pinned to the region's nodes), and a 500-site EdgeFleet (one kwok
node per site). The real operator process runs through the counting proxy of reconcile_cost.py, so
its every request is counted on the wire; the apiserver's ``apiserver_request_total`` and the
operator's ``finops_api_requests_total`` are read too. Printed:

* start-up: operator started (policies, regions and Deployments already there) -> every policy has
  swept once and all N Deployments are governed; then -> all N pod ledger finalizers added;
* steady state over ``--sweeps`` sample intervals: per-policy reconcile seconds, handler seconds per
  interval for all policies, ticks achieved / ticks due (1.0 = every policy swept every interval),
  SovereignRegion audit seconds, requests per interval by verb and resource (wire, apiserver minus the
  cluster's background measured with the operator paused, and the handlers' own), operator CPU, RSS;
* budget breach -> replicas patched: one policy at a time, its dailyGPUHours lowered to 0 (the ledger
  is over the budget from that instant) -> the first and the last of its Deployments at 0 replicas, seen
  on a watch; p50/p99 over ``--breaches`` policies. A budget crossed by accrual is seen at the next
  timer tick, which adds up to one sample interval on top of this;
* EdgeFleet: first deployment to every site, then a 10/50/100% wave rollout: seconds and writes;
* side by side: every governed Deployment to zero and back, by this operator (every budget exhausted
  at once with ScaleToZero, then raised: the planner's restore, the one the window reset takes) and,
  with ``--downscaler``, by a downscaler CLI (``--down`` then ``--up``, through the same proxy with the
  operator paused): wall seconds and requests each, ratio printed;
* what the Kopf indexes keep per Deployment and per pod (tracemalloc on the real index functions).

    python benchmarks/scale.py                                       # issue 16's sizes, fresh cluster
    python benchmarks/scale.py --deployments 500 --policies 50 --namespaces 10 --sites 50
    python benchmarks/scale.py --existing ...                        # the cluster KUBECONFIG points at
    python benchmarks/scale.py --memory-only                         # index memory only, no cluster

Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from benchmarks.fleet_rollout import fleet_manifest, kubectl, request_counts, wait_settled
from benchmarks.reconcile_cost import (
    CountingProxy,
    Kube,
    Operator,
    Upstream,
    metric,
    naive_sweep,
    operator_through,
    paused_background,
    read_counters,
    say,
)
from benchmarks.reconcile_cost import deployment as base_deployment
from finops_operator.devcluster.cluster import LocalCluster
from finops_operator.devcluster.nodes import NodeSpec, node_manifest
from finops_operator.planners.sovereignty import merge_required_affinity
from finops_operator.planners.sovereignty import parse_spec as parse_region_spec
from tests.kopf_indexes import index_entry, index_handlers
from tests.kube import eventually, install_crds

REGIONS = ("eu-west-1", "eu-central-1")
BOUND_LABEL = "finops.dev/scale-region"
GROUP_LABEL = "finops.dev/scale-group"
PODS_PER_NODE = 250


@dataclass(frozen=True)
class Sizes:
    deployments: int
    policies: int
    namespaces: int
    sites: int

    def namespace(self, i: int) -> str:
        return f"scale-{i:03d}"

    def region_of(self, ns: int) -> str | None:
        """The first half of the namespaces is bound, alternately to each region."""
        return REGIONS[ns % len(REGIONS)] if ns < self.namespaces // 2 else None

    @property
    def groups(self) -> int:
        """Policies per namespace; policy ``g`` of a namespace selects its Deployments of group ``g``."""
        return self.policies // self.namespaces

    def placement(self) -> Iterator[tuple[int, int, int]]:
        """(namespace, deployment index, policy group in the namespace) of every Deployment."""
        for i in range(self.deployments):
            yield i % self.namespaces, i, (i // self.namespaces) % self.groups


def gpu_nodes(sizes: Sizes) -> list[NodeSpec]:
    count = math.ceil(sizes.deployments * 1.2 / PODS_PER_NODE) + len(REGIONS)
    return [
        NodeSpec(
            f"scale-gpu-{i:03d}",
            REGIONS[i % len(REGIONS)],
            gpus=PODS_PER_NODE,
            gpu_product="NVIDIA-H100-80GB-HBM3",
            cpu="1000",
            memory="8Ti",
            pods=str(PODS_PER_NODE + 10),
        )
        for i in range(count)
    ]


def site_nodes(sizes: Sizes) -> list[NodeSpec]:
    return [
        NodeSpec(
            f"scale-site-{i:04d}",
            REGIONS[0],
            site=f"site-{i:04d}",
            cpu="8",
            memory="32Gi",
            labels={"finops.dev/fleet-bench": "true"},
        )
        for i in range(sizes.sites)
    ]


def deployment(name: str, group: int, region_name: str | None) -> dict[str, Any]:
    """reconcile_cost's GPU Deployment, in policy group ``group``; in a bound namespace, as the
    operator's mutating webhook admits it (confined to the region's nodes). The benchmark runs without
    the webhook; Deployments created unconfined would each be repaired and rolled out at start-up,
    which measures the cluster's rollouts rather than the operator's steady state."""
    manifest = base_deployment(name)
    template = manifest["spec"]["template"]
    for labels in (manifest["metadata"]["labels"], template["metadata"]["labels"]):
        labels[GROUP_LABEL] = f"g{group}"
    if region_name is not None:
        template["spec"]["nodeSelector"] = {"topology.kubernetes.io/region": region_name}
        spec = parse_region_spec(region(region_name)["spec"])
        template["spec"] = merge_required_affinity(template["spec"], spec)[0]
    return manifest


def policy(namespace: str, group: int) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": f"p{group:03d}", "namespace": namespace},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"tier": "inference", GROUP_LABEL: f"g{group}"}},
            "costLimits": {"dailyGPUHours": 1_000_000, "budgetAction": "ScaleToZero"},
        },
    }


def region(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "metadata": {"name": f"scale-{name}"},
        "spec": {"region": name, "namespaceSelector": {"matchLabels": {BOUND_LABEL: name}}},
    }


def nodes_of(sizes: Sizes) -> list[NodeSpec]:
    return gpu_nodes(sizes) + site_nodes(sizes)


def wait_ready(kube: Kube, count: int) -> None:
    def ready() -> int:
        items = kube.apps.list_deployment_for_all_namespaces(label_selector="tier=inference").items
        return sum(1 for d in items if (d.status.ready_replicas or 0) >= 1)

    eventually(lambda: ready() >= count, timeout=3600, interval=10, what=f"{count} Ready Deployments")


def populate(kube: Kube, env: dict[str, str], sizes: Sizes, *, add_nodes: bool) -> None:
    """(Nodes,) namespaces, regions, policies, Deployments; returns once every Deployment is Ready."""
    if add_nodes:
        nodes = nodes_of(sizes)
        say(f"creating {len(nodes)} kwok nodes")
        kubectl(env, "apply", "-f", "-", stdin=yaml.safe_dump_all([node_manifest(n) for n in nodes]))
    for ns in range(sizes.namespaces):
        bound = sizes.region_of(ns)
        labels = {BOUND_LABEL: bound} if bound else {}
        kube.core.create_namespace({"metadata": {"name": sizes.namespace(ns), "labels": labels}})
    eventually(
        lambda: all(
            kube.core.list_namespaced_service_account(sizes.namespace(ns)).items
            for ns in range(sizes.namespaces)
        ),
        timeout=120,
        what="default service accounts",
    )
    for name in REGIONS:
        kube.custom.create_cluster_custom_object("finops.dev", "v1alpha1", "sovereignregions", region(name))
    for ns in range(sizes.namespaces):
        for group in range(sizes.groups):
            kube.custom.create_namespaced_custom_object(
                "finops.dev",
                "v1alpha1",
                sizes.namespace(ns),
                "finopspolicies",
                policy(sizes.namespace(ns), group),
            )
    say(f"creating {sizes.deployments} Deployments")
    started = time.monotonic()
    apps = kube.apps

    def create(placed: tuple[int, int, int]) -> None:
        ns, i, group = placed
        apps.create_namespaced_deployment(
            sizes.namespace(ns), deployment(f"m-{i:05d}", group, sizes.region_of(ns))
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, sizes.placement()))
    say(f"created in {time.monotonic() - started:.0f}s; waiting for them to be Ready")

    wait_ready(kube, sizes.deployments)
    say(f"{sizes.deployments} Deployments Ready {time.monotonic() - started:.0f}s after the first create")


# -- what the indexes keep (pure: the real index functions, no cluster) ------------------------------


def served_deployment(i: int, *, applied: bool) -> dict[str, Any]:
    """A Deployment as the API server returns it; ``applied``: created with kubectl apply, which
    stores the whole manifest in an annotation."""
    manifest = deployment(f"m-{i:05d}", 0, REGIONS[0])
    annotations = {"deployment.kubernetes.io/revision": "1"}
    if applied:
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(manifest)
    meta = {
        "namespace": "scale-000",
        "uid": f"{i:08d}-0000-4000-8000-000000000000",
        "annotations": annotations,
    }
    condition = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
    status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "conditions": [condition]}
    return {**manifest, "metadata": {**manifest["metadata"], **meta}, "status": status}


def served_pod(i: int) -> dict[str, Any]:
    template = deployment(f"m-{i:05d}", 0, REGIONS[0])["spec"]["template"]
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": f"m-{i:05d}-7d9f8c6b5",
        "controller": True,
    }
    running = {"running": {"startedAt": "2026-12-01T21:00:02Z"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"m-{i:05d}-7d9f8c6b5-abcde",
            "namespace": "scale-000",
            "uid": f"{i:08d}-0000-4000-8000-000000000001",
            "labels": {**template["metadata"]["labels"], "pod-template-hash": "7d9f8c6b5"},
            "finalizers": ["finops.dev/gpu-ledger"],
            "ownerReferences": [owner],
        },
        "spec": {**template["spec"], "nodeName": "scale-gpu-001"},
        "status": {
            "phase": "Running",
            "startTime": "2026-12-01T21:00:01Z",
            "containerStatuses": [{"name": "server", "ready": True, "state": running}],
        },
    }


def index_bytes(plural: str, make: Any, count: int = 2000) -> dict[str, float]:
    """Bytes each index keeps per object: ``count`` objects decoded from JSON (as off a watch), indexed,
    the bodies dropped; what tracemalloc still sees allocated, per object."""
    kept: dict[str, float] = {}
    for handler_id, handler in index_handlers(plural).items():
        raws = [json.dumps(make(i)) for i in range(count)]
        entries = []
        gc.collect()
        tracemalloc.start()
        for raw in raws:
            entries.append(index_entry(handler, json.loads(raw)))
        gc.collect()
        kept[handler_id] = tracemalloc.get_traced_memory()[0] / count
        tracemalloc.stop()
        del entries
    return kept


def import_rss_mb(*modules: str) -> float:
    """RSS of a fresh interpreter once ``modules`` are imported: the operator's floor before any object."""
    code = (
        f"import importlib; [importlib.import_module(m) for m in {list(modules)!r}]; "
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return int(done.stdout) / 1024


_INDEXED_RSS = """
import gc, importlib, json, sys
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024
import finops_operator.main
if {predictive}:
    importlib.import_module('forecasting.forecaster')  # what the first prediction imports
floor = rss()
from benchmarks.scale import served_deployment, served_pod
from tests.kopf_indexes import index_entry, index_handlers
handlers = {{p: index_handlers(p).values() for p in ('deployments', 'pods')}}
makers = {{'deployments': lambda i: served_deployment(i, applied=False), 'pods': served_pod}}
helpers = rss()
kept = []
for i in range({count}):
    for plural, make in makers.items():
        raw = json.loads(json.dumps(make(i)))
        kept.extend(index_entry(h, raw) for h in handlers[plural])
gc.collect()
print(json.dumps([floor, rss() - helpers, 'pandas' in sys.modules, 'statsmodels' in sys.modules]))
"""


def indexed_rss(count: int, *, predictive: bool) -> tuple[float, float, bool]:
    """A fresh interpreter's RSS once the operator is imported (and the forecasting stack, with
    ``predictive``), plus what its real index functions keep for ``count`` Deployments and ``count``
    pods (the benchmark's own helper modules left out): (floor MB, indexes MB, statsmodels loaded)."""
    code = _INDEXED_RSS.format(count=count, predictive=predictive)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    floor, indexes, _, statsmodels = json.loads(done.stdout.strip().splitlines()[-1])
    return floor, indexes, statsmodels


def index_memory(deployments: int) -> list[str]:
    rows = [
        ("Deployment", index_bytes("deployments", lambda i: served_deployment(i, applied=False))),
        (
            "Deployment (kubectl apply)",
            index_bytes("deployments", lambda i: served_deployment(i, applied=True)),
        ),
        ("GPU pod", index_bytes("pods", served_pod)),
    ]
    floor = import_rss_mb("finops_operator.main")
    kopf_only = import_rss_mb("kopf", "kubernetes", "pydantic", "aiohttp", "prometheus_client")
    forecasting = import_rss_mb("forecasting")
    lines = [
        f"RSS after imports, before any object: operator {floor:.0f} MB; kopf, kubernetes, pydantic, aiohttp,"
        f" prometheus_client alone {kopf_only:.0f} MB; the forecasting package alone {forecasting:.0f} MB",
        "index memory per object (tracemalloc, real index functions):",
    ]
    for what, kept in rows:
        detail = ", ".join(f"{k} {v:,.0f}" for k, v in kept.items() if v >= 1)
        lines.append(f"  {what:28s} {sum(kept.values()):7,.0f} B  ({detail})")
    lines.append(
        f"imports + indexes of {deployments:,} Deployments and {deployments:,} pods (no cluster; Kopf's own"
        " per-object state and the watch buffers come on top):"
    )
    for predictive in (False, True):
        floor, indexes, statsmodels = indexed_rss(deployments, predictive=predictive)
        lines.append(
            f"  {'predictive on ' if predictive else 'no predictive'}: {floor:.0f} MB imports"
            f" ({'with' if statsmodels else 'without'} statsmodels) + {indexes:.1f} MB indexes"
            f" = {floor + indexes:.0f} MB"
        )
    return lines


# -- measurements -------------------------------------------------------------------------------------


def client_limits() -> tuple[float, int]:
    """(qps, burst) the operator's client runs with: the environment's, else the client's defaults."""
    from finops_operator.settings import load_settings  # noqa: PLC0415 - reads FINOPS_* set by main

    settings = load_settings()
    return settings.client_qps, settings.client_burst


@dataclass
class Result:
    sizes: Sizes
    interval: float
    client: tuple[float, int] = (0.0, 0)
    populate_s: float = 0.0
    first_sweep_s: float = 0.0
    finalizers_s: float = 0.0
    quiet_s: float = 0.0
    startup_requests: int = 0
    window_s: float = 0.0
    ticks_due: float = 0.0
    ticks: float = 0.0
    policy_mean_s: float = 0.0
    handler_s_per_interval: float = 0.0
    audits: float = 0.0
    audit_mean_s: float = 0.0
    cpu_per_interval: float = 0.0
    rss_mb: float = 0.0
    rss_end_mb: float = 0.0
    naive_s: float = 0.0
    naive_mb: float = 0.0
    wire: dict[str, float] = field(default_factory=dict)
    apiserver: dict[str, float] = field(default_factory=dict)
    handlers: dict[str, float] = field(default_factory=dict)
    breach_first: list[float] = field(default_factory=list)
    breach_last: list[float] = field(default_factory=list)
    accrual_first: list[float] = field(default_factory=list)
    accrual_last: list[float] = field(default_factory=list)
    fleet_first_s: float = 0.0
    fleet_waves_s: float = 0.0
    fleet_writes: dict[str, int] = field(default_factory=dict)
    ours: DownUp | None = None
    theirs: DownUp | None = None


def _per(counts: Counter[Any], intervals: float) -> dict[str, float]:
    rows = {
        (" ".join(k) if isinstance(k, tuple) else str(k)).strip(): v / intervals for k, v in counts.items()
    }
    return {k: round(v, 2) for k, v in sorted(rows.items()) if abs(v) >= 0.005}


def handler_requests(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (name, labels), value in values.items():
        if name == "finops_api_requests_total":
            ls = dict(labels)
            out[f"{ls.get('verb', '')} {ls.get('resource', '')}"] += int(value)
    return out


def start_up(operator: Operator, proxy: CountingProxy, sizes: Sizes, started: float, result: Result) -> None:
    wire0, _ = proxy.snapshot()

    def swept() -> bool:
        m = operator.metrics()
        governed = [v for (n, _), v in m.items() if n == "finops_governed_workloads"]
        return len(governed) >= sizes.policies and sum(governed) >= sizes.deployments

    eventually(swept, timeout=1800, interval=0.5, what="first full sweep")
    result.first_sweep_s = time.monotonic() - started
    result.startup_requests = (proxy.snapshot()[0] - wire0).total()
    say(f"first full sweep {result.first_sweep_s:.1f}s after the operator started")
    eventually(
        lambda: (
            metric(operator.metrics(), "finops_api_requests_total", verb="patch", resource="pods")
            >= sizes.deployments
        ),
        timeout=1800,
        interval=0.5,
        what="pod ledger finalizers",
    )
    result.finalizers_s = time.monotonic() - started
    say(f"all pod finalizers {result.finalizers_s:.1f}s after the operator started")
    # Enforcing regions repair the pod templates of bound Deployments (admission would have injected
    # the required node affinity; the benchmark runs without the webhook), a rollout each: the steady
    # state starts once the handlers have written nothing for two intervals.
    deadline, last, quiet = time.monotonic() + 1800, -1.0, 0
    while quiet < 2 and time.monotonic() < deadline:
        now = metric(operator.metrics(), "finops_api_requests_total")
        quiet = quiet + 1 if now == last else 0
        last = now
        time.sleep(result.interval)
    result.quiet_s = time.monotonic() - started
    say(
        f"handlers quiet {result.quiet_s:.1f}s after the operator started"
        + ("" if quiet >= 2 else " (NOT: timed out)")
    )


def steady_state(
    kube: Kube,
    operator: Operator,
    upstream: Upstream,
    proxy: CountingProxy,
    *,
    sweeps: int,
    background: float,
    result: Result,
) -> None:
    interval = result.interval
    say(f"steady state: {sweeps} intervals of {interval:g}s")
    m0, (w0, _), a0, cpu0, t0 = read_counters(operator, proxy, upstream)
    time.sleep(sweeps * interval)
    m1, (w1, _), a1, cpu1, t1 = read_counters(operator, proxy, upstream)
    result.rss_mb = operator.rss_mb()
    say(f"operator paused: {background:g}s of the cluster's background requests")
    others, others_s = paused_background(operator, upstream, background)
    sizes = result.sizes
    naive = [naive_sweep(kube, sizes.namespace(ns)) for ns in range(sizes.namespaces)]
    result.naive_s = sum(n.seconds for n in naive)
    result.naive_mb = sum(n.bytes for n in naive) / 1e6
    operator.resume()

    def delta(name: str, **labels: str) -> float:
        return metric(m1, name, **labels) - metric(m0, name, **labels)

    result.window_s = t1 - t0
    intervals = result.window_s / interval
    result.ticks_due = intervals * result.sizes.policies
    result.ticks = delta("finops_reconcile_duration_seconds_count", kind="FinOpsPolicy")
    seconds = delta("finops_reconcile_duration_seconds_sum", kind="FinOpsPolicy")
    result.policy_mean_s = seconds / max(result.ticks, 1)
    result.handler_s_per_interval = seconds / intervals
    result.audits = delta("finops_reconcile_duration_seconds_count", kind="SovereignRegion")
    audit_s = delta("finops_reconcile_duration_seconds_sum", kind="SovereignRegion")
    result.audit_mean_s = audit_s / max(result.audits, 1)
    result.cpu_per_interval = (cpu1 - cpu0) / intervals
    result.wire = _per(w1 - w0, intervals)
    scale = (t1 - t0) / others_s
    api: Counter[tuple[str, ...]] = Counter(a1)
    api.subtract(a0)
    for key, count in others.items():
        api[key] -= round(count * scale)
    result.apiserver = _per(api, intervals)
    handlers = handler_requests(m1)
    handlers.subtract(handler_requests(m0))
    result.handlers = _per(handlers, intervals)


def _watch_zero(stream: Any, kube: Kube, target: tuple[str, str], count: int, zero: dict[str, float]) -> None:
    """Record when each selected Deployment is first seen at 0 replicas; stop once all ``count`` are."""
    namespace, selector = target
    for event in stream.stream(
        kube.apps.list_namespaced_deployment, namespace, label_selector=selector, timeout_seconds=120
    ):
        obj = event["object"]
        if (obj.spec.replicas or 0) == 0 and obj.metadata.name not in zero:
            zero[obj.metadata.name] = time.monotonic()
            if len(zero) >= count:
                stream.stop()


class Replicas:
    """spec.replicas of every governed Deployment, kept current by a watch, with when each last changed.

    A watch the API server stops feeding (seen on a loaded 2-core machine: no event, no close) is cut
    after ``STALL`` seconds without even a bookmark and opened again; the re-list stamps a change it
    missed with the time it was seen, later than it happened, and the log says so."""

    STALL = 90.0

    def __init__(self, kube: Kube, count: int) -> None:
        self.count = count
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}
        self._stopped = threading.Event()
        self._stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, args=(kube,), daemon=True)
        self._thread.start()

    def _run(self, kube: Kube) -> None:
        while not self._stopped.is_set():
            try:
                self._follow(kube)
            except ProtocolError:  # how the stream ends when stop() closes it
                pass
            except Exception as error:  # a stalled or expired watch is opened again
                say(f"replicas watch restarted after {type(error).__name__}")
            self._stream = watch.Watch()  # type: ignore[no-untyped-call]

    def _follow(self, kube: Kube) -> None:
        for event in self._stream.stream(
            kube.apps.list_deployment_for_all_namespaces,
            label_selector="tier=inference",
            timeout_seconds=7200,
            allow_watch_bookmarks=True,
            _request_timeout=(10, self.STALL),
        ):
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            key, replicas = (obj.metadata.namespace, obj.metadata.name), int(obj.spec.replicas or 0)
            with self._lock:
                if self._seen.get(key, (None, 0.0))[0] != replicas:
                    self._seen[key] = (replicas, time.monotonic())

    def stop(self) -> None:
        self._stopped.set()
        self._stream.stop()

    def reached(self, replicas: int) -> float | None:
        """When the last Deployment got to ``replicas``; None while some have not."""
        with self._lock:
            times = [at for value, at in self._seen.values() if value == replicas]
        return max(times) if len(times) >= self.count else None

    def wait(self, replicas: int, what: str) -> float:
        eventually(lambda: self.reached(replicas) is not None, timeout=1800, interval=0.5, what=what)
        reached = self.reached(replicas)
        assert reached is not None
        return reached


@dataclass
class DownUp:
    """Scale every governed Deployment to zero and back: seconds and requests on the wire each way."""

    down_s: float = 0.0
    up_s: float = 0.0
    down_requests: dict[str, int] = field(default_factory=dict)
    up_requests: dict[str, int] = field(default_factory=dict)


def _wire(proxy: CountingProxy, before: Counter[tuple[str, str]]) -> dict[str, int]:
    return {f"{v} {r}": c for (v, r), c in sorted((proxy.snapshot()[0] - before).items())}


def down_up(
    who: str, down: Callable[[], None], up: Callable[[], None], proxy: CountingProxy, replicas: Replicas
) -> DownUp:
    """``down`` then ``up``: from each call to the last governed Deployment at 0 (1) replicas, and the
    requests on the wire meanwhile."""
    result = DownUp()
    for step, target in ((down, 0), (up, 1)):
        before, started = proxy.snapshot()[0], time.monotonic()
        step()
        seconds = replicas.wait(target, f"{who}: every Deployment at {target}") - started
        requests = _wire(proxy, before)
        if target == 0:
            result.down_s, result.down_requests = seconds, requests
        else:
            result.up_s, result.up_requests = seconds, requests
        say(f"{who}: every Deployment at {target} replicas in {seconds:.1f}s")
    return result


def ours_down_up(kube: Kube, sizes: Sizes, proxy: CountingProxy, replicas: Replicas) -> DownUp:
    """Every policy's budget exhausted at once (dailyGPUHours 0: ScaleToZero), then raised again (the
    planner's restore, the same one the window reset takes)."""
    policies = [
        (sizes.namespace(ns), f"p{g:03d}") for ns in range(sizes.namespaces) for g in range(sizes.groups)
    ]

    def budget(hours: float) -> None:
        body = {"spec": {"costLimits": {"dailyGPUHours": hours}}}
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda p: patiently(
                        functools.partial(
                            kube.custom.patch_namespaced_custom_object,
                            "finops.dev",
                            "v1alpha1",
                            p[0],
                            "finopspolicies",
                            p[1],
                            body,
                        )
                    ),
                    policies,
                )
            )

    return down_up("ours", lambda: budget(0.0), lambda: budget(1_000_000.0), proxy, replicas)


def theirs_down_up(binary: str, proxy: CountingProxy, workdir: Path, replicas: Replicas) -> DownUp:
    """The downscaler CLI against the same cluster through the same counting proxy: --down, then --up."""
    env = {**os.environ, "KUBECONFIG": str(proxy.kubeconfig(workdir / "downscaler.kubeconfig"))}

    def run(flag: str) -> None:
        with (workdir / "downscaler.log").open("ab") as log:
            subprocess.run(
                [binary, flag, "--no-statefulsets"], env=env, stdout=log, stderr=log, check=True, timeout=1800
            )

    return down_up("theirs", lambda: run("--down"), lambda: run("--up"), proxy, replicas)


T = TypeVar("T")
# (connect, read) seconds for the harness's own requests: the API server's own limit is 60 s, so a read
# that waits longer will never be answered.
REQUEST_TIMEOUT = (10.0, 75.0)


def patiently(call: Callable[..., T], *, seconds: float = 180.0) -> T:
    """The benchmark's own request, retried while the API server is overloaded (a 2-core machine at
    5,000 Deployments answers some with 504 or 429, or not at all): the harness measures the operator
    and must not end, or hang, on the control plane's bad minute. ``call`` takes the kubernetes
    client's ``_request_timeout``, so a request nobody answers is cut and sent again."""
    deadline, delay = time.monotonic() + seconds, 1.0
    while True:
        try:
            return call(_request_timeout=REQUEST_TIMEOUT)
        except (ApiException, ProtocolError, ReadTimeoutError) as error:
            status = getattr(error, "status", None)
            if (status is not None and status not in (429, 500, 503, 504)) or time.monotonic() > deadline:
                raise
            say(f"API server busy ({status or type(error).__name__}); retrying in {delay:g}s")
            time.sleep(delay)
            delay = min(2 * delay, 15.0)


def _ledger(kube: Kube, namespace: str, name: str) -> tuple[float, float]:
    """(gpuHoursUsed, ledgerTime as a Unix time) of a policy's status."""
    status = patiently(
        functools.partial(
            kube.custom.get_namespaced_custom_object,
            "finops.dev",
            "v1alpha1",
            namespace,
            "finopspolicies",
            name,
        )
    )["status"]
    return float(status["gpuHoursUsed"]), datetime.fromisoformat(status["ledgerTime"]).timestamp()


def crossing_budget(kube: Kube, namespace: str, name: str, lead: float) -> tuple[float, float]:
    """A dailyGPUHours the ledger crosses by accrual ``lead`` seconds from now, and that instant (Unix
    time): the accrual rate from two consecutive samples of the policy's own status."""
    first = _ledger(kube, namespace, name)
    deadline = time.monotonic() + 60
    while (second := _ledger(kube, namespace, name))[1] <= first[1]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{namespace}/{name}: no new ledger sample in 60s")
        time.sleep(0.2)
    rate = (second[0] - first[0]) / (second[1] - first[1])
    crossing = time.time() + lead
    return second[0] + rate * (crossing - second[1]), crossing


def breaches(kube: Kube, sizes: Sizes, count: int, result: Result) -> None:
    """Exhaust one budget at a time, alternately by accrual (the budget set to what the ledger reaches
    three sample intervals later, so timer ticks come in between and the last one before the crossing
    projects it, as for a budget that runs out while nobody touches the policy) and by lowering it
    below the ledger (dailyGPUHours 0: the spec change's reconcile finds it); from that instant to the
    first and the last of the policy's Deployments at 0 replicas, as a watch sees them."""
    for b in range(min(count, sizes.policies)):
        ns, group = b % sizes.namespaces, (b // sizes.namespaces) % sizes.groups
        namespace, name, selector = sizes.namespace(ns), f"p{group:03d}", f"{GROUP_LABEL}=g{group}"
        names = {
            d.metadata.name
            for d in patiently(
                functools.partial(kube.apps.list_namespaced_deployment, namespace, label_selector=selector)
            ).items
        }
        zero: dict[str, float] = {}
        stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
        thread = threading.Thread(
            target=_watch_zero, args=(stream, kube, (namespace, selector), len(names), zero), daemon=True
        )
        thread.start()
        time.sleep(1)  # the watch is open and its initial ADDED events (replicas 1) are through
        accrual = b % 2 == 0
        if accrual:
            hours, crossing = crossing_budget(kube, namespace, name, lead=3 * result.interval)
        else:
            hours, crossing = 0.0, time.time()
        patch = {"spec": {"costLimits": {"dailyGPUHours": hours}}}
        patiently(
            functools.partial(
                kube.custom.patch_namespaced_custom_object,
                "finops.dev",
                "v1alpha1",
                namespace,
                "finopspolicies",
                name,
                patch,
            )
        )
        thread.join(120)
        stream.stop()
        if len(zero) < len(names):
            say(f"breach {b}: only {len(zero)}/{len(names)} Deployments scaled to zero in 120s")
            continue
        crossed = time.monotonic() - (time.time() - crossing)
        first, last = min(zero.values()) - crossed, max(zero.values()) - crossed
        (result.breach_first if not accrual else result.accrual_first).append(first)
        (result.breach_last if not accrual else result.accrual_last).append(last)
        how = "accrual" if accrual else "lowered"
        say(f"breach {b} by {how} ({namespace}/{name}, {len(names)} Deployments): {last:.2f}s")


def fleet(env: dict[str, str], sites: int, result: Result) -> None:
    say(f"EdgeFleet: first deployment to {sites} sites")
    kubectl(env, "apply", "-f", "-", stdin=fleet_manifest("v1", [100], 0))
    result.fleet_first_s, stable = wait_settled(env, sites, None, timeout=1800)
    say(f"EdgeFleet on {sites} sites in {result.fleet_first_s:.1f}s; rolling v2 out in waves 10/50/100%")
    before = request_counts(env)
    kubectl(env, "apply", "-f", "-", stdin=fleet_manifest("v2", [10, 50, 100], 3))
    result.fleet_waves_s, _ = wait_settled(env, sites, stable, timeout=1800)
    result.fleet_writes = dict(request_counts(env) - before)


# -- report -------------------------------------------------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.3f}" if baseline > 0 else "n/a"


def side_by_side(r: Result) -> list[str]:
    if r.ours is None:
        return []
    lines = [
        f"scale all {r.sizes.deployments:,} Deployments to zero and back (wall s, requests on the wire):"
    ]
    rows = [("ours (ScaleToZero, budget raised)", r.ours)] + (
        [("downscaler CLI", r.theirs)] if r.theirs else []
    )
    for name, run in rows:
        down, up = sum(run.down_requests.values()), sum(run.up_requests.values())
        lines.append(f"  {name:36s} down {run.down_s:7.1f}s {down:6,d} req; up {run.up_s:7.1f}s {up:6,d} req")
        lines.append(f"    down {run.down_requests}")
        lines.append(f"    up   {run.up_requests}")
    if r.theirs is not None:
        o, t = r.ours, r.theirs
        ours_req = sum(o.down_requests.values()) + sum(o.up_requests.values())
        theirs_req = sum(t.down_requests.values()) + sum(t.up_requests.values())
        lines.append(
            f"  ours/theirs: wall {_ratio(o.down_s + o.up_s, t.down_s + t.up_s)}, "
            f"requests {_ratio(ours_req, theirs_req)}"
        )
    return [*lines, ""]


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(r: Result, memory: Sequence[str]) -> str:
    s = r.sizes
    per_policy = s.deployments // max(s.policies, 1)

    def quantiles(values: Sequence[float]) -> str:
        return f"p50 {_quantile(values, 0.5):.2f}s p99 {_quantile(values, 0.99):.2f}s"

    worst = max(_quantile(r.accrual_last, 0.99), _quantile(r.breach_last, 0.99))
    kept_up = r.ticks >= 0.95 * r.ticks_due and r.handler_s_per_interval < r.interval
    core = r.cpu_per_interval / r.interval
    writes = dict(sorted(r.fleet_writes.items()))
    at = "" if s.deployments >= 5000 else f" (at {s.deployments:,}, not 5,000)"
    lines = [
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; {s.deployments:,} Deployments, "
        f"{s.policies:,} policies, {s.namespaces} namespaces, {len(REGIONS)} SovereignRegions binding "
        f"{s.namespaces // 2} namespaces, {s.sites} edge sites; sample interval {r.interval:g}s",
        "",
        f"populate (nodes .. all Deployments Ready):     {r.populate_s:8.1f} s",
        f"operator start -> first full sweep:            {r.first_sweep_s:8.1f} s",
        f"operator start -> all pod ledger finalizers:   {r.finalizers_s:8.1f} s",
        f"operator start -> handlers quiet (repairs done): {r.quiet_s:8.1f} s",
        f"requests on the wire to the first full sweep:  {r.startup_requests:8,d}",
        f"operator client: qps {r.client[0]:g}, burst {r.client[1]}: {s.deployments:,} writes (one per"
        f" Deployment or pod) take at least {max(0.0, (s.deployments - r.client[1]) / r.client[0]):.1f}s",
        "",
        f"steady state, {r.window_s:.0f}s window:",
        f"  FinOpsPolicy ticks / due:         {r.ticks:.0f} / {r.ticks_due:.0f}"
        f" = {r.ticks / max(r.ticks_due, 1):.2f}",
        f"  reconcile per policy (mean):      {r.policy_mean_s * 1000:8.2f} ms",
        f"  all policies, handler s/interval: {r.handler_s_per_interval:8.3f} s of {r.interval:g} s",
        f"  SovereignRegion audit (mean):     {r.audit_mean_s * 1000:8.2f} ms ({r.audits:.0f} audits)",
        f"  naive baseline, same run (LIST deployments, pods, HPAs of each namespace, typed objects):"
        f" {3 * s.namespaces} requests, {r.naive_mb:.1f} MB, {r.naive_s:.3f} s per interval;"
        f" ours/naive: requests {_ratio(sum(r.wire.values()), 3 * s.namespaces)},"
        f" seconds {_ratio(r.handler_s_per_interval, r.naive_s)}",
        f"  operator CPU per interval:        {r.cpu_per_interval:8.3f} s ({core:.0%} of one core)",
        f"  operator RSS:                     {r.rss_mb:8.0f} MB (after the EdgeFleet {r.rss_end_mb:.0f} MB)",
        f"  requests per interval (wire):     {sum(r.wire.values()):8.2f}  {r.wire}",
        f"  apiserver per interval, delta - background (all clients): {r.apiserver}",
        f"  handlers' own (finops_api_requests_total) per interval: {r.handlers}",
        "",
        f"budget breach -> replicas patched, one policy at a time, {per_policy} Deployments each:",
        f"  by accrual ({len(r.accrual_last)}, from the ledger crossing; a sample at the projected instant):"
        f" first Deployment {quantiles(r.accrual_first)}, last {quantiles(r.accrual_last)}",
        f"  budget lowered below the ledger ({len(r.breach_last)}, the spec change's reconcile finds it):"
        f" first Deployment {quantiles(r.breach_first)}, last {quantiles(r.breach_last)}",
        f"EdgeFleet: first deployment {r.fleet_first_s:.1f}s; waves 10/50/100% (soak 3s) "
        f"{r.fleet_waves_s:.1f}s, {sum(writes.values())} writes {writes}",
        "",
        *side_by_side(r),
        *memory,
        "",
        "goals:",
        f"  every policy swept every interval: {met(kept_up)}",
        f"  breach -> patch p99 <= 2 s (last Deployment, both ways): {met(worst <= 2)}",
        f"  RSS <= 250 MB: {met(r.rss_mb <= 250)}{at}",
        "  steady-state requests independent of N: compare the per-interval rows across sizes",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def cluster_env(
    existing: bool, directory: Path, nodes: Sequence[NodeSpec], controller_qps: int | None
) -> Iterator[dict[str, str]]:
    if existing:
        if not os.environ.get("KUBECONFIG"):
            raise SystemExit("--existing needs KUBECONFIG")
        yield dict(os.environ)
        return
    cluster = LocalCluster(directory, progress=lambda m: say(f"cluster: {m}"), controller_qps=controller_qps)
    try:
        yield {**os.environ, "KUBECONFIG": str(cluster.up(nodes=nodes).kubeconfig)}
    finally:
        cluster.down(quiet=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--policies", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--interval", type=float, default=5.0, help="operator sample interval (s)")
    parser.add_argument("--sweeps", type=int, default=14, help="intervals in the steady-state window")
    parser.add_argument("--background", type=float, default=20.0, help="background window (s)")
    parser.add_argument("--breaches", type=int, default=20)
    parser.add_argument("--existing", action="store_true", help="use the cluster KUBECONFIG points at")
    parser.add_argument(
        "--side-by-side",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every Deployment to zero and back (ours, and --downscaler's)",
    )
    parser.add_argument(
        "--downscaler",
        help="a downscaler CLI taking --down/--up (kubedownscaler's kubectl-downscale) to run side by side",
    )
    parser.add_argument("--memory-only", action="store_true", help="only the index memory (no cluster)")
    parser.add_argument(
        "--client-qps", type=float, help="the operator's FINOPS_CLIENT_QPS (default: its own)"
    )
    parser.add_argument("--client-burst", type=int, help="the operator's FINOPS_CLIENT_BURST")
    parser.add_argument(
        "--cluster-qps",
        type=int,
        default=200,
        help="the local controller-manager's and scheduler's API rate (their defaults, 20 and 50 per "
        "second, make creating thousands of Deployments take most of the run); 0: their defaults",
    )
    args = parser.parse_args(argv)
    for variable, value in (
        ("FINOPS_CLIENT_QPS", args.client_qps),
        ("FINOPS_CLIENT_BURST", args.client_burst),
    ):
        if value is not None:  # the operator process inherits the environment
            os.environ[variable] = str(value)
    # The operator process runs with the allocator setting of its image (deploy/Dockerfile).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    if args.policies < args.namespaces or args.policies % args.namespaces:
        parser.error("--policies must be a multiple of --namespaces (the same policies in each)")
    sizes = Sizes(args.deployments, args.policies, args.namespaces, args.sites)
    result = Result(sizes, args.interval, client=client_limits())
    workdir = Path(tempfile.mkdtemp(prefix="finops-scale-"))
    memory = index_memory(args.deployments)
    print("\n".join(memory), flush=True)
    if args.memory_only:
        return 0
    try:
        with cluster_env(
            args.existing, workdir / "cluster", nodes_of(sizes), args.cluster_qps or None
        ) as env:
            kubeconfig = Path(env["KUBECONFIG"])
            kube = Kube.connect(kubeconfig)
            install_crds(kube.cluster)
            started = time.monotonic()
            populate(kube, env, sizes, add_nodes=args.existing)
            result.populate_s = time.monotonic() - started
            upstream = Upstream.from_kubeconfig(kubeconfig)
            proxy = CountingProxy(upstream)
            proxy.start()
            try:
                started = time.monotonic()
                with operator_through(
                    proxy.kubeconfig(workdir / "proxy.kubeconfig"), workdir, args.interval
                ) as op:
                    start_up(op, proxy, sizes, started, result)
                    steady_state(
                        kube,
                        op,
                        upstream,
                        proxy,
                        sweeps=args.sweeps,
                        background=args.background,
                        result=result,
                    )
                    if args.side_by_side:
                        replicas = Replicas(kube, sizes.deployments)
                        try:
                            result.ours = ours_down_up(kube, sizes, proxy, replicas)
                            if args.downscaler:
                                op.pause()  # the proxy counts the downscaler's requests alone
                                try:
                                    result.theirs = theirs_down_up(args.downscaler, proxy, workdir, replicas)
                                finally:
                                    op.resume()
                        finally:
                            replicas.stop()
                        wait_ready(kube, sizes.deployments)  # and the operator through its backlog
                        time.sleep(2 * args.interval)
                    breaches(kube, sizes, args.breaches, result)
                    if sizes.sites:
                        fleet(env, sizes.sites, result)
                    result.rss_end_mb = op.rss_mb()
            finally:
                proxy.stop()
    finally:
        print(report(result, memory))
        say(f"operator log and cluster state under {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
