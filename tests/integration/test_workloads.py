"""Simulated GPU nodes behave like real ones to the scheduler and the controllers."""

from __future__ import annotations

import yaml

from finops_operator.devcluster.nodes import NodeSpec, node_manifest
from tests.kube import Kube, eventually

POOL = {"finops.dev/test-pool": "workload-test"}

GPU_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "gpu-smoke", "namespace": "workload-test"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "gpu-smoke"}},
        "template": {
            "metadata": {"labels": {"app": "gpu-smoke"}},
            "spec": {
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", **POOL},
                "containers": [
                    {
                        "name": "c",
                        "image": "example/inference:1",
                        "resources": {"limits": {"nvidia.com/gpu": "4"}},
                    }
                ],
            },
        },
    },
}


def _dedicated_gpu_nodes(kube: Kube) -> None:
    """Nodes only these tests schedule onto, so GPUs used by other tests cannot interfere."""
    nodes = [
        NodeSpec(f"wt-h100-{i}", "us-east-1", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3", labels=POOL)
        for i in range(2)
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([node_manifest(n) for n in nodes]))
    kube.kubectl(
        "wait", "--for=condition=Ready", "node", "-l", "finops.dev/test-pool=workload-test", "--timeout=60s"
    )


def test_gpu_deployment_gets_a_replicaset_and_ready_pods_on_gpu_nodes(kube: Kube) -> None:
    _dedicated_gpu_nodes(kube)
    kube.kubectl("create", "namespace", "workload-test")
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(GPU_DEPLOYMENT))
    eventually(
        lambda: (
            kube.get_json("deploy", "-n", "workload-test", "gpu-smoke")["status"].get("readyReplicas") == 3
        ),
        timeout=90,
        what="3 ready replicas",
    )
    replicasets = kube.get_json("rs", "-n", "workload-test", "-l", "app=gpu-smoke")["items"]
    assert len(replicasets) == 1
    pods = kube.get_json("pods", "-n", "workload-test", "-l", "app=gpu-smoke")["items"]
    nodes = {pod["spec"]["nodeName"] for pod in pods}
    for name in nodes:
        node = kube.get_json("node", name)
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == "us-east-1"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    # 3 pods x 4 GPUs cannot fit on one 8-GPU node: the scheduler really counted the extended resource.
    assert len(nodes) == 2


def test_gpu_requests_beyond_capacity_stay_pending(kube: Kube) -> None:
    greedy = yaml.safe_load(yaml.safe_dump(GPU_DEPLOYMENT))
    greedy["metadata"]["name"] = "gpu-greedy"
    greedy["spec"]["replicas"] = 1
    greedy["spec"]["selector"]["matchLabels"]["app"] = "gpu-greedy"
    greedy["spec"]["template"]["metadata"]["labels"]["app"] = "gpu-greedy"
    greedy["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "16"
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(greedy))

    def unschedulable() -> bool:
        pods = kube.get_json("pods", "-n", "workload-test", "-l", "app=gpu-greedy")["items"]
        return bool(pods) and any(
            c.get("reason") == "Unschedulable" for c in pods[0]["status"].get("conditions", [])
        )

    eventually(unschedulable, timeout=60, what="an Unschedulable pod")
