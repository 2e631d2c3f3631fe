"""The simulated kubelets (kwok and devcluster/kwok-stages.yaml) behave like real ones where the
operator depends on it: a pod that ran through its node's outage is Ready again once the node is back,
and not while the node is still away.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from finops_operator.devcluster.nodes import SIMULATE_LABEL, NodeSpec, node_manifest
from tests.kube import Kube, eventually
from tests.outages import bring_online, node_ready, ready, take_offline

NAMESPACE = "kubelet-sim"
GROUP_LABEL = "finops.dev/kubelet-test"


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "server", "image": "example/server:1"}],
        },
    }


def conditions(kube: Kube, name: str) -> dict[str, str]:
    status = kube.get_json("pod", "-n", NAMESPACE, name)["status"]
    return {c["type"]: c["status"] for c in status.get("conditions") or []}


def pod_ready(kube: Kube, name: str) -> bool:
    return ready(kube.get_json("pod", "-n", NAMESPACE, name)["status"].get("conditions"))


def ready_since(kube: Kube, node: str) -> datetime:
    """When the node's Ready condition last changed."""
    found = [c for c in kube.get_json("node", node)["status"]["conditions"] if c["type"] == "Ready"]
    return datetime.fromisoformat(found[0]["lastTransitionTime"])


def uid(kube: Kube, name: str) -> str:
    return str(kube.get_json("pod", "-n", NAMESPACE, name)["metadata"]["uid"])


def test_pod_is_ready_again_when_its_node_returns_and_not_while_it_is_away(kube: Kube) -> None:
    if kube.provider != "local":
        pytest.skip("kwok's stages belong to the local control plane; other clusters have their own kubelets")
    returning, away = "kubelet-sim-returning", "kubelet-sim-away"
    nodes = [NodeSpec(name, "eu-west-1", labels={GROUP_LABEL: "true"}) for name in (returning, away)]
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([node_manifest(n) for n in nodes]))
    try:
        eventually(lambda: node_ready(kube, returning) and node_ready(kube, away), what="nodes Ready")
        kube.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump_all([pod("back", returning), pod("gone", away)])
        )
        eventually(lambda: pod_ready(kube, "back") and pod_ready(kube, "gone"), what="pods Ready")
        before = uid(kube, "back"), uid(kube, "gone")

        # Both sites lose their uplink: the node-lifecycle controller marks their pods not Ready; the
        # containers themselves were never reported down.
        take_offline(kube, returning, away)
        for name in ("back", "gone"):
            eventually(lambda name=name: not pod_ready(kube, name), timeout=30, what=f"{name} not Ready")
            assert conditions(kube, name)["ContainersReady"] == "True"

        # One site comes back: its pod, the same one, is Ready again; the other one's is not. The node
        # is Ready since it came back, not since it was created.
        went_away = ready_since(kube, returning)
        # lastTransitionTime has one-second resolution: come back in a later second than we left.
        while datetime.now(UTC).replace(microsecond=0) <= went_away:
            time.sleep(0.1)
        bring_online(kube, returning)
        assert ready_since(kube, returning) > went_away
        eventually(lambda: pod_ready(kube, "back"), timeout=30, what="pod Ready after its node returned")
        assert conditions(kube, "back") == {
            "Initialized": "True",
            "Ready": "True",
            "ContainersReady": "True",
            "PodScheduled": "True",
        }
        for _ in range(10):  # and it stays so, while the pod on the node still away stays not Ready
            assert pod_ready(kube, "back") and not pod_ready(kube, "gone")
            time.sleep(1)
        assert (uid(kube, "back"), uid(kube, "gone")) == before

        bring_online(kube, away)
        eventually(
            lambda: pod_ready(kube, "gone"), timeout=30, what="second pod Ready after its node returned"
        )
    finally:
        for node in nodes:
            kube.kubectl("label", "node", node.name, f"{SIMULATE_LABEL}-", check=False)
        kube.kubectl("delete", "pods", "--all", "-n", NAMESPACE, "--timeout=60s", check=False)
        kube.kubectl("delete", "node", "-l", f"{GROUP_LABEL}=true", "--wait=false", check=False)
