"""Create latency of Deployments with the operator healthy, hung (SIGSTOP) and absent, side by side.

The real operator (``finops run --webhook``) runs against a real control plane (local etcd,
kube-apiserver, controllers, kwok kubelets) with one SovereignRegion binding one namespace and one
FinOpsPolicy in it. Deployments are created, one at a time, in an unbound namespace (which the
operator's webhooks must never be called for) and in the bound one (where they are called and a hung
operator costs the webhook timeout before failurePolicy Ignore admits). Baseline, same run: the same
creates before the operator ever started (no webhook configuration in the cluster); ratios are
median / baseline median.

    python benchmarks/admission_latency.py               # fresh local cluster, 40 creates per cell
    python benchmarks/admission_latency.py --creates 100
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from finops_operator.devcluster.cluster import LocalCluster  # noqa: E402
from tests.kube import Kube, eventually, install_crds  # noqa: E402
from tests.operator_process import free_port, running_operator  # noqa: E402

UNBOUND, BOUND = "bench-unbound", "bench-bound"


def deployment(name: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 0,  # the create is measured, not the rollout
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "example/app:1"}]},
            },
        },
    }


def latencies(apps: client.AppsV1Api, namespace: str, creates: int) -> list[float]:
    """Seconds per create, sequential; the client waits up to 60 s (twice the old webhook timeout)."""
    seconds = []
    for _ in range(creates):
        body = deployment(f"d-{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        apps.create_namespaced_deployment(namespace, body, _request_timeout=60)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - started)
    return seconds


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def setup_namespaces(kube: Kube) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": UNBOUND}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BOUND, "labels": {"bench": "eu"}}},
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "SovereignRegion",
            "metadata": {"name": "bench-eu"},
            "spec": {"region": "eu-west-1", "namespaceSelector": {"matchLabels": {"bench": "eu"}}},
        },
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "FinOpsPolicy",
            "metadata": {"name": "caps", "namespace": BOUND},
            "spec": {
                "targetWorkloadSelector": {"matchLabels": {"finops": "yes"}},
                "costLimits": {"maxGPUsPerPod": 2},
            },
        },
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def run(kube: Kube, creates: int, work: Path) -> None:
    config.load_kube_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    apps = client.AppsV1Api()
    setup_namespaces(kube)
    rows: dict[str, dict[str, list[float]]] = {UNBOUND: {}, BOUND: {}}

    def measure(condition: str) -> None:
        for namespace, cells in rows.items():
            # Bound creates wait the timeout per webhook while hung: fewer of them keep the run short.
            count = creates if namespace == UNBOUND else max(5, creates // 4)
            cells[condition] = latencies(apps, namespace, count)
            print(f"  {condition:<8} {namespace}: done", file=sys.stderr)

    measure("baseline")
    args = ("--sample-interval", "5", "--webhook", "--webhook-port", str(free_port()))
    with running_operator(kube, work, *args) as operator:

        def bound_served() -> bool:
            text = kube.kubectl(
                "get", "mutatingwebhookconfiguration", "finops.dev", "-o", "yaml", check=False
            )
            return BOUND in text

        eventually(bound_served, timeout=60, what="the bound namespace in the webhook configuration")
        latencies(apps, BOUND, 3)  # warm the webhook's TLS connections
        measure("healthy")
        os.kill(operator.process.pid, signal.SIGSTOP)
        try:
            measure("hung")
        finally:
            os.kill(operator.process.pid, signal.SIGCONT)
    measure("absent")  # the configurations stay in place (another replica may serve them)
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")
    report(rows, creates)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def report(rows: dict[str, dict[str, list[float]]], creates: int) -> None:
    conditions = ("baseline", "healthy", "hung", "absent")
    print(
        f"\nDeployment create latency, sequential creates ({creates} per cell unbound, "
        f"{max(5, creates // 4)} bound; ms p50/p99, ratio = median/baseline)"
    )
    print(
        f"{'namespace':<15}" + "".join(f"{c + ' p50/p99':>22}" for c in conditions) + f"{'hung/healthy':>15}"
    )
    for namespace, cells in rows.items():
        base = statistics.median(cells["baseline"])
        line = f"{namespace:<15}"
        for condition in conditions:
            values = cells[condition]
            median = statistics.median(values)
            line += f"{fmt(median) + '/' + fmt(p99(values)) + f' (x{median / base:.2f})':>22}"
        ratio = statistics.median(cells["hung"]) / statistics.median(cells["healthy"])
        print(line + f"{f'x{ratio:.2f}':>15}")
    print(
        f"\n{UNBOUND}: never called (namespaceSelector), so hung and absent cost nothing there."
        f"\n{BOUND}: called; a hung operator costs the webhook timeout (FINOPS_WEBHOOK_TIMEOUT_SECONDS,"
        " default 3 s) per webhook, then failurePolicy Ignore admits; absent fails fast (refused)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--creates", type=int, default=40, help="creates per namespace and condition")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finops-bench-admission-") as scratch:
        work = Path(scratch)
        cluster = LocalCluster(work / "cluster", progress=lambda m: print(f"[cluster] {m}", file=sys.stderr))
        state = cluster.up()
        try:
            kube = Kube(state.kubeconfig, "local")
            install_crds(kube)
            run(kube, args.creates, work)
        finally:
            cluster.down(quiet=True)


if __name__ == "__main__":
    main()
