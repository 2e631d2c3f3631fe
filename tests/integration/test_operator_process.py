"""The operator as users run it: `finops run` (Kopf) against the real API server."""

from __future__ import annotations

import time
from pathlib import Path

from tests.kube import REPO, Kube, eventually
from tests.operator_process import free_port, running_operator


def _ready(kube: Kube) -> dict[str, str] | None:
    policy = kube.get_json("fop", "-n", "ai-workloads", "edge-ai-inference-cost-policy")
    status = policy.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    ready = conditions.get("Ready")
    current = ready and ready.get("observedGeneration") == policy["metadata"]["generation"]
    if current and ready["status"] == "True" and status.get("governedWorkloads") == 2:
        return ready
    return None


LEDGER_FIELDS = {
    "gpuHoursUsed",
    "gpuHoursRemaining",
    "costUsed",
    "ledgerTime",
    "projectedExhaustionTime",
    "windows",
}


def _quiet_state(kube: Kube) -> tuple[object, ...]:
    """Everything that must not change while nothing happens: workloads, pods, and the policy's
    status apart from the running ledger."""
    deployments = kube.get_json("deploy", "-n", "ai-workloads")["items"]
    pods = kube.get_json("pods", "-n", "ai-workloads")["items"]
    policy = kube.get_json("fop", "-n", "ai-workloads", "edge-ai-inference-cost-policy")
    status = {k: v for k, v in policy["status"].items() if k not in LEDGER_FIELDS}
    status["workloads"] = [{k: v for k, v in w.items() if k != "gpuHours"} for w in status["workloads"]]
    return (
        sorted((d["metadata"]["name"], d["metadata"]["resourceVersion"]) for d in deployments),
        sorted((p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in pods),
        status,
        policy["metadata"]["generation"],
    )


def test_operator_starts_reconciles_and_exits_cleanly_on_sigterm(kube: Kube, tmp_path: Path) -> None:
    kube.kubectl("apply", "-f", str(REPO / "samples"))
    with running_operator(kube, tmp_path, "--sample-interval", "2") as operator:
        ready = eventually(lambda: _ready(kube), timeout=60, what="policy Ready with 2 governed workloads")
        assert ready["reason"] == "Reconciled"
        table = kube.kubectl("get", "fop", "-n", "ai-workloads")
        assert "True" in table.splitlines()[1]
        # Ready may be left over from an earlier operator: wait for this one's own reconcile.
        gauge = (
            'finops_governed_workloads{namespace="ai-workloads",policy="edge-ai-inference-cost-policy"} 2.0'
        )
        eventually(lambda: gauge in operator.metrics(), timeout=30, what="the governed-workloads gauge")

        # Level-triggered and quiet: once reconciled, more samples change nothing but the ledger.
        def tracked() -> bool:
            pods = kube.get_json("pods", "-n", "ai-workloads", "-l", "app=ai-inference-service")["items"]
            return len(pods) == 3 and all(
                "finops.dev/gpu-ledger" in p["metadata"].get("finalizers", []) for p in pods
            )

        eventually(tracked, timeout=30, what="ledger finalizers on the governed GPU pods")
        before = _quiet_state(kube)
        time.sleep(6)
        after = _quiet_state(kube)
        assert after == before
        status = kube.get_json("fop", "-n", "ai-workloads", "edge-ai-inference-cost-policy")["status"]
        assert status["gpuHoursUsed"] > 0
        code = operator.terminate()
    assert code == 0, operator.log()[-3000:]


def test_invalid_settings_are_refused_with_a_clear_error(kube: Kube) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "finops_operator", "run"],
        env={
            **kube.env,
            "PYTHONPATH": f"{REPO / 'operator'}:{REPO}",
            "FINOPS_SAMPLE_INTERVAL_SECONDS": "0",
            "FINOPS_PROMETHEUS_URL": "not a url",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "sample_interval_seconds (FINOPS_SAMPLE_INTERVAL_SECONDS)" in proc.stderr
    assert "prometheus_url (FINOPS_PROMETHEUS_URL)" in proc.stderr


def test_webhook_certificates_leave_no_temporary_directory_behind(kube: Kube, tmp_path: Path) -> None:
    """Issue 10 item 6: every start used to leave a finops-webhook-* directory holding a CA key."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def made() -> list[Path]:
        return [p for p in scratch.iterdir() if p.name.startswith("finops-webhook-")]

    args = ("--webhook", "--webhook-port", str(free_port()))
    try:
        with running_operator(kube, tmp_path, *args, env={"TMPDIR": str(scratch)}) as operator:
            (directory,) = eventually(made, timeout=30, what="the webhook certificates")
            assert sorted(p.name for p in directory.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
            code = operator.terminate()
        assert code == 0, operator.log()[-3000:]
        assert made() == []
    finally:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")
