"""Simulated nodes: GPU nodes in two regions with two GPU products, and edge sites.

kwok manages any node annotated ``kwok.x-k8s.io/node: fake``; it keeps the node Ready (heartbeats
through a Lease) and takes the pods bound to it through to Running/Ready. Labeling a node
``finops.dev/simulate=offline`` takes it out of kwok's selection (``KWOK_NODE_LABEL_SELECTOR``; the API
server filters by label, so kwok sees the node leave), which is a site losing its uplink: the node
and its pods go NotReady through the node-lifecycle controller, and come back with the label removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
REGION_LABEL = "topology.kubernetes.io/region"
SITE_LABEL = "finops.dev/site"
SIMULATE_LABEL = "finops.dev/simulate"
OFFLINE = "offline"
KWOK_NODE_LABEL_SELECTOR = f"{SIMULATE_LABEL}!={OFFLINE}"


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node."""

    name: str
    region: str
    gpus: int = 0
    gpu_product: str | None = None
    site: str | None = None
    cpu: str = "64"
    memory: str = "512Gi"
    pods: str = "110"
    labels: dict[str, str] = field(default_factory=dict)


def default_nodes() -> list[NodeSpec]:
    """Two regions with different GPU products, a CPU-only node, and a few edge sites."""
    return [
        NodeSpec("gpu-eu-a100-0", "eu-west-1", gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB"),
        NodeSpec("gpu-eu-a100-1", "eu-west-1", gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB"),
        NodeSpec("gpu-us-h100-0", "us-east-1", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3"),
        NodeSpec("gpu-us-h100-1", "us-east-1", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3"),
        NodeSpec("cpu-eu-0", "eu-west-1"),
        *(
            NodeSpec(
                f"edge-{site}-0",
                "eu-west-1",
                gpus=1,
                gpu_product="NVIDIA-L4",
                site=site,
                cpu="8",
                memory="32Gi",
                labels={"finops.dev/edge": "true"},
            )
            for site in ("paris", "lyon", "berlin")
        ),
    ]


def node_manifest(node: NodeSpec) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        REGION_LABEL: node.region,
        **node.labels,
    }
    capacity = {"cpu": node.cpu, "memory": node.memory, "pods": node.pods}
    if node.gpus:
        capacity[GPU_RESOURCE] = str(node.gpus)
        labels["nvidia.com/gpu.present"] = "true"
    if node.gpu_product:
        labels[GPU_PRODUCT_LABEL] = node.gpu_product
    if node.site:
        labels[SITE_LABEL] = node.site
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "kwok",
            },
            "phase": "Running",
        },
    }
