"""autoScale bounds through the operator's HPAs, enforced by the real HPA controller, and no write loops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from tests.kube import Kube, eventually
from tests.operator_process import running_operator

NAMESPACE = "autoscale"


def web(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name, "tier": "inference"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "example/api:1", "resources": {"requests": {"cpu": "100m"}}}
                    ]
                },
            },
        },
    }


POLICY = {
    "apiVersion": "finops.dev/v1alpha1",
    "kind": "FinOpsPolicy",
    "metadata": {"name": "bounds", "namespace": NAMESPACE},
    "spec": {
        "targetWorkloadSelector": {"matchLabels": {"tier": "inference"}},
        "autoScale": {"minReplicas": 2, "maxReplicas": 3, "cpuUtilizationPercentage": 60},
    },
}

USER_HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "mine", "namespace": NAMESPACE},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-c"},
        "minReplicas": 1,
        "maxReplicas": 10,
    },
}


def hpa(kube: Kube, name: str) -> dict[str, Any]:
    return dict(kube.get_json("hpa", "-n", NAMESPACE, name))


def replicas(kube: Kube, name: str) -> int:
    return int(kube.get_json("deploy", "-n", NAMESPACE, name)["spec"]["replicas"])


def generations(kube: Kube) -> dict[str, Any]:
    """Spec generations of everything the operator could write, plus the policy's resourceVersion."""
    objects = kube.get_json("deploy,hpa,fop", "-n", NAMESPACE)["items"]

    def fingerprint(o: dict[str, Any]) -> Any:
        if o["kind"] == "FinOpsPolicy":
            return o["metadata"]["resourceVersion"]  # status included: it must not change either
        if o["kind"] == "HorizontalPodAutoscaler":
            return (o["spec"], o["metadata"].get("labels"))  # HPAs carry no generation
        return o["metadata"]["generation"]

    return {f"{o['kind']}/{o['metadata']['name']}": fingerprint(o) for o in objects}


def test_operator_owns_hpas_within_policy_bounds_and_never_loops(kube: Kube, tmp_path: Path) -> None:
    kube.kubectl("create", "namespace", NAMESPACE)
    kube.kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump_all([web("web-a", 5), web("web-b", 1), web("web-c", 1), USER_HPA, POLICY]),
    )
    with running_operator(kube, tmp_path, "--sample-interval", "2") as operator:
        for name in ("web-a", "web-b"):
            owned = eventually(lambda name=name: hpa(kube, name), timeout=30, what=f"HPA for {name}")
            assert owned["spec"]["minReplicas"] == 2 and owned["spec"]["maxReplicas"] == 3
            assert owned["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
            assert owned["metadata"]["ownerReferences"][0]["kind"] == "FinOpsPolicy"
            fields = kube.get_json("hpa", "-n", NAMESPACE, name, "--show-managed-fields")["metadata"]
            managers = {m["manager"] for m in fields["managedFields"]}
            assert "finops-operator" in managers
        # The real HPA controller enforces the bounds the operator set.
        eventually(lambda: replicas(kube, "web-a") == 3, timeout=60, what="web-a scaled down to max 3")
        eventually(lambda: replicas(kube, "web-b") == 2, timeout=60, what="web-b scaled up to min 2")
        # Someone else's HPA is left alone and reported, not fought.
        assert "web-c" not in kube.kubectl("get", "hpa", "-n", NAMESPACE, "-o", "name")
        ready = next(
            c
            for c in kube.get_json("fop", "-n", NAMESPACE, "bounds")["status"]["conditions"]
            if c["type"] == "Ready"
        )
        assert "web-c" in ready["message"] and "another HPA" in ready["message"]

        # A quiet minute: not a single write from the operator (nor a fight with the HPA controller).
        time.sleep(5)
        before, actions_before = generations(kube), operator.metrics().count("finops_actions_total{")
        time.sleep(60)
        assert generations(kube) == before
        assert operator.metrics().count("finops_actions_total{") == actions_before

        # A policy change reaches the HPAs promptly.
        kube.kubectl(
            "patch",
            "fop",
            "-n",
            NAMESPACE,
            "bounds",
            "--type=merge",
            "-p",
            '{"spec":{"autoScale":{"maxReplicas":4}}}',
        )
        eventually(lambda: hpa(kube, "web-a")["spec"]["maxReplicas"] == 4, timeout=30, what="maxReplicas 4")

        kube.kubectl("delete", "fop", "-n", NAMESPACE, "bounds", "--timeout=60s")
        eventually(
            lambda: "web-a" not in kube.kubectl("get", "hpa", "-n", NAMESPACE, "-o", "name"),
            timeout=60,
            what="owned HPAs garbage-collected with their policy",
        )
        assert "mine" in kube.kubectl("get", "hpa", "-n", NAMESPACE, "-o", "name")
