"""EdgeFleet is not a confused deputy (planners/fleet/author.py), on the real control plane with the
real operator: a user allowed to write EdgeFleets but not Deployments cannot make the operator create
Deployments for them; a user allowed both can; a fleet written before the check was in force is held
until re-applied. Users are impersonated with `kubectl --as`, as an admin would test RBAC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube import Kube, KubectlError, eventually
from tests.operator_process import OperatorProcess, running_operator

NAMESPACE = "deputy"
POLICY = "finops.dev-edgefleet-author"


def _fleet(name: str, model: str = "v1") -> str:
    return json.dumps(
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "EdgeFleet",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "nodeSelector": {"matchLabels": {"finops.dev/edge": "true"}},
                "modelVersion": model,
                "rollout": {"wavePercents": [100], "soakSeconds": 0},
                "template": {"spec": {"containers": [{"name": "server", "image": "llama:1"}]}},
            },
        }
    )


def _grant(kube: Kube, user: str, *rules: dict[str, Any]) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": NAMESPACE},
        "rules": list(rules),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": user, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    kube.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )


FLEET_WRITER = {
    "apiGroups": ["finops.dev"],
    "resources": ["edgefleets"],
    "verbs": ["get", "create", "update", "patch"],
}
DEPLOYER = {
    "apiGroups": ["apps"],
    "resources": ["deployments"],
    "verbs": ["get", "create", "update", "patch"],
}


@pytest.fixture(scope="module")
def operator(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kube.kubectl("create", "namespace", NAMESPACE)
    _grant(kube, "mallory", FLEET_WRITER)
    _grant(kube, "alice", FLEET_WRITER, DEPLOYER)
    log_dir: Path = tmp_path_factory.mktemp("deputy-operator")
    try:
        with running_operator(kube, log_dir, "--sample-interval", "2") as process:
            eventually(
                lambda: kube.kubectl("get", "validatingadmissionpolicybinding", POLICY, check=False),
                timeout=60,
                what="the author-check admission policy",
            )
            yield process
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def _ready(kube: Kube, name: str) -> dict[str, Any] | None:
    body = kube.get_json("edgefleet", name, "-n", NAMESPACE)
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


def _site_deployments(kube: Kube, fleet: str) -> list[str]:
    listed = kube.get_json("deployments", "-n", NAMESPACE, "-l", f"finops.dev/edgefleet={fleet}")
    return [d["metadata"]["name"] for d in listed["items"]]


def test_a_fleet_author_who_cannot_create_deployments_is_refused(
    kube: Kube, operator: OperatorProcess
) -> None:
    with pytest.raises(KubectlError) as refused:
        kube.kubectl("create", "-f", "-", "--as", "mallory", stdin=_fleet("by-mallory"))
    assert "mallory cannot create deployments.apps in namespace deputy" in str(refused.value)
    assert kube.kubectl("get", "edgefleet", "by-mallory", "-n", NAMESPACE, check=False) == ""


def test_a_fleet_author_who_can_create_deployments_gets_them(kube: Kube, operator: OperatorProcess) -> None:
    kube.kubectl("create", "-f", "-", "--as", "alice", stdin=_fleet("by-alice"))
    eventually(
        lambda: _site_deployments(kube, "by-alice"), timeout=60, what="site Deployments of alice's fleet"
    )
    # Nor can a permitted fleet be taken over by an unpermitted spec edit.
    with pytest.raises(KubectlError, match="mallory cannot create deployments"):
        kube.kubectl(
            "patch", "edgefleet", "by-alice", "-n", NAMESPACE, "--as", "mallory", "--type=merge",
            "-p", '{"spec": {"modelVersion": "v2"}}',
        )  # fmt: skip


def test_a_fleet_written_before_the_check_is_held_until_reapplied(
    kube: Kube, operator: OperatorProcess
) -> None:
    """Remove the check (an admin's mistake, or a fleet restored from a backup of before): a fleet
    written meanwhile is not trusted once the operator has put the check back."""
    kube.kubectl("delete", "validatingadmissionpolicybinding", POLICY)
    kube.kubectl("create", "-f", "-", stdin=_fleet("unchecked"))
    eventually(
        lambda: kube.kubectl("get", "validatingadmissionpolicybinding", POLICY, check=False),
        timeout=60,
        what="the operator to restore the check",
    )
    held = eventually(
        lambda: (r := _ready(kube, "unchecked")) and "re-apply" in r.get("message", "") and r,
        timeout=60,
        what="the unchecked fleet held once the check is back",
    )
    assert held["status"] == "False" and held["reason"] == "AuthorUnchecked"
    assert _site_deployments(kube, "unchecked") == []
    # Re-applied by someone the API server now checks: rolled out.
    kube.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=_fleet("unchecked", model="v2")
    )
    eventually(
        lambda: _site_deployments(kube, "unchecked"), timeout=60, what="site Deployments once re-applied"
    )
