"""The kustomize base installs into a real API server."""

from __future__ import annotations

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
