"""EdgeFleet when the operator starts on a cluster where the fleet and its FinOpsPolicy already exist:
nothing is reported missing while the indexes load, and the fleet's writes are counted like every
other write of the operator. Its own operator process (the one of test_edgefleet.py has stopped)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_edgefleet import apply, fleet, fleet_sites, reasons, settled
from tests.kube import Kube
from tests.operator_process import running_operator


def _requests(metrics: str, verb: str, resource: str) -> float:
    """finops_api_requests_total for one verb and resource, from the exposition text."""
    total = 0.0
    for labels, value in re.findall(r"^finops_api_requests_total\{([^}]*)\} (\S+)$", metrics, re.M):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("verb") == verb and pairs.get("resource") == resource:
            total += float(value)
    return total


def test_existing_policy_is_not_reported_missing_at_start_up_and_writes_are_counted(
    kube: Kube, tmp_path: Path
) -> None:
    namespace, name, group, count = "edgefleet-startup", "assistant", "startup", 3
    with fleet_sites(kube, namespace, group, count):
        apply(
            kube,
            {
                "apiVersion": "finops.dev/v1alpha1",
                "kind": "FinOpsPolicy",
                "metadata": {"name": "edge-cost", "namespace": namespace},
                "spec": {"targetWorkloadSelector": {"matchLabels": {"tier": "edge-inference"}}},
            },
        )
        manifest = fleet(namespace, name, group, "v1")
        manifest["spec"]["finOpsPolicyRef"] = {"name": "edge-cost"}
        apply(kube, manifest)  # before any operator runs: at start-up both are already there
        with running_operator(kube, tmp_path, "--sample-interval", "1") as operator:
            settled(kube, namespace, name, count)
            log = operator.log()
            metrics = operator.metrics()
            # Deleted while the operator runs: it holds finalizers on both.
            kube.kubectl(
                "delete", "edgefleet", name, "-n", namespace, "--cascade=foreground", "--timeout=60s"
            )
            kube.kubectl("delete", "fop", "edge-cost", "-n", namespace, "--timeout=60s")
        assert "Traceback" not in log, log[-5000:]
        # Only this fleet's policy: a fleet left by another test may rightly report its own.
        assert "FinOpsPolicy edge-cost not found" not in log, log[-5000:]
        assert "PolicyNotFound" not in reasons(kube, namespace, name)
        assert _requests(metrics, "apply", "deployments") >= count
        assert _requests(metrics, "create", "controllerrevisions") >= 1
