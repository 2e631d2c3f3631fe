"""The Helm chart, rendered offline by the real helm binary: lint, the schema's refusals, and no drift
from the kustomize base (deploy/) or from the generated CRDs (crds/)."""

from __future__ import annotations

import difflib
import json
import subprocess
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


def kustomize_base() -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl_binary(), "kustomize", str(REPO / "deploy")], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_chart_lints_clean() -> None:
    out = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION)
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_default_render_is_the_kustomize_base() -> None:
    """One install, two front doors: with default values the chart renders exactly the kustomize base's
    objects (labels saying who rendered them aside). The Namespace is the one deliberate difference:
    Helm installs into `--namespace finops-system --create-namespace`."""
    chart = by_key([without_provenance(o) for o in render_objects()])
    base = by_key([without_provenance(o) for o in kustomize_base()])
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
        ({"replicaCount": 2}, "at '/replicaCount': maximum: got 2, want 1"),
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
            "extraEnv": [{"name": "FINOPS_LOG_FORMAT", "value": "json"}],
        }
    )
    env = env_of(objects)
    assert env["FINOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["FINOPS_GPU_UTILIZATION_QUERY"].startswith("avg by (exported_namespace, exported_pod)")
    assert env["FINOPS_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    assert env["FINOPS_SAMPLE_INTERVAL_SECONDS"] == "30"
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
    assert {"name": "webhook-certs", "secret": {"secretName": "finops-operator-webhook-tls"}} in pod[
        "volumes"
    ]
    external = render_objects(
        {
            "admission.certificates.source": "certManager",
            "admission.certificates.certManager.issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"},
        }
    )
    assert [o["kind"] for o in external if "cert-manager" in o["apiVersion"]] == ["Certificate"]


def test_crds_can_be_left_to_someone_else() -> None:
    assert not [o for o in render_objects({"crds.install": False}) if o["kind"] == "CustomResourceDefinition"]
