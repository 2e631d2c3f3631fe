"""The CRDs on a real API server: established, listed, explained, and validating what users write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kube import REPO, Kube, KubectlError

INVALID = sorted((REPO / "samples" / "invalid").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return first.removeprefix("# expect: ")


def test_crds_are_established_and_in_the_finops_category(kube: Kube) -> None:
    for plural in ("finopspolicies", "sovereignregions", "edgefleets", "modelreleasegates"):
        crd = kube.get_json("crd", f"{plural}.finops.dev")
        established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert established["Established"] == "True"
        assert "finops" in crd["spec"]["names"]["categories"]
    resources = kube.kubectl("api-resources", "--api-group=finops.dev")
    for short in ("fop", "sovr", "ef", "mrg"):
        assert f" {short} " in resources


def test_kubectl_get_finops_shows_printer_columns(kube: Kube) -> None:
    kube.kubectl("create", "namespace", "columns-test")
    kube.kubectl(
        "apply",
        "-n",
        "columns-test",
        "-f",
        "-",
        stdin="""
apiVersion: finops.dev/v1alpha1
kind: FinOpsPolicy
metadata: {name: columns}
spec:
  targetWorkloadSelector: {matchLabels: {app: x}}
  enforcementMode: DryRun
""",
    )
    table = kube.kubectl("get", "finops", "-n", "columns-test")
    header = table.splitlines()[0].split()
    assert header == ["NAME", "MODE", "BUDGET-USED", "GPU-HOURS", "WORKLOADS", "READY", "AGE"]
    assert "DryRun" in table
    wide = kube.kubectl("get", "fop", "-n", "columns-test", "-o", "wide").splitlines()[0].split()
    assert "IDLE" in wide


def test_kubectl_explain_documents_the_fields(kube: Kube) -> None:
    text = kube.kubectl("explain", "finopspolicy.spec.costLimits")
    assert "Daily budgets and per-workload caps." in text
    for field in (
        "dailyGPUHours",
        "dailyCost",
        "maxCPUCores",
        "maxMemoryGB",
        "maxGPUsPerPod",
        "budgetAction",
    ):
        assert field in text
    assert "ScaleToMin" in kube.kubectl("explain", "finopspolicy.spec.costLimits.budgetAction")
    assert "region" in kube.kubectl("explain", "sovereignregion.spec")
    assert "wavePercents" in kube.kubectl("explain", "edgefleet.spec.rollout")


def test_every_sample_applies(kube: Kube) -> None:
    out = kube.kubectl("apply", "-f", str(REPO / "samples"))
    assert "finopspolicy.finops.dev/edge-ai-inference-cost-policy" in out
    assert "sovereignregion.finops.dev/eu-west-1" in out
    assert "edgefleet.finops.dev/store-assistant" in out
    assert "modelreleasegate.finops.dev/production-models" in out
    policy = kube.get_json("fop", "-n", "ai-workloads", "edge-ai-inference-cost-policy")
    assert policy["spec"]["costLimits"]["dailyGPUHours"] == 18
    assert policy["spec"]["budgetWindow"]["timeZone"] == "Europe/Paris"
    # Defaults from the models are applied by the API server itself.
    region = kube.get_json("sovr", "eu-west-1")
    assert region["spec"]["dataClassificationLabel"] == "finops.dev/data-classification"
    fleet = kube.get_json("ef", "-n", "edge-ai", "store-assistant")
    assert fleet["spec"]["rollout"]["paused"] is False


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_sample_is_rejected_with_its_message(kube: Kube, path: Path) -> None:
    kube.kubectl("apply", "-f", str(REPO / "samples" / "00-namespaces.yaml"))
    with pytest.raises(KubectlError) as rejected:
        kube.kubectl("apply", "-f", str(path))
    assert expected_message(path) in rejected.value.stderr
