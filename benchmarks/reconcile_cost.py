"""Reconcile cost of the FinOpsPolicy operator at 100 / 1,000 governed Deployments.

For each size N: N Deployments (1 replica, 1 GPU each) selected by one FinOpsPolicy with a generous
dailyGPUHours (no budget action) and autoScale (one HPA each). The real operator process runs against a
real control plane (local etcd + kube-apiserver + controllers, kwok kubelets) through a counting proxy,
so every request it sends (Kopf's watches and patches included) is counted on the wire. Measured:

* convergence: policy created -> all N governed, N HPAs applied, N pod finalizers added; requests sent;
* steady state over K sweeps (one timer tick of the policy per sample interval): handler seconds
  (``finops_reconcile_duration_seconds`` deltas), requests and bytes on the wire, status writes, the
  handler's own API calls, apiserver ``apiserver_request_total`` delta minus the background rate of the
  rest of the cluster (measured with the operator paused), operator CPU and RSS;
* baseline, same run: a naive reconciler that LISTs deployments, pods and HPAs every sweep (typed
  kubernetes-client objects, as such a reconciler would use them); ratios are ours / naive.

    python benchmarks/reconcile_cost.py                  # 100 and 1,000 on a fresh local cluster
    python benchmarks/reconcile_cost.py --sizes 100
    python benchmarks/reconcile_cost.py --existing       # the cluster KUBECONFIG points at
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from finops_operator.devcluster.cluster import LocalCluster
from finops_operator.devcluster.nodes import NodeSpec
from tests.kube import Kube as TestKube
from tests.kube import eventually, install_crds
from tests.operator_process import OperatorProcess, free_port, running_operator

REPO = Path(__file__).resolve().parents[1]
POLICY = "bench"
GPU_NODES = 12
HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "content-length",
        "authorization",
    }
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- upstream API server access ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """Where the real API server is and how to authenticate to it (from a kubeconfig)."""

    server: str
    context: ssl.SSLContext
    headers: dict[str, str]

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Upstream:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)  # type: ignore[no-untyped-call]
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else ssl.SSLContext()
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        token = cfg.get_api_key_with_prefix("authorization")
        return cls(cfg.host.rstrip("/"), context, {"Authorization": token} if token else {})

    def metric(self, name: str) -> Counter[tuple[str, ...]]:
        """Samples of one apiserver counter, keyed by (verb, resource, subresource)."""
        request = urllib.request.Request(f"{self.server}/metrics", headers=self.headers)
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            text = response.read().decode()
        totals: Counter[tuple[str, ...]] = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    labels = sample.labels
                    key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
                    totals[key] += int(sample.value)
        return totals

    def requests(self) -> Counter[tuple[str, ...]]:
        """``apiserver_request_total`` by (verb, resource, subresource): every client's requests."""
        return self.metric("apiserver_request_total")


def on_resources(counts: Counter[tuple[str, ...]], resources: set[tuple[str, str]]) -> int:
    """Requests of ``counts`` (apiserver series) whose (resource, subresource) is in ``resources``."""
    return sum(c for (_, resource, sub), c in counts.items() if (resource, sub) in resources)


# -- a counting proxy between the operator and the API server ---------------------------------------


def classify(method: str, path: str, query: str) -> tuple[str, str]:
    """(verb, resource) of a Kubernetes API request, as the apiserver would name them."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return method, "discovery"
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return method, "discovery"
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    if method == "GET" and len(rest) == 1:
        return ("WATCH" if "watch=true" in query or "watch=1" in query else "LIST"), resource
    return method, resource


class CountingProxy:
    """Plain-HTTP reverse proxy on 127.0.0.1 that forwards to the API server and counts requests and
    response bytes per (verb, resource). Watches stream through; bytes count as they arrive."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._bytes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def snapshot(self) -> tuple[Counter[tuple[str, str]], int]:
        with self._lock:
            return Counter(self._requests), self._bytes

    def kubeconfig(self, path: Path) -> Path:
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        }
        path.write_text(yaml.safe_dump(document))
        return path

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            connector=aiohttp.TCPConnector(limit=0, ssl=self.upstream.context),
        )
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        with self._lock:
            self._requests[classify(request.method, request.path, request.query_string)] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers.update(self.upstream.headers)
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream.server + request.raw_path, headers=headers, data=body or None
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS},
            )
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    with self._lock:
                        self._bytes += len(chunk)
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the operator closed a watch (shutdown) or the upstream ended it
        return response


# -- the operator under test --------------------------------------------------------------------------


@dataclass
class Operator:
    """The operator under test, started by the test harness (tests/operator_process.py), plus what
    the benchmark reads from its process: metrics as numbers, CPU time, RSS; pause and resume."""

    running: OperatorProcess

    @property
    def pid(self) -> int:
        return self.running.process.pid

    def alive(self) -> bool:
        return self.running.process.poll() is None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(self.running.metrics())
            for s in family.samples
        }

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)


@contextlib.contextmanager
def operator_through(proxy_kubeconfig: Path, log_dir: Path, interval: float) -> Iterator[Operator]:
    """``finops run`` talking to the cluster through the counting proxy; resumed before it is stopped."""
    log_dir.mkdir(parents=True, exist_ok=True)
    args = (f"--sample-interval={interval}", "--no-webhook")
    through_proxy = TestKube(proxy_kubeconfig, "proxy")
    with running_operator(through_proxy, log_dir, *args, env={"FINOPS_LOG_LEVEL": "warning"}) as running:
        operator = Operator(running)
        try:
            yield operator
        finally:
            operator.resume()


Reading = tuple[
    dict[tuple[str, tuple[tuple[str, str], ...]], float],
    tuple[Counter[tuple[str, str]], int],
    Counter[tuple[str, ...]],
    float,
    float,
]
"""Operator metrics, proxy (requests, bytes), apiserver requests, operator CPU seconds, monotonic time."""


def read_counters(operator: Operator, proxy: CountingProxy, upstream: Upstream) -> Reading:
    """Every counter a measuring window is the difference of, read together."""
    return operator.metrics(), proxy.snapshot(), upstream.requests(), operator.cpu_seconds(), time.monotonic()


def paused_background(
    operator: Operator, upstream: Upstream, seconds: float
) -> tuple[Counter[tuple[str, ...]], float]:
    """The rest of the cluster's apiserver requests over ``seconds`` with the operator stopped (SIGSTOP),
    and the seconds they were counted over. The operator is left paused: the caller resumes it."""
    operator.pause()
    time.sleep(1)
    before, started = upstream.requests(), time.monotonic()
    time.sleep(seconds)
    return upstream.requests() - before, time.monotonic() - started


def metric(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and wanted <= set(ls))


def histogram_quantile(
    q: float, before: dict[tuple[str, tuple[tuple[str, str], ...]], float], after: dict[Any, float]
) -> float:
    """Prometheus-style quantile of the reconcile-duration histogram over the window."""
    name = "finops_reconcile_duration_seconds_bucket"
    buckets: list[tuple[float, float]] = []
    for (n, labels), value in after.items():
        ls = dict(labels)
        if n == name and ls.get("kind") == "FinOpsPolicy":
            buckets.append((float(ls["le"]), value - before.get((n, labels), 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


# -- workloads ---------------------------------------------------------------------------------------


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "inference"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "inference"}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "example/llm:1",
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"nvidia.com/gpu": "1"},
                            },
                        }
                    ]
                },
            },
        },
    }


def policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": POLICY, "namespace": namespace},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"tier": "inference"}},
            "costLimits": {"dailyGPUHours": 1_000_000, "budgetAction": "AlertOnly"},
            "autoScale": {"minReplicas": 1, "maxReplicas": 2, "cpuUtilizationPercentage": 80},
        },
    }


@dataclass
class Kube:
    """The benchmark's own (direct, uncounted-by-the-proxy) client: the test harness's kubectl plus
    typed APIs for bulk creation and the naive baseline."""

    api: client.ApiClient
    cluster: TestKube

    @classmethod
    def connect(cls, kubeconfig: Path) -> Kube:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
        cfg.connection_pool_maxsize = 16
        return cls(client.ApiClient(cfg), TestKube(kubeconfig, "benchmark"))

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def autoscaling(self) -> Any:
        return client.AutoscalingV2Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    def create_workloads(self, namespace: str, count: int) -> None:
        self.core.create_namespace({"metadata": {"name": namespace}})
        eventually(
            lambda: bool(self.core.list_namespaced_service_account(namespace).items),
            timeout=60,
            what="default account",
        )
        apps = self.apps
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: apps.create_namespaced_deployment(namespace, deployment(f"model-{i:04d}")),
                    range(count),
                )
            )

    def ready_deployments(self, namespace: str) -> int:
        items = self.apps.list_namespaced_deployment(namespace).items
        return sum(1 for d in items if (d.status.ready_replicas or 0) >= 1)

    def delete_namespace(self, namespace: str, wait: bool) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(
                "finops.dev", "v1alpha1", namespace, "finopspolicies", POLICY
            )
        with contextlib.suppress(ApiException):
            eventually(
                lambda: not self._policy_exists(namespace),
                timeout=180,
                interval=1,
                what="policy deletion (finalizers released)",
            )
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(namespace)
        if wait:
            eventually(
                lambda: not self._namespace_exists(namespace),
                timeout=300,
                interval=1,
                what=f"namespace {namespace} deleted",
            )

    def _policy_exists(self, namespace: str) -> bool:
        try:
            self.custom.get_namespaced_custom_object(
                "finops.dev", "v1alpha1", namespace, "finopspolicies", POLICY
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def _namespace_exists(self, namespace: str) -> bool:
        try:
            self.core.read_namespace(namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


@dataclass(frozen=True)
class NaiveSweep:
    seconds: float
    bytes: int


def naive_sweep(kube: Kube, namespace: str) -> NaiveSweep:
    """What a LIST-everything reconciler reads per sweep: deployments, pods and HPAs, as typed objects."""
    calls = (
        (kube.apps.list_namespaced_deployment, "V1DeploymentList"),
        (kube.core.list_namespaced_pod, "V1PodList"),
        (kube.autoscaling.list_namespaced_horizontal_pod_autoscaler, "V2HorizontalPodAutoscalerList"),
    )
    started, size = time.perf_counter(), 0
    for call, kind in calls:
        raw = call(namespace, _preload_content=False)
        size += len(raw.data)
        kube.api.deserialize(raw.data.decode(), kind, "application/json")
    return NaiveSweep(time.perf_counter() - started, size)


# -- one size -----------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    n: int
    startup_requests: int = 0
    startup_mb: float = 0.0
    converge_s: float = 0.0
    converge_wire: int = 0
    converge_apiserver: int = 0
    sweeps: float = 0.0
    sweep_mean_s: float = 0.0
    sweep_p95_s: float = 0.0
    wire_per_sweep: float = 0.0
    wire_kb_per_sweep: float = 0.0
    apiserver_per_sweep: float = 0.0
    apiserver_touched_per_sweep: float = 0.0
    handler_calls_per_sweep: float = 0.0
    status_writes_per_sweep: float = 0.0
    cpu_per_sweep: float = 0.0
    rss_mb: float = 0.0
    background_rps: float = 0.0
    background_before_rps: float = 0.0
    naive_s: float = 0.0
    naive_kb: float = 0.0
    wire_breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def naive_requests(self) -> float:
        """3 LISTs, plus the same status writes ours makes (both must write status)."""
        return 3 + self.status_writes_per_sweep


@dataclass(frozen=True)
class Options:
    interval: float
    sweeps: int
    background_s: float
    naive_sweeps: int


@dataclass(frozen=True)
class Bench:
    """What every size shares: the cluster client, the API server, the proxy, options."""

    kube: Kube
    upstream: Upstream
    proxy: CountingProxy
    workdir: Path
    opts: Options


def run_size(bench: Bench, n: int, cleanup: bool) -> SizeResult:
    """Create N governed Deployments, run the operator, and measure convergence and steady state."""
    kube, result = bench.kube, SizeResult(n)
    namespace = f"finops-bench-{n}-{uuid.uuid4().hex[:4]}"
    say(f"N={n}: creating {n} Deployments in {namespace}")
    started = time.monotonic()
    try:
        kube.create_workloads(namespace, n)
        eventually(
            lambda: kube.ready_deployments(namespace) >= n,
            timeout=900,
            interval=3,
            what=f"{n} ready Deployments",
        )
        say(f"N={n}: {n} Deployments ready after {time.monotonic() - started:.0f}s")
        proxy_kubeconfig = bench.proxy.kubeconfig(bench.workdir / "proxy.kubeconfig")
        before_start = bench.proxy.snapshot()
        log_dir = bench.workdir / f"operator-{n}"
        with operator_through(proxy_kubeconfig, log_dir, bench.opts.interval) as operator:
            try:
                _measure(bench, operator, namespace, result, before_start)
            finally:
                if cleanup and operator.alive():
                    say(f"N={n}: cleaning up (policy deletion releases finalizers, then the namespace)")
                    operator.resume()
                    kube.delete_namespace(namespace, wait=True)
    finally:
        if cleanup:
            with contextlib.suppress(Exception):
                kube.delete_namespace(namespace, wait=False)
    return result


def _measure(
    bench: Bench,
    operator: Operator,
    namespace: str,
    result: SizeResult,
    before_start: tuple[Counter[tuple[str, str]], int],
) -> None:
    kube, upstream, proxy, opts, n = bench.kube, bench.upstream, bench.proxy, bench.opts, result.n
    wire0, bytes0 = before_start
    watched = {"deployments", "pods", "horizontalpodautoscalers", "nodes", "finopspolicies"}
    eventually(
        lambda: watched <= {r for (v, r) in proxy.snapshot()[0] if v == "WATCH"},
        timeout=120,
        what="operator watches",
    )
    time.sleep(2)
    wire1, bytes1 = proxy.snapshot()
    result.startup_requests = (wire1 - wire0).total()
    result.startup_mb = (bytes1 - bytes0) / 1e6

    pre_a, tp_a = upstream.requests(), time.monotonic()
    time.sleep(opts.background_s / 2)
    result.background_before_rps = (upstream.requests() - pre_a).total() / (time.monotonic() - tp_a)

    say(f"N={n}: operator watching; creating the FinOpsPolicy")
    api0 = upstream.requests()
    t0 = time.monotonic()
    kube.custom.create_namespaced_custom_object(
        "finops.dev", "v1alpha1", namespace, "finopspolicies", policy(namespace)
    )

    def converged() -> bool:
        m = operator.metrics()
        return (
            metric(m, "finops_governed_workloads", namespace=namespace, policy=POLICY) >= n
            and metric(m, "finops_api_requests_total", verb="apply", resource="horizontalpodautoscalers") >= n
            and metric(m, "finops_api_requests_total", verb="patch", resource="pods") >= n
        )

    eventually(converged, timeout=600, interval=0.25, what=f"{n} governed Deployments")
    result.converge_s = time.monotonic() - t0
    wire2, _ = proxy.snapshot()
    result.converge_wire = (wire2 - wire1).total()
    result.converge_apiserver = (upstream.requests() - api0).total()
    say(f"N={n}: converged in {result.converge_s:.1f}s; verifying HPAs and finalizers")
    hpas = kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
    pods = kube.core.list_namespaced_pod(namespace).items
    tracked = sum(1 for p in pods if "finops.dev/gpu-ledger" in (p.metadata.finalizers or []))
    if len(hpas) < n or tracked < n:
        raise RuntimeError(f"not converged: {len(hpas)} HPAs, {tracked} tracked pods for N={n}")
    time.sleep(2 * opts.interval)  # settle: in-flight writes land, the HPA controller picks its HPAs up

    window = opts.sweeps * opts.interval
    say(f"N={n}: steady-state window of {window:.0f}s")
    m0, (w0, b0), api_a, cpu0, t_a = read_counters(operator, proxy, upstream)
    time.sleep(window)
    m1, (w1, b1), api_b, cpu1, t_b = read_counters(operator, proxy, upstream)
    result.rss_mb = operator.rss_mb()

    say(f"N={n}: operator paused; background window of {opts.background_s:.0f}s, then the naive baseline")
    background, background_s = paused_background(operator, upstream, opts.background_s)
    naive = [naive_sweep(kube, namespace) for _ in range(opts.naive_sweeps)]
    operator.resume()

    def delta(name: str, **labels: str) -> float:
        return metric(m1, name, **labels) - metric(m0, name, **labels)

    sweeps = delta("finops_reconcile_duration_seconds_count", kind="FinOpsPolicy")
    if sweeps <= 0:
        raise RuntimeError(f"no sweep in the {window:.0f}s window for N={n}")
    result.sweeps = sweeps
    result.sweep_mean_s = delta("finops_reconcile_duration_seconds_sum", kind="FinOpsPolicy") / sweeps
    result.sweep_p95_s = histogram_quantile(0.95, m0, m1)
    wire = w1 - w0
    result.wire_per_sweep = wire.total() / sweeps
    result.wire_breakdown = {f"{v} {r}": c / sweeps for (v, r), c in sorted(wire.items())}
    result.wire_kb_per_sweep = (b1 - b0) / 1e3 / sweeps
    result.handler_calls_per_sweep = delta("finops_api_requests_total") / sweeps
    result.status_writes_per_sweep = delta("finops_status_writes_total", kind="FinOpsPolicy") / sweeps
    result.cpu_per_sweep = (cpu1 - cpu0) / sweeps
    # apiserver side: every client, minus the rest of the cluster's rate with the operator paused.
    scale = (t_b - t_a) / background_s
    result.background_rps = background.total() / background_s
    result.apiserver_per_sweep = ((api_b - api_a).total() - background.total() * scale) / sweeps
    touched = {(r.split("/")[0], r.partition("/")[2]) for (_, r) in wire}
    result.apiserver_touched_per_sweep = (
        on_resources(api_b - api_a, touched) - on_resources(background, touched) * scale
    ) / sweeps
    result.naive_s = sum(s.seconds for s in naive) / len(naive)
    result.naive_kb = sum(s.bytes for s in naive) / len(naive) / 1e3


# -- report -------------------------------------------------------------------------------------------


def _ratio(ours: float, naive: float) -> str:
    return f"{ours / naive:.3f}" if naive > 0 else "n/a"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---:|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def report(results: Sequence[SizeResult], opts: Options) -> str:
    """Markdown tables: seconds and requests per sweep (with ratios to the naive baseline), then
    convergence and footprint."""
    lines = [
        f"Per sweep: mean over the sweeps of a {opts.sweeps * opts.interval:g}s window, sample interval "
        f"{opts.interval:g}s. Naive = LIST deployments + pods + HPAs of the namespace per sweep "
        "(typed kubernetes-client objects); its requests also count the status write both must make.",
        "",
        *_table(
            ["N", "sweeps", "reconcile mean s", "p95 s", "naive LIST s", "ours/naive s", "operator CPU s"],
            [
                [
                    f"{r.n:,}",
                    f"{r.sweeps:.0f}",
                    f"{r.sweep_mean_s:.4f}",
                    f"{r.sweep_p95_s:.4f}",
                    f"{r.naive_s:.4f}",
                    _ratio(r.sweep_mean_s, r.naive_s),
                    f"{r.cpu_per_sweep:.3f}",
                ]
                for r in results
            ],
        ),
        "",
        *_table(
            [
                "N",
                "requests (wire)",
                "apiserver Δ-bg, operator's series",
                "apiserver Δ-bg, all",
                "naive requests",
                "ours/naive req",
                "status writes",
                "handler API calls",
                "KB (wire)",
                "naive KB",
                "ours/naive bytes",
            ],
            [
                [
                    f"{r.n:,}",
                    f"{r.wire_per_sweep:.2f}",
                    f"{r.apiserver_touched_per_sweep:.2f}",
                    f"{r.apiserver_per_sweep:+.0f}",
                    f"{r.naive_requests:.2f}",
                    _ratio(r.wire_per_sweep, r.naive_requests),
                    f"{r.status_writes_per_sweep:.2f}",
                    f"{r.handler_calls_per_sweep:.2f}",
                    f"{r.wire_kb_per_sweep:.1f}",
                    f"{r.naive_kb:,.0f}",
                    _ratio(r.wire_kb_per_sweep, r.naive_kb),
                ]
                for r in results
            ],
        ),
        "",
        "Convergence: FinOpsPolicy created -> N governed, N HPAs applied, N pod finalizers added.",
        "",
        *_table(
            [
                "N",
                "start-up requests",
                "start-up MB",
                "converge s",
                "converge requests (wire)",
                "converge apiserver Δ (all clients)",
                "operator RSS MB",
                "cluster req/s before policy",
                "cluster req/s with N HPAs",
            ],
            [
                [
                    f"{r.n:,}",
                    f"{r.startup_requests}",
                    f"{r.startup_mb:.2f}",
                    f"{r.converge_s:.1f}",
                    f"{r.converge_wire:,}",
                    f"{r.converge_apiserver:,}",
                    f"{r.rss_mb:.0f}",
                    f"{r.background_before_rps:.1f}",
                    f"{r.background_rps:.1f}",
                ]
                for r in results
            ],
        ),
        "",
        "Steady-state requests on the wire per sweep, by verb and resource:",
        "",
        *(
            f"- N={r.n:,}: " + (", ".join(f"{k} {v:.2f}" for k, v in r.wire_breakdown.items()) or "none")
            for r in results
        ),
    ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------


def bench_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(
            f"bench-gpu-{i:02d}",
            "eu-west-1",
            gpus=128,
            gpu_product="NVIDIA-H100-80GB-HBM3",
            cpu="512",
            memory="4Ti",
            pods="200",
        )
        for i in range(GPU_NODES)
    ]


@contextlib.contextmanager
def cluster_kubeconfig(existing: bool, directory: Path) -> Iterator[Path]:
    """KUBECONFIG of an existing cluster, or of a fresh local control plane stopped on exit."""
    if existing:
        path = os.environ.get("KUBECONFIG")
        if not path:
            raise SystemExit("--existing needs KUBECONFIG")
        yield Path(path)
        return
    cluster = LocalCluster(directory, progress=lambda m: say(f"cluster: {m}"))
    try:
        yield cluster.up(nodes=bench_nodes()).kubeconfig
    finally:
        cluster.down(quiet=True)
        say(f"cluster stopped ({directory})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--existing", action="store_true", help="use the cluster KUBECONFIG points at")
    parser.add_argument("--interval", type=float, default=5.0, help="operator sample interval (s)")
    parser.add_argument(
        "--sweeps",
        type=int,
        default=14,
        help="sweeps in the steady-state window (14 x 5s = Kopf's 70s watch inactivity timeout, so each "
        "idle watch's reconnect is counted once)",
    )
    parser.add_argument("--background", type=float, default=20.0, help="background window (s)")
    parser.add_argument("--naive-sweeps", type=int, default=5)
    args = parser.parse_args(argv)
    opts = Options(args.interval, args.sweeps, args.background, args.naive_sweeps)
    sizes = sorted(args.sizes)
    workdir = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    results: list[SizeResult] = []
    begun = time.monotonic()
    ok = False
    try:
        with cluster_kubeconfig(args.existing, workdir / "cluster") as kubeconfig:
            kube = Kube.connect(kubeconfig)
            install_crds(kube.cluster)
            upstream = Upstream.from_kubeconfig(kubeconfig)
            proxy = CountingProxy(upstream)
            proxy.start()
            bench = Bench(kube, upstream, proxy, workdir, opts)
            try:
                for index, n in enumerate(sizes):
                    last = index == len(sizes) - 1
                    results.append(run_size(bench, n, cleanup=args.existing or not last))
            finally:
                proxy.stop()
        ok = True
    finally:
        if results:
            print(
                f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
                f"{time.monotonic() - begun:.0f}s end to end\n"
            )
            print(report(results, opts))
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} (operator logs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
