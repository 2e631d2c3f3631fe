"""The kustomize base installs into a real API server, and its replicas share one webhook certificate."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import config

from finops_operator.kube import KubeClient
from finops_operator.webhooks import shared_certificate
from tests.kube import REPO, Kube


def test_kustomize_base_passes_server_side_dry_run(kube: Kube) -> None:
    rendered = kube.kubectl("kustomize", str(REPO / "deploy"))
    assert "kind: ClusterRole" in rendered
    # A server-side dry run cannot create the namespace it then validates objects in (kubectl sends
    # the Namespace first, but a dry run persists nothing), so the namespace is created for real.
    kube.kubectl("apply", "-f", str(REPO / "deploy" / "namespace.yaml"))
    out = kube.kubectl("apply", "-k", str(REPO / "deploy"), "--dry-run=server")
    assert "deployment.apps/finops-operator created (server dry run)" in out or (
        "deployment.apps/finops-operator configured (server dry run)" in out
    )
    assert "clusterrole.rbac.authorization.k8s.io/finops-operator" in out
    assert "poddisruptionbudget.policy/finops-operator" in out


SECRET_NAMESPACE = "deploy-shared-cert"
HOSTS = ("finops-operator.finops-system.svc",)


@pytest.fixture
def thin(kube: Kube) -> Iterator[KubeClient]:
    kube.kubectl("create", "namespace", SECRET_NAMESPACE, check=False)
    kube.kubectl("delete", "secret", "finops-webhook-tls", "-n", SECRET_NAMESPACE, "--ignore-not-found")
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    yield KubeClient(api)
    kube.kubectl("delete", "namespace", SECRET_NAMESPACE, "--wait=false", check=False)


def test_replicas_starting_together_serve_one_certificate(thin: KubeClient, tmp_path: Path) -> None:
    """Two replicas starting at once: one creates the Secret, the other reads it (the create race
    decides), so both serve the same CA and the caBundle either writes is trusted for both. A third
    start (a restart) reads it again rather than making a new one."""

    def start(replica: str) -> bytes:
        files = shared_certificate(thin, SECRET_NAMESPACE, "finops-webhook-tls", HOSTS, tmp_path / replica)
        return files.ca_path.read_bytes() + files.cert_path.read_bytes() + files.key_path.read_bytes()

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(start, ("a", "b"))
    assert first == second
    assert start("restarted") == first
