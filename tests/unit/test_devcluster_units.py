"""Pure parts of the dev-cluster tooling: go.mod parsing, binary discovery, node manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops_operator.devcluster import binaries
from finops_operator.devcluster.cluster import ClusterError, ClusterState, LocalCluster
from finops_operator.devcluster.nodes import NodeSpec, node_manifest

GO_MOD = """module k8s.io/kubernetes

go 1.23.0

require (
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/example/other => github.com/example/other v1.2.3
)
"""


def test_staging_replaces_map_to_matching_v0_versions() -> None:
    assert binaries._staging_replaces(GO_MOD, "v1.32.4") == [
        ("k8s.io/api", "v0.32.4"),
        ("k8s.io/client-go", "v0.32.4"),
    ]


def test_kubebuilder_assets_win_over_everything(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    assert binaries.locate("etcd", {"KUBEBUILDER_ASSETS": str(tmp_path), "PATH": ""}) == tmp_path / "etcd"
    override = tmp_path / "my-apiserver"
    override.write_text("")
    env = {"TEST_ASSET_KUBE_APISERVER": str(override), "PATH": ""}
    assert binaries.locate("kube-apiserver", env) == override


def test_gpu_node_manifest_has_capacity_and_topology_labels() -> None:
    node = node_manifest(
        NodeSpec("n1", "eu-west-1", gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB", site="paris")
    )
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    labels = node["metadata"]["labels"]
    assert labels["topology.kubernetes.io/region"] == "eu-west-1"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["finops.dev/site"] == "paris"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_restart_names_the_components_it_knows_and_refuses_others(tmp_path: Path) -> None:
    state = ClusterState(
        str(tmp_path), api_port=1, etcd_port=2, pids={"etcd": 1}, commands={"etcd": ["etcd"]}
    )
    state.save()
    cluster = LocalCluster(tmp_path)
    assert cluster.state == state  # the command lines survive in cluster.json for ``restart``
    with pytest.raises(ClusterError, match="no component 'kube-apiserver' to restart; components: etcd"):
        cluster.restart("kube-apiserver")
    with pytest.raises(ClusterError, match="no local cluster"):
        LocalCluster(tmp_path / "elsewhere").restart("etcd")
