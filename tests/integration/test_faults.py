"""Issue 11 item 3: the fault matrix, each fault injected into the real control plane, the real
operator process or the real Prometheus (the GPUs behind it are simulated by ``tests.dcgm_exporter``:
there is no GPU here). docs/RELIABILITY.md lists what each fault does and what holds.

Time is scaled down, never faked: samples every 2 s, the idle threshold at its minimum (1 minute)
and a Prometheus outage just longer than that threshold (what "several minutes" means to a policy
whose threshold is several minutes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.devcluster.cluster import LocalCluster
from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import (
    apply,
    condition,
    deployment,
    policy,
    replicas,
    status_of,
)
from tests.integration.test_predictive_scaling import daily_history, hpa_min, predictive_policy
from tests.integration.test_sovereignty import run
from tests.kube import Kube, drop_namespaces, eventually, kubectl_binary
from tests.operator_process import OperatorProcess, free_port, running_operator
from tests.outages import node_ready
from tests.prometheus_harness import MakePrometheus

SAMPLE = 2.0
LEDGER = "finops.dev/gpu-ledger"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class PodLifetimes:
    """Every pod of a namespace as ``kubectl get --watch`` reports it: the ground truth the ledger is
    judged against (GPUs from the workload, running from the container start to the deletion)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.last_seen: dict[str, dict[str, Any]] = {}
        self._process = subprocess.Popen(
            [kubectl_binary(), "get", "pods", "-n", namespace, "--watch", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=kube.env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        lines: list[str] = []
        for line in self._process.stdout:  # one pretty-printed object per change, closed by "}" alone
            lines.append(line)
            if line.rstrip("\n") == "}":
                pod = json.loads("".join(lines))
                lines = []
                self.last_seen[pod["metadata"]["uid"]] = pod

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def intervals(self, gpus: dict[str, int], until: datetime) -> list[tuple[str, int, datetime, datetime]]:
        """(workload, GPUs, start, end) of every pod that ran; pods still running end at ``until``."""
        found = []
        for pod in self.last_seen.values():
            app = pod["metadata"]["labels"]["app"]
            states = [s.get("state") or {} for s in (pod.get("status") or {}).get("containerStatuses") or []]
            starts = [_time(s[k]["startedAt"]) for s in states for k in ("running", "terminated") if k in s]
            if not starts:
                continue
            deleted = pod["metadata"].get("deletionTimestamp")
            found.append((app, gpus[app], min(starts), min(_time(deleted), until) if deleted else until))
        return found


def peak_gpus(intervals: list[tuple[str, int, datetime, datetime]]) -> int:
    """The most GPUs in use at one instant."""
    changes = sorted([(start, n) for _, n, start, _ in intervals] + [(end, -n) for _, n, _, end in intervals])
    level = peak = 0
    for _, change in changes:
        level += change
        peak = max(peak, level)
    return peak


def live_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    pods = kube.get_json("pods", "-n", namespace)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def all_tracked(kube: Kube, namespace: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` live pods, once each runs and carries the ledger finalizer (else [])."""
    pods = live_pods(kube, namespace)
    ok = len(pods) == count and all(
        p["status"].get("phase") == "Running" and LEDGER in p["metadata"].get("finalizers", []) for p in pods
    )
    return pods if ok else []


def next_sample(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """The policy's status once the ledger has been accounted past the current one."""
    seen = status_of(kube, namespace, name).get("ledgerTime") or ""
    return dict(
        eventually(
            lambda: (now := status_of(kube, namespace, name)).get("ledgerTime", "") > seen and now,
            timeout=30,
            what="the next ledger sample",
        )
    )


def reconciles(operator: OperatorProcess) -> float:
    """FinOpsPolicy reconciles the operator completed (a failed one is not counted)."""
    found = re.findall(
        r'^finops_reconcile_duration_seconds_count\{kind="FinOpsPolicy"\} (\S+)$', operator.metrics(), re.M
    )
    return sum(float(v) for v in found)


def samples_pass(operator: OperatorProcess, count: int = 2) -> None:
    """Returns once the operator completed ``count`` more reconciles (a quiet policy writes nothing, so
    its status cannot tell)."""
    target = reconciles(operator) + count
    eventually(
        lambda: reconciles(operator) >= target, timeout=30 + count * SAMPLE, what=f"{count} reconciles"
    )


def scale(kube: Kube, namespace: str, name: str, count: int) -> None:
    kube.kubectl("scale", "deploy", "-n", namespace, name, f"--replicas={count}")


def test_ledger_matches_pod_lifetimes_across_repeated_kill_9_under_churn(kube: Kube, tmp_path: Path) -> None:
    """Three times: the operator runs while workloads scale up and down, is killed with SIGKILL, and
    pods are deleted and created while it is down. The ledger must still equal the GPU-hours the pods'
    own lifetimes add up to, within one sample interval, in total and per workload."""
    namespace, name = "fault-churn", "ledger"
    gpus = {"alpha": 1, "beta": 2}
    kube.kubectl("create", "namespace", namespace)
    truth_source = PodLifetimes(kube, namespace)
    try:
        apply(kube, deployment(namespace, "alpha", 2, gpus=1), deployment(namespace, "beta", 1, gpus=2))
        apply(kube, policy(namespace, name, costLimits={"dailyGPUHours": 1000}))
        alpha = 2
        for round_ in range(3):
            with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as operator:
                eventually(partial(all_tracked, kube, namespace, alpha + 1), timeout=60, what="pods tracked")
                alpha = 1 if alpha > 1 else 3  # churn while the operator runs
                scale(kube, namespace, "alpha", alpha)
                eventually(partial(all_tracked, kube, namespace, alpha + 1), timeout=60, what="churned pods")
                next_sample(kube, namespace, name)
                operator.process.kill()  # kill -9, at whatever point of its sample it is
                operator.process.wait()
            # While it is down: a tracked pod is deleted (its finalizer keeps it, with its end, until
            # accounted) and a new one starts (counted from its start once the operator is back).
            beta_pod = next(p for p in live_pods(kube, namespace) if p["metadata"]["labels"]["app"] == "beta")
            kube.kubectl("delete", "pod", "-n", namespace, beta_pod["metadata"]["name"], "--wait=false")
            alpha += 1
            scale(kube, namespace, "alpha", alpha)
            print(f"round {round_ + 1}: killed; deleted {beta_pod['metadata']['name']}, alpha -> {alpha}")

        with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)):
            eventually(lambda: all_tracked(kube, namespace, alpha + 1), timeout=60, what="pods tracked")
            eventually(
                lambda: len(kube.get_json("pods", "-n", namespace)["items"]) == alpha + 1,
                timeout=60,
                what="every deleted pod accounted and released",
            )
            status = next_sample(kube, namespace, name)
    finally:
        truth_source.stop()
        drop_namespaces(kube, namespace)

    intervals = truth_source.intervals(gpus, until=_time(status["ledgerTime"]))
    one_sample = peak_gpus(intervals) * SAMPLE / 3600
    truth = dict.fromkeys(gpus, 0.0)
    for app, count, start, end in intervals:
        truth[app] += count * max(0.0, (end - start).total_seconds()) / 3600
    ledger = {w["name"]: w["gpuHours"] for w in status["workloads"]}
    error = status["gpuHoursUsed"] - sum(truth.values())
    print(
        f"\nledger after 3 x kill -9 under churn ({len(intervals)} pods): {status['gpuHoursUsed']:.6f} "
        f"GPU-h, pod lifetimes {sum(truth.values()):.6f} GPU-h, error {error * 3600:+.2f} GPU-s "
        f"(one sample: {one_sample * 3600:.0f} GPU-s)"
    )
    assert abs(error) <= one_sample, json.dumps(status, indent=2)
    for app, hours in truth.items():
        assert abs(ledger[app] - hours) <= one_sample, (app, ledger, truth)


def events_by_us(kube: Kube, namespace: str) -> int:
    """Events the operator posted in ``namespace``, each counted as often as it happened."""
    items = kube.get_json("events", "-n", namespace)["items"]
    ours = [
        e
        for e in items
        if "finops-operator" in (e.get("reportingComponent"), (e.get("source") or {}).get("component"))
    ]
    return sum(int(e.get("count") or 1) for e in ours)


def actions(operator: OperatorProcess, namespace: str) -> float:
    found = re.findall(
        rf'^finops_actions_total\{{[^}}]*namespace="{namespace}"[^}}]*\}} (\S+)$', operator.metrics(), re.M
    )
    return sum(float(v) for v in found)


@pytest.fixture
def control_plane(kube: Kube) -> Iterator[LocalCluster]:
    """The project's control plane (its components are ours to restart), healthy again afterwards: later
    tests share it."""
    if kube.control_plane is None:
        pytest.skip("restarting etcd and kube-apiserver needs the project's own control plane")
    yield kube.control_plane
    nodes = [n["metadata"]["name"] for n in kube.get_json("nodes")["items"]]
    eventually(lambda: all(node_ready(kube, n) for n in nodes), timeout=60, what="every node Ready")


def test_apiserver_and_etcd_restarts_recover_by_themselves_without_repeating_anything(
    kube: Kube, tmp_path: Path, control_plane: LocalCluster
) -> None:
    namespace, name = "fault-restart", "tiny-budget"
    kube.kubectl("create", "namespace", namespace)
    try:
        apply(kube, deployment(namespace, "steady", 1, gpus=1))
        apply(
            kube,
            policy(namespace, name, costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"}),
        )
        with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as operator:
            eventually(lambda: replicas(kube, namespace, "steady") == 0, timeout=60, what="budget action")
            samples_pass(operator)
            assert actions(operator, namespace) == 1
            posted = events_by_us(kube, namespace)

            timings = {}
            for component in ("kube-apiserver", "etcd"):
                started = time.monotonic()
                control_plane.restart(component)
                timings[component] = time.monotonic() - started
                # Recovered by itself: the operator completes reconciles again.
                samples_pass(operator)
            print(f"\nrestarts (stop to ready): {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}")
            # Nothing repeated: no second action, no Event posted again.
            assert actions(operator, namespace) == 1
            assert events_by_us(kube, namespace) == posted

            # The watches resumed: a Deployment and a spec change made after the restarts are acted on.
            apply(kube, deployment(namespace, "late", 1, gpus=1))
            eventually(lambda: replicas(kube, namespace, "late") == 0, timeout=60, what="late scaled down")
            kube.kubectl(
                "patch", "fop", "-n", namespace, name, "--type=merge", "-p",
                '{"spec":{"costLimits":{"dailyGPUHours":0.0006}}}',
            )  # fmt: skip
            generation = kube.get_json("fop", "-n", namespace, name)["metadata"]["generation"]
            eventually(
                lambda: status_of(kube, namespace, name).get("observedGeneration") == generation,
                timeout=30,
                what="the spec change reconciled",
            )
            samples_pass(operator)
            assert actions(operator, namespace) == 2
            # No Event storm: the new action's Events, nothing else.
            late = events_by_us(kube, namespace) - posted
            assert 1 <= late <= 3, kube.kubectl("get", "events", "-n", namespace)
            assert "Traceback" not in operator.log()
    finally:
        drop_namespaces(kube, namespace)


def condition_becomes(kube: Kube, namespace: str, name: str, kind: str, status: str) -> dict[str, Any]:
    """The policy's ``kind`` condition, once it has ``status``."""
    return dict(
        eventually(
            lambda: (c := condition(kube, namespace, name, kind)) and c["status"] == status and c,
            timeout=60,
            what=f"{kind}={status}",
        )
    )


def test_prometheus_down_shuts_nothing_down_and_prediction_falls_back(
    kube: Kube, tmp_path: Path, make_prometheus: MakePrometheus, dcgm_exporter: DcgmExporter
) -> None:
    """The GPU utilisation comes from the simulated DCGM exporter (no GPU here), through a real
    Prometheus that also holds seeded demand history; then Prometheus goes away for longer than the
    idle threshold."""
    idle_ns, predict_ns = "fault-idle", "fault-predict"
    prometheus = make_prometheus(exporters=[dcgm_exporter], history=[daily_history("ahead", 10 * 60, days=3)])
    for namespace in (idle_ns, predict_ns):
        kube.kubectl("create", "namespace", namespace)
    try:
        apply(
            kube,
            deployment(idle_ns, "sleepy", 1, gpus=1),
            policy(idle_ns, "idle", optimizationRules={"idleShutdownThresholdMinutes": 1}),
            deployment(predict_ns, "chat", 1, gpus=1),
            predictive_policy(predict_ns, 'sum(demand_rps{service="ahead"})'),
        )
        sleepy = eventually(lambda: live_pods(kube, idle_ns), timeout=60, what="the sleepy pod")[0]
        dcgm_exporter.set_utilization(idle_ns, sleepy["metadata"]["name"], 2)
        prometheus.wait_for_scrape()
        args = ("--sample-interval", str(SAMPLE), "--prometheus-url", prometheus.url)
        with running_operator(kube, tmp_path, *args) as operator:
            condition_becomes(kube, idle_ns, "idle", "Idle", "True")  # sleepy seen idle
            eventually(lambda: hpa_min(kube, predict_ns) == 5, timeout=90, what="the predicted floor")
            eventually(lambda: replicas(kube, predict_ns, "chat") == 5, timeout=60, what="HPA at the floor")

            prometheus.stop()
            outage = time.monotonic()
            unavailable = condition_becomes(kube, idle_ns, "idle", "MetricsAvailable", "False")
            fallback = condition_becomes(kube, predict_ns, "forecast", "PredictionReady", "False")
            assert fallback["reason"] == "MetricsUnavailable", fallback
            # Longer than the idle threshold, two samples more: sleepy was idle when the metrics went,
            # and neither it nor the predicted floor may be acted on blind.
            while time.monotonic() - outage < 60 + 2 * SAMPLE:
                assert replicas(kube, idle_ns, "sleepy") == 1
                assert (hpa_min(kube, predict_ns) or 0) >= 5
                assert replicas(kube, predict_ns, "chat") == 5
                time.sleep(SAMPLE)
            still = condition(kube, idle_ns, "idle", "MetricsAvailable")
            assert (
                still is not None and still["status"] == "False" and still["reason"] == unavailable["reason"]
            )
            # Its idle clock restarts once the metrics are back: a blind minute never counts as idle.
            workloads = status_of(kube, idle_ns, "idle")["workloads"]
            assert not next(w for w in workloads if w["name"] == "sleepy").get("idleSince"), workloads
            assert actions(operator, idle_ns) == actions(operator, predict_ns) == 0
            print(f"\nPrometheus down {time.monotonic() - outage:.0f} s: {still['message']}")
    finally:
        for namespace in (idle_ns, predict_ns):
            drop_namespaces(kube, namespace)


def timed(kube: Kube, *args: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """kubectl as a user types it, with how long the API server took to answer."""
    started = time.monotonic()
    result = run(kube, "--request-timeout=20s", *args, stdin=stdin)
    return result, time.monotonic() - started


def test_webhook_server_down_fails_as_documented(kube: Kube, tmp_path: Path) -> None:
    """docs/ADMISSION.md: the caps webhook fails open (Ignore) within its 3 s timeout; sovereignty is
    enforced by a ValidatingAdmissionPolicy inside the API server, with the operator hung or gone; the
    audit reports what slipped through once the operator is back."""
    caps_ns, sov_ns, region = "fault-caps", "fault-sov", "fault-eu"
    kube.kubectl("create", "namespace", caps_ns)
    kube.kubectl("create", "namespace", sov_ns)
    kube.kubectl("label", "namespace", sov_ns, "fault-test=webhook")
    sovereign = {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "metadata": {"name": region},
        "spec": {
            "region": "eu-west-1",
            "namespaceSelector": {"matchLabels": {"fault-test": "webhook"}},
            "enforcementMode": "Enforce",
        },
    }
    args = ("--sample-interval", str(SAMPLE), "--webhook", "--webhook-port", str(free_port()))
    try:
        apply(kube, policy(caps_ns, "caps", costLimits={"maxGPUsPerPod": 2}), sovereign)
        with running_operator(kube, tmp_path, *args) as operator:
            eventually(
                lambda: kube.get_json("validatingadmissionpolicybinding", f"finops-sovereignty-{region}"),
                timeout=30,
                what="the region's admission policy",
            )
            configs = eventually(
                lambda: [
                    kube.get_json(kind, "finops.dev")
                    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")
                ],
                timeout=30,
                what="the webhook configurations",
            )
            refused, _ = timed(
                kube, "apply", "-f", "-", stdin=yaml.safe_dump(deployment(caps_ns, "big", 0, gpus=4))
            )
            assert refused.returncode != 0 and "maxGPUsPerPod" in refused.stderr
            os.kill(operator.process.pid, signal.SIGSTOP)  # hung: connections are accepted, never answered
            try:
                webhooks = [w for config in configs for w in config["webhooks"]]
                assert {w["timeoutSeconds"] for w in webhooks} == {3}
                assert {w["failurePolicy"] for w in webhooks} == {"Ignore"}
                # Caps fail open, after the timeout and not 30 s.
                admitted, caps_wait = timed(
                    kube, "apply", "-f", "-", stdin=yaml.safe_dump(deployment(caps_ns, "big", 0, gpus=4))
                )
                assert admitted.returncode == 0, admitted.stderr
                # Sovereignty holds: the API server itself refuses a pod pinned outside the region ...
                outside = deployment(sov_ns, "to-us", 0, gpus=0)
                outside["spec"]["template"]["spec"]["nodeSelector"] = {
                    "topology.kubernetes.io/region": "us-east-1"
                }
                denied, sov_wait = timed(kube, "apply", "-f", "-", stdin=yaml.safe_dump(outside))
                assert denied.returncode != 0 and "ValidatingAdmissionPolicy" in denied.stderr, denied.stderr
                # ... and admits one that stays in it.
                inside, _ = timed(
                    kube, "apply", "-f", "-", stdin=yaml.safe_dump(deployment(sov_ns, "ok", 0, gpus=0))
                )
                assert inside.returncode == 0, inside.stderr
            finally:
                operator.process.kill()  # SIGKILL ends a stopped process too
                operator.process.wait()
            # Gone (connection refused): the same, at once.
            gone, gone_wait = timed(
                kube, "apply", "-f", "-", stdin=yaml.safe_dump(deployment(caps_ns, "bigger", 0, gpus=8))
            )
            assert gone.returncode == 0, gone.stderr
            print(
                f"\nwebhook hung: caps admitted after {caps_wait:.1f} s, sovereignty refused after "
                f"{sov_wait:.1f} s; webhook gone: admitted after {gone_wait:.1f} s"
            )
        back = tmp_path / "back"
        back.mkdir()
        with running_operator(kube, back, *args):
            found = eventually(
                lambda: (
                    {v["name"] for v in status_of(kube, caps_ns, "caps").get("violations", [])}
                    >= {"big", "bigger"}
                ),
                timeout=30,
                what="the audit listing what slipped through",
            )
            assert found
            kube.kubectl("delete", "sovr", region, "--timeout=30s")
    finally:
        kube.kubectl(
            "patch", "sovr", region, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
        kube.kubectl("delete", "sovr", region, "--ignore-not-found", "--wait=false")
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")
        for namespace in (caps_ns, sov_ns):
            drop_namespaces(kube, namespace)
