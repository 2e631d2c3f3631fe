"""Issue 15 item 5: `finops report showback`, run as users type it against the real control plane and
the real operator process, equals the GPU-hours the pods' own lifetimes add up to (from a
`kubectl get --watch`), per namespace, workload and label; the usage counters say the same. No
Prometheus here: utilisation is unknown, so nothing is called idle (the idle split is unit-tested)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from tests.integration.test_faults import PodLifetimes, _time, all_tracked, peak_gpus, scale
from tests.integration.test_finopspolicy_enforcement import apply, deployment, policy, status_of
from tests.kube import REPO, Kube, drop_namespaces, eventually
from tests.operator_process import running_operator

SAMPLE = 2.0
RATE = 2.5
TEAMS = {"showback-a": {"alpha": 1, "beta": 2}, "showback-b": {"gamma": 1}}
COST_CENTER = {"alpha": "research", "beta": "product", "gamma": "research"}


def showback(kube: Kube, *args: str) -> dict[str, Any]:
    """The report as JSON, from the `finops` command with the test cluster's KUBECONFIG."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "finops_operator",
            "report",
            "showback",
            "--window",
            "month",
            "--format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**kube.env, "PYTHONPATH": f"{REPO / 'operator'}:{REPO}"},
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a policy of another module has no ledger
    report = json.loads(result.stdout)
    assert not [p for p in report["problems"] if p.startswith("showback-")], report["problems"]
    return dict(report)


def monthly(kube: Kube, namespace: str) -> dict[str, Any] | None:
    status = status_of(kube, namespace, "showback")
    return next((w for w in status.get("windows", []) if w["period"] == "monthly"), None)


def counter(metrics: str, name: str, namespace: str, workload: str) -> float:
    pattern = rf'^{name}\{{(?=[^}}]*namespace="{namespace}")(?=[^}}]*workload="{workload}")[^}}]*\}} (\S+)$'
    found = re.findall(pattern, metrics, re.M)
    return float(found[0]) if found else 0.0


def lifetimes(report: dict[str, Any], watches: dict[str, PodLifetimes]) -> tuple[dict[str, float], int]:
    """GPU-hours per workload from the pods' watched lifetimes, up to each policy's ledger time in
    `report`, and the peak GPUs held at once (which bounds what one sample can be off by)."""
    accounted = {p["policy"].split("/")[0]: p["ledgerTime"] for p in report["policies"]}
    truth: dict[str, float] = {}
    peak = 0
    for namespace, apps in TEAMS.items():
        until: datetime = _time(accounted[namespace])
        intervals = watches[namespace].intervals(apps, until=until)
        peak += peak_gpus(intervals)
        for app, gpus, start, end in intervals:
            key = f"{namespace}/{app}"
            truth[key] = truth.get(key, 0.0) + gpus * max(0.0, (end - start).total_seconds()) / 3600
    return truth, peak


def test_showback_matches_pod_lifetimes(kube: Kube, tmp_path: Path) -> None:
    for namespace in TEAMS:
        kube.kubectl("create", "namespace", namespace)
    watches = {namespace: PodLifetimes(kube, namespace) for namespace in TEAMS}
    try:
        with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as operator:
            for namespace, apps in TEAMS.items():
                apply(kube, policy(namespace, "showback", pricing={"gpuHourlyRate": RATE, "currency": "EUR"}))
                eventually(partial(monthly, kube, namespace), timeout=30, what=f"{namespace}'s ledger")
                apply(
                    kube,
                    *(
                        deployment(namespace, app, 1, gpus=gpus, labels={"cost-center": COST_CENTER[app]})
                        for app, gpus in apps.items()
                    ),
                )
            for namespace, apps in TEAMS.items():
                eventually(partial(all_tracked, kube, namespace, len(apps)), timeout=60, what="pods tracked")
            scale(kube, "showback-a", "alpha", 2)  # churn: one more pod, then one less of another
            eventually(partial(all_tracked, kube, "showback-a", 3), timeout=60, what="alpha scaled up")
            scale(kube, "showback-b", "gamma", 0)
            eventually(lambda: not all_tracked(kube, "showback-b", 1), timeout=60, what="gamma gone")
            eventually(
                lambda: len(kube.get_json("pods", "-n", "showback-b")["items"]) == 0,
                timeout=60,
                what="gamma's pod accounted and released",
            )
            by_workload = showback(kube, "--by", "workload")
            counters = operator.metrics()
            by_label = showback(kube, "--by", "label:cost-center")
            by_namespace = showback(kube, "--by", "namespace")
    finally:
        for watch in watches.values():
            watch.stop()
        drop_namespaces(kube, *TEAMS)

    truth, peak = lifetimes(by_workload, watches)
    one_sample = peak * SAMPLE / 3600  # the report and the watch may be one sample apart
    rows = {r["key"]: r for r in by_workload["rows"] if r["key"].startswith("showback-")}
    print(f"\nshowback by workload: {json.dumps(rows)}\npod lifetimes: {json.dumps(truth)}")
    assert set(rows) == set(truth)
    for key, hours in truth.items():
        assert abs(rows[key]["gpu_hours"] - hours) <= one_sample, (key, rows[key], hours)
        assert abs(rows[key]["cost"] - RATE * rows[key]["gpu_hours"]) <= 1e-5
        assert rows[key]["idle_gpu_hours"] == 0 and rows[key]["currency"] == "EUR"
        namespace, workload = key.split("/")
        # The counters were read a moment after the report: up to a few samples later.
        assert abs(counter(counters, "finops_gpu_hours_total", namespace, workload) - hours) <= 3 * one_sample
    # Each report is compared with the lifetimes up to its own ledger time: the reports run seconds
    # apart, and the ledger keeps accruing in between.
    truth_then, _ = lifetimes(by_namespace, watches)
    namespaces = {r["key"]: r["gpu_hours"] for r in by_namespace["rows"] if r["key"].startswith("showback-")}
    for namespace in TEAMS:
        expected = sum(h for k, h in truth_then.items() if k.startswith(f"{namespace}/"))
        assert abs(namespaces[namespace] - expected) <= one_sample, (namespace, expected)
    research = next(r["gpu_hours"] for r in by_label["rows"] if r["key"] == "research")
    assert research >= rows["showback-a/alpha"]["gpu_hours"] + rows["showback-b/gamma"]["gpu_hours"] - 1e-6
