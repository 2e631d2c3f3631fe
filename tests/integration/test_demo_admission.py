"""What `make demo` shows of admission: the two kubectl commands it prints (``TRY_REJECTED`` and
``TRY_INJECTED`` in the Makefile) do what the demo says, against the samples and the real operator
serving its webhooks: the first is rejected for the CPU cap, the second gets the region's affinity.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops_operator.devcluster.nodes import REGION_LABEL
from tests.kube import REPO, Kube, KubectlError, eventually
from tests.operator_process import free_port, running_operator


def demo_command(variable: str) -> list[str]:
    """The kubectl arguments the Makefile prints, with sample paths made absolute."""
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith(f"{variable} := "):
            args = shlex.split(line.split(":=", 1)[1])
            return [str(REPO / a) if a.startswith("samples/") else a for a in args]
    raise AssertionError(f"{variable} not found in the Makefile")


def webhooks_registered(kube: Kube) -> bool:
    validating = kube.kubectl(
        "get", "validatingwebhookconfiguration", "finops.dev", "-o", "yaml", check=False
    )
    mutating = kube.kubectl("get", "mutatingwebhookconfiguration", "finops.dev", "-o", "yaml", check=False)
    return "finopspolicy-caps" in validating and "sovereignty-deployments" in mutating


@pytest.fixture
def demo_admission(kube: Kube, tmp_path: Path) -> Iterator[None]:
    samples = REPO / "samples"
    for name in ("00-namespaces.yaml", "20-finopspolicy.yaml", "30-sovereignregion.yaml"):
        kube.kubectl("apply", "-f", str(samples / name))
    try:
        with running_operator(kube, tmp_path, "--webhook", "--webhook-port", str(free_port())):
            eventually(lambda: webhooks_registered(kube), timeout=30, what="the operator's webhooks")
            kube.kubectl(
                "wait", "--for=condition=Ready", "fop", "--all", "-n", "ai-workloads", "--timeout=60s"
            )
            kube.kubectl("wait", "--for=condition=Ready", "sovr/eu-west-1", "--timeout=60s")
            yield
    finally:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")


@pytest.mark.usefixtures("demo_admission")
def test_the_commands_make_demo_prints_do_what_it_says(kube: Kube) -> None:
    with pytest.raises(KubectlError) as rejected:
        kube.kubectl(*demo_command("TRY_REJECTED"))
    assert 'admission webhook "finopspolicy-caps.finops.dev" denied the request' in rejected.value.stderr
    assert "16 CPU cores per pod exceeds maxCPUCores 8" in rejected.value.stderr

    affinity = json.loads(kube.kubectl(*demo_command("TRY_INJECTED")))
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    region = {"key": REGION_LABEL, "operator": "In", "values": ["eu-west-1"]}
    assert terms and all(region in term["matchExpressions"] for term in terms)
    # Dry runs: neither command left anything behind.
    names = ("oversized-inference", "reranker")
    assert not kube.kubectl("get", "deploy", "-n", "ai-workloads", *names, "--ignore-not-found", "-o", "name")
