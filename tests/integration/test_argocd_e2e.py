"""End to end with a real Argo CD (tests/argocd_harness.py): an Application syncs samples/ from Git with
the ignoreDifferences and sync options docs/GITOPS.md documents, the health of our kinds comes from our
Lua (deploy/argocd/argocd-cm.yaml), and Argo CD and the operator never fight over a field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_harness import (
    APPLICATIONSET,
    IN_CLUSTER,
    NAMESPACE,
    ArgoCD,
    GitRepo,
    git_server,
    running_argocd,
)
from tests.kube import REPO, Kube, eventually
from tests.operator_process import OperatorProcess, running_operator

APP = "finops-samples"
POLICY = ("ai-workloads", "edge-ai-inference-cost-policy")
RESYNC = 10  # --app-resync of the harness' application-controller
ARGO_MANAGER = "argocd-controller"

# The first run builds Argo CD from source (about 13 min on 2 cores), then it is cached.
pytestmark = [pytest.mark.timeout(1800)]


def application(repo_url: str) -> dict[str, Any]:
    """samples/ from the test's Git repository, with the sync policy and ignoreDifferences of the
    documented ApplicationSet (auto-sync, self-heal; replicas the operator and its HPAs set are not
    drift and are kept on sync)."""
    documented = yaml.safe_load(APPLICATIONSET.read_text())["spec"]["template"]["spec"]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "main", "path": "samples"},
            "destination": {"server": IN_CLUSTER},
            "syncPolicy": documented["syncPolicy"],
            "ignoreDifferences": documented["ignoreDifferences"],
        },
    }


def our_samples() -> list[dict[str, Any]]:
    """The finops.dev objects of samples/ (not the namespaces and workloads around them)."""
    return [
        document
        for path in sorted((REPO / "samples").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and str(document.get("apiVersion", "")).startswith("finops.dev/")
    ]


@pytest.fixture
def stack(kube: Kube, tmp_path: Path) -> Iterator[tuple[GitRepo, ArgoCD, OperatorProcess]]:
    with (
        git_server(tmp_path / "git", REPO / "samples") as repo,
        running_operator(kube, tmp_path, "--sample-interval", "1") as operator,
    ):
        try:
            # As on a fresh GitOps install, Argo CD creates our objects: an earlier test (test_api)
            # may have applied the samples with kubectl, which would then own their spec.
            kube.kubectl(
                "delete",
                "--ignore-not-found",
                "--wait=true",
                "-f",
                "-",
                stdin=yaml.safe_dump_all(our_samples()),
            )
            with running_argocd(kube, tmp_path) as argocd:
                kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(application(repo.url)))
                yield repo, argocd, operator
        finally:
            # Argo CD is gone. Leave the samples as test_api leaves them (applied as in the repo), with
            # the policy's budget back, while the operator runs to restore what it scaled down.
            kube.kubectl("delete", "application.argoproj.io", "-n", NAMESPACE, APP, "--ignore-not-found")
            kube.kubectl("apply", "-f", str(REPO / "samples"))
            try:
                eventually(
                    lambda: (
                        kube.get_json("deploy", "-n", POLICY[0], "llm-inference")["spec"]["replicas"] == 2
                    ),
                    timeout=120,
                    what="llm-inference restored once the budget is back",
                )
            except AssertionError as error:
                policy = kube.get_json("fop", "-n", POLICY[0], POLICY[1])
                raise AssertionError(f"{error}\n{policy}\n{operator.log()[-6000:]}") from None
        assert "Traceback" not in operator.log(), operator.log()[-5000:]


def resource(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in app["status"].get("resources", []) if r["kind"] == kind and r["name"] == name]
    return found[0] if found else {}


def edit_policy(repo: GitRepo, change: dict[str, Any], message: str) -> str:
    path = repo.work / "samples" / "20-finopspolicy.yaml"
    policy = yaml.safe_load(path.read_text())
    for key, value in change.items():
        policy["spec"][key] = {**policy["spec"].get(key, {}), **value}
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return repo.commit(message)


def synced_at(argocd: ArgoCD, revision: str) -> dict[str, Any] | None:
    app = argocd.application(APP)
    sync = app.get("status", {}).get("sync", {})
    return app if sync.get("status") == "Synced" and sync.get("revision") == revision else None


def test_argo_cd_syncs_the_samples_shows_our_health_and_never_fights_the_operator(
    kube: Kube, stack: tuple[GitRepo, ArgoCD, OperatorProcess]
) -> None:
    repo, argocd, _ = stack
    namespace, name = POLICY

    # 1. Synced from Git; our kinds get health from our Lua, not "no health at all".
    app = eventually(
        lambda: (
            (a := argocd.application(APP)).get("status", {}).get("sync", {}).get("status") == "Synced"
            and resource(a, "FinOpsPolicy", name).get("health", {}).get("status") == "Healthy"
            and a
        ),
        timeout=120,
        what="Application synced with a Healthy FinOpsPolicy",
    )
    for kind, obj in (("SovereignRegion", "eu-west-1"), ("EdgeFleet", "store-assistant")):
        assert resource(app, kind, obj).get("health", {}).get("status"), (kind, app["status"]["resources"])

    # 2. A policy made invalid in Git: the Application is Degraded with the operator's message.
    bad = edit_policy(repo, {"budgetWindow": {"timeZone": "Mars/Olympus_Mons"}}, "a typo in the time zone")
    degraded = eventually(
        lambda: (a := synced_at(argocd, bad)) and a["status"]["health"]["status"] == "Degraded" and a,
        timeout=90,
        what="Application Degraded by the invalid policy",
    )
    health = resource(degraded, "FinOpsPolicy", name)["health"]
    assert health["status"] == "Degraded" and "InvalidTimeZone" in health["message"], health
    assert "Mars/Olympus_Mons" in health["message"], health

    # 3. Fixed with a tiny budget: reconciled by the operator within one sync; it then scales the
    # Deployments down (ScaleToMin), which Argo CD neither reports as drift nor reverts.
    fixed = edit_policy(
        repo,
        {"budgetWindow": {"timeZone": "Europe/Paris"}, "costLimits": {"dailyGPUHours": 0.0005}},
        "fix the time zone; spend almost nothing today",
    )
    eventually(lambda: synced_at(argocd, fixed), timeout=90, what="the fix synced")
    synced = time.monotonic()
    policy = eventually(
        lambda: (
            (p := kube.get_json("fop", "-n", namespace, name))["status"]["observedGeneration"]
            == p["metadata"]["generation"]
            and p
        ),
        timeout=RESYNC,
        what="the operator reconciling the synced generation within one sync",
    )
    assert policy["spec"]["costLimits"]["dailyGPUHours"] == 0.0005
    eventually(
        lambda: kube.get_json("deploy", "-n", namespace, "llm-inference")["spec"]["replicas"] == 1,
        timeout=60,
        what="the operator's budget scale-down of llm-inference (2 -> 1)",
    )
    operations = argocd.application(APP)["status"].get("operationState", {}).get("startedAt")
    time.sleep(max(0.0, 3 * RESYNC - (time.monotonic() - synced)))  # three resyncs with self-heal on
    app = argocd.application(APP)
    assert app["status"]["sync"]["status"] == "Synced", app["status"]
    assert app["status"].get("operationState", {}).get("startedAt") == operations, "Argo CD re-synced"
    assert kube.get_json("deploy", "-n", namespace, "llm-inference")["spec"]["replicas"] == 1
    budget = resource(app, "FinOpsPolicy", name)["health"]
    assert budget["status"] == "Healthy" and "BudgetExhausted" in budget["message"], budget

    # 4. The operator never writes a spec: the managers that write our status (the operator) own no
    # spec field of our kinds in managedFields; Argo CD owns the spec.
    for resource_name, obj_namespace, obj_name in (
        ("fop", namespace, name),
        ("sovereignregion", None, "eu-west-1"),
        ("edgefleet", "edge-ai", "store-assistant"),
    ):
        where = ["-n", obj_namespace] if obj_namespace else []
        fields = kube.get_json(resource_name, obj_name, *where, "--show-managed-fields")["metadata"][
            "managedFields"
        ]
        operator_managers = {m["manager"] for m in fields if m.get("subresource") == "status"}
        spec_owners = {m["manager"] for m in fields if "f:spec" in m.get("fieldsV1", {})}
        assert operator_managers and ARGO_MANAGER in spec_owners, (obj_name, fields)
        assert not operator_managers & spec_owners, (obj_name, operator_managers, spec_owners)
        assert not any(m.startswith("finops") for m in spec_owners), (obj_name, spec_owners)

    # 5. Self-heal is really on: a hand edit of the policy's spec is reverted to Git.
    kube.kubectl(
        "patch", "fop", "-n", namespace, name, "--type=merge", "-p", '{"spec": {"enforcementMode": "DryRun"}}'
    )
    eventually(
        lambda: kube.get_json("fop", "-n", namespace, name)["spec"]["enforcementMode"] == "Enforce",
        timeout=60,
        what="self-heal reverting a manual spec edit",
    )
