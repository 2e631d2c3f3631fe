"""Shared fixtures. Integration tests get one real cluster per session:

* ``FINOPS_TEST_CLUSTER=existing`` uses ``KUBECONFIG`` (a cluster you already run);
* ``FINOPS_TEST_CLUSTER=kind`` (or auto, where Docker and kind work) uses pytest-kind;
* otherwise (auto, or ``local``) the project's own control plane on 127.0.0.1, built from source
  on first use and cached under ~/.cache.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import REPO, Kube, docker_and_kind_work, install_crds

sys.path.insert(0, str(REPO / "operator"))

pytest_plugins = ["tests.prometheus_harness"]  # prometheus_binary, make_prometheus, dcgm_exporter, ...


def _provider() -> str:
    requested = os.environ.get("FINOPS_TEST_CLUSTER", "auto")
    if requested != "auto":
        return requested
    return "kind" if docker_and_kind_work() else "local"


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    provider = _provider()
    if provider == "existing":
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("FINOPS_TEST_CLUSTER=existing needs KUBECONFIG")
        cluster = Kube(Path(kubeconfig), "existing")
        install_crds(cluster)
        yield cluster
        return
    if provider == "kind":
        from pytest_kind import KindCluster

        kind = KindCluster("finops-test")
        kind.create()
        try:
            cluster = Kube(Path(kind.kubeconfig_path), "kind")
            import yaml

            from finops_operator.devcluster.nodes import default_nodes, node_manifest

            cluster.kubectl(
                "apply", "-f", "-", stdin=yaml.safe_dump_all([node_manifest(n) for n in default_nodes()])
            )
            install_crds(cluster)
            yield cluster
        finally:
            kind.delete()
        return
    from finops_operator.devcluster.cluster import LocalCluster

    local = LocalCluster(tmp_path_factory.mktemp("cluster"), progress=lambda m: print(f"[cluster] {m}"))
    state = local.up()
    try:
        cluster = Kube(state.kubeconfig, "local", control_plane=local)
        install_crds(cluster)
        yield cluster
    finally:
        local.down(quiet=True)
