"""The Helm chart, rendered offline by the real helm binary: lint, the schema's refusals, and no drift
from the kustomize base (deploy/) or from the generated CRDs (crds/)."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import CHART, KUBE_VERSION, HelmError, helm, render, render_objects
from tests.kube import REPO, kubectl_binary

# Labels that say who rendered an object, not what it is.
PROVENANCE_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart", "app.kubernetes.io/version")
Key = tuple[str, str, str | None]


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objects}


def without_provenance(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    labels = obj["metadata"].get("labels", {})
    for label in PROVENANCE_LABELS:
        labels.pop(label, None)
    annotations = obj["metadata"].get("annotations", {})
    annotations.pop("helm.sh/resource-policy", None)  # the chart keeps CRDs on uninstall
    if not annotations:
        obj["metadata"].pop("annotations", None)
    return obj


def kustomize(directory: Path) -> dict[Key, dict[str, Any]]:
    out = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    return by_key([without_provenance(doc) for doc in yaml.safe_load_all(out) if doc])


def assert_same_objects(base: dict[Key, dict[str, Any]], chart: dict[Key, dict[str, Any]]) -> None:
    """The same objects on both sides (the Namespace is the one deliberate difference: Helm installs
    into `--namespace finops-system --create-namespace`), with the same content."""
    assert set(base) - set(chart) == {("Namespace", "finops-system", None)}
    assert set(chart) - set(base) == set()
    for key in sorted(chart, key=str):
        if chart[key] != base[key]:
            diff = difflib.unified_diff(
                yaml.safe_dump(base[key]).splitlines(),
                yaml.safe_dump(chart[key]).splitlines(),
                "kustomize",
                "helm",
                lineterm="",
            )
            pytest.fail(f"{key} drifted between deploy/ and the chart:\n" + "\n".join(diff))


def test_chart_lints_clean() -> None:
    out = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION)
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_default_render_is_the_kustomize_base() -> None:
    """One install, two front doors: with default values the chart renders exactly the kustomize base's
    objects (labels saying who rendered them aside)."""
    assert_same_objects(kustomize(REPO / "deploy"), by_key([without_provenance(o) for o in render_objects()]))


def test_chart_crds_are_the_generated_ones() -> None:
    """files/crds is a copy of crds/ (Helm cannot read outside the chart): `cp crds/*.yaml` after
    `make crds`, or this fails."""
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == sorted(p.name for p in (REPO / "crds").glob("finops.dev_*.yaml"))
    for copy in copies:
        assert copy.read_text() == (REPO / "crds" / copy.name).read_text(), f"cp crds/{copy.name} {copy}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 0"),
        ({"leaderElection.leaseDurationSeconds": 1}, "at '/leaderElection/leaseDurationSeconds': minimum"),
        ({"leaderElection.leaseName": "Finops_Lease"}, "at '/leaderElection/leaseName'"),
        ({"podDisruptionBudget.minAvailable": 0}, "at '/podDisruptionBudget/minAvailable': minimum"),
        ({"topologySpreadConstraints": [{"maxSkew": 1}]}, "at '/topologySpreadConstraints/0': missing"),
        ({"admission.timeoutSeconds": 30}, "at '/admission/timeoutSeconds': maximum: got 30, want 10"),
        ({"admission.excludeNamespaces": ["Team_A"]}, "at '/admission/excludeNamespaces/0'"),
        ({"admission.certificates.secretName": ""}, "at '/admission/certificates/secretName'"),
        ({"rbac.scope": "namespaces"}, "at '/rbac/namespaces': minItems: got 0, want 1"),
        ({"rbac.namespaces": ["team-a"]}, "at '/rbac/namespaces': maxItems: got 1, want 0"),
        ({"rbac.scope": "namespace"}, "at '/rbac/scope': value must be one of 'cluster', 'namespaces'"),
        ({"rbac.scope": "namespaces", "rbac.namespaces": ["Team_A"]}, "at '/rbac/namespaces/0'"),
        ({"admission.failurePolicy": "Maybe"}, "value must be one of 'Fail', 'Ignore'"),
        ({"admission.certificates.source": "vault"}, "at '/admission/certificates/source'"),
        ({"admission.certificates.certManager.issuerRef": {"kind": "Issuer"}}, "missing property 'name'"),
        ({"image.tag": "a b"}, "at '/image/tag'"),
        ({"image.digest": "latest"}, "at '/image/digest'"),
        ({"metrics.port": 9443}, "at '/metrics/port'"),
        ({"metrics.porrt": 1}, "at '/metrics': additional properties 'porrt' not allowed"),
        ({"prometheus.url": "prometheus:9090"}, "at '/prometheus/url'"),
        ({"metrics.serviceMonitor.interval": "30"}, "at '/metrics/serviceMonitor/interval'"),
        ({"sampleIntervalSeconds": 0}, "at '/sampleIntervalSeconds': minimum: got 0, want 1"),
        ({"clientQPS": 0}, "at '/clientQPS'"),
        ({"clientBurst": 2.5}, "at '/clientBurst'"),
        ({"resources.limits.memory": "1 GB"}, "at '/resources/limits/memory'"),
        ({"logLevel": "trace"}, "at '/logLevel'"),
        ({"extraEnv": [{"value": "x"}]}, "at '/extraEnv/0': missing property 'name'"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_schema_rejects_bad_values_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as error:
        render(values)
    assert "values don't meet the specifications of the schema" in error.value.stderr
    assert message in error.value.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"leaderElection.enabled": False}, "replicaCount 2 needs leaderElection.enabled=true"),
        (
            {"replicaCount": 1},
            "podDisruptionBudget.minAvailable 1 with replicaCount 1 would block every node",
        ),
    ],
    ids=("two-replicas-without-election", "pdb-with-one-replica"),
)
def test_values_that_contradict_each_other_are_refused_with_a_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as error:
        render(values)
    assert message in error.value.stderr


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_namespaced_scope_grants_namespaced_rules_per_namespace() -> None:
    objects = render_objects({"rbac.scope": "namespaces", "rbac.namespaces": ["team-a", "team-b"]})
    roles = {
        (o["kind"], o["metadata"].get("namespace")): o
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    cluster_resources = {r for rule in roles[("ClusterRole", None)]["rules"] for r in rule["resources"]}
    assert "sovereignregions" in cluster_resources and "nodes" in cluster_resources
    assert not cluster_resources & {"pods", "secrets", "deployments", "finopspolicies"}
    for namespace in ("team-a", "team-b"):
        resources = {r for rule in roles[("Role", namespace)]["rules"] for r in rule["resources"]}
        assert {"pods", "secrets", "deployments", "finopspolicies", "edgefleets"} <= resources
    bindings = [
        o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "finops-operator"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert json.loads(env_of(objects)["FINOPS_NAMESPACES"]) == ["team-a", "team-b"]


def test_operator_settings_come_from_values() -> None:
    objects = render_objects(
        {
            "prometheus.url": "http://prometheus.monitoring:9090",
            "prometheus.gpuUtilizationQuery": "avg by (exported_namespace, exported_pod) (X)",
            "admission.failurePolicy": "Ignore",
            "sampleIntervalSeconds": 30,
            "clientQPS": 200,
            "clientBurst": 400,
            "extraEnv": [{"name": "FINOPS_LOG_FORMAT", "value": "json"}],
        }
    )
    env = env_of(objects)
    assert env["FINOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["FINOPS_GPU_UTILIZATION_QUERY"].startswith("avg by (exported_namespace, exported_pod)")
    assert env["FINOPS_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    assert env["FINOPS_SAMPLE_INTERVAL_SECONDS"] == "30"
    assert (env["FINOPS_CLIENT_QPS"], env["FINOPS_CLIENT_BURST"]) == ("200", "400")
    assert env["FINOPS_LOG_FORMAT"] == "json"


def test_cert_manager_certificates_are_mounted_where_the_operator_reads_them() -> None:
    objects = render_objects({"admission.certificates.source": "certManager"})
    kinds = sorted(
        f"{o['kind']}/{o['metadata']['name']}" for o in objects if "cert-manager" in o["apiVersion"]
    )
    assert kinds == [
        "Certificate/finops-operator-ca",
        "Certificate/finops-operator-webhook",
        "Issuer/finops-operator-ca",
        "Issuer/finops-operator-selfsigned",
    ]
    certificate = next(o for o in objects if o["metadata"]["name"] == "finops-operator-webhook")
    assert certificate["spec"]["dnsNames"][0] == "finops-operator.finops-system.svc"
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert env_of(objects)["FINOPS_WEBHOOK_CERT_DIR"] == "/etc/finops/webhook-certs"
    assert {"name": "webhook-certs", "mountPath": "/etc/finops/webhook-certs", "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]
    assert {
        "name": "webhook-certs",
        "secret": {"secretName": "finops-webhook-tls", "optional": False},
    } in pod["volumes"]
    assert "FINOPS_WEBHOOK_CERT_SECRET" not in env_of(objects)  # cert-manager's, never the operator's
    external = render_objects(
        {
            "admission.certificates.source": "certManager",
            "admission.certificates.certManager.issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"},
        }
    )
    assert [o["kind"] for o in external if "cert-manager" in o["apiVersion"]] == ["Certificate"]


def test_crds_can_be_left_to_someone_else() -> None:
    assert not [o for o in render_objects({"crds.install": False}) if o["kind"] == "CustomResourceDefinition"]


def test_replicas_elect_a_leader_and_share_one_certificate() -> None:
    """Issue 11: two replicas, one Lease, one Secret; a rolling update never goes below two and the
    PodDisruptionBudget keeps one through drains."""
    objects = render_objects()
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(objects)
    assert env["FINOPS_LEADER_ELECTION"] == "true"
    assert env["FINOPS_LEASE_NAME"] == "finops-operator"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["FINOPS_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["FINOPS_WEBHOOK_CERT_SECRET"] == "finops-webhook-tls"
    assert env["FINOPS_WEBHOOK_CERT_DIR"] == "/etc/finops/webhook-certs"
    assert env["FINOPS_WEBHOOK_TIMEOUT_SECONDS"] == "3"
    pod = deployment["spec"]["template"]["spec"]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    (pdb,) = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    role = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-leader-election")
    )
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["finops-webhook-tls"],
        "verbs": ["get"],
    } in role["rules"]


def test_one_replica_without_election_recreates() -> None:
    objects = render_objects(
        {"replicaCount": 1, "leaderElection.enabled": False, "podDisruptionBudget.enabled": False}
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "FINOPS_LEADER_ELECTION" not in env_of(objects)
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_admission_values_reach_the_operator() -> None:
    env = env_of(
        render_objects(
            {
                "admission.timeoutSeconds": 5,
                "admission.excludeNamespaces": ["batch-legacy", "sandbox"],
                "leaderElection.leaseName": "finops-lease",
                "leaderElection.leaseDurationSeconds": 30,
            }
        )
    )
    assert env["FINOPS_WEBHOOK_TIMEOUT_SECONDS"] == "5"
    assert json.loads(env["FINOPS_WEBHOOK_EXEMPT_NAMESPACES"]) == ["batch-legacy", "sandbox"]
    assert (env["FINOPS_LEASE_NAME"], env["FINOPS_LEASE_DURATION_SECONDS"]) == ("finops-lease", "30")


def test_cert_manager_render_is_the_kustomize_component(tmp_path: Path) -> None:
    """The chart's certManager option and deploy/components/cert-manager do not drift: the base with
    the component renders what the chart renders with certificates.source=certManager."""
    base = REPO / "deploy"
    relative = Path(os.path.relpath(base, tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(relative)],
                "components": [str(relative / "components" / "cert-manager")],
            }
        )
    )
    overlay = kustomize(tmp_path)
    chart = by_key(
        [without_provenance(o) for o in render_objects({"admission.certificates.source": "certManager"})]
    )
    assert_same_objects(overlay, chart)
