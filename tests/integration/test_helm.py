"""The Helm chart against the real local control plane: rendered objects pass a server-side dry run
(with default and non-default values), and `helm install` / `upgrade` / `uninstall` do what the README
says, CRDs and custom resources surviving the uninstall."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helm import CHART, helm, integration_crds, render, set_args
from tests.kube import REPO, Kube, eventually

pytestmark = pytest.mark.timeout(600)

NAMESPACE = "finops-system"
NON_DEFAULT = {
    "rbac.scope": "namespaces",
    "rbac.namespaces": ["helm-team-a", "helm-team-b"],
    "admission.failurePolicy": "Ignore",
    "admission.timeoutSeconds": 5,
    "admission.excludeNamespaces": ["helm-legacy"],
    "admission.certificates.source": "certManager",
    "replicaCount": 3,
    "podDisruptionBudget.minAvailable": 2,
    "leaderElection.leaseName": "finops-lease",
    "prometheus.url": "http://prometheus.monitoring:9090",
    "prometheus.gpuUtilizationQuery": "avg by (exported_namespace, exported_pod) "
    '(DCGM_FI_DEV_GPU_UTIL{exported_namespace="$namespace"})',
    "metrics.serviceMonitor.enabled": True,
    "metrics.serviceMonitor.honorLabels": False,
    "metrics.serviceMonitor.labels": {"release": "kube-prometheus-stack"},
    "metrics.prometheusRule.enabled": True,
    "dashboard.enabled": True,
    "image.digest": "sha256:" + "a" * 64,
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["control"]}]
                    },
                }
            ]
        }
    },
    "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "extraEnv": [{"name": "FINOPS_LOG_FORMAT", "value": "json"}],
    "sampleIntervalSeconds": 30,
}


@pytest.fixture(scope="module")
def cluster(kube: Kube) -> Kube:
    """The chart's namespace, the namespaces of the non-default values, and the integrations' CRDs."""
    for namespace in (NAMESPACE, "helm-team-a", "helm-team-b"):
        if not kube.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name"):
            kube.kubectl("create", "namespace", namespace)
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(integration_crds()))
    kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return kube


def server_dry_run(kube: Kube, manifests: str) -> str:
    return kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", "-", stdin=manifests
    )


def test_default_render_passes_a_server_side_dry_run(cluster: Kube) -> None:
    out = server_dry_run(cluster, render())
    assert "deployment.apps/finops-operator serverside-applied (server dry run)" in out
    assert "customresourcedefinition.apiextensions.k8s.io/finopspolicies.finops.dev" in out


def test_non_default_render_passes_a_server_side_dry_run(cluster: Kube) -> None:
    """Every optional object (namespaced RBAC, cert-manager, ServiceMonitor, PrometheusRule,
    dashboard ConfigMap) is accepted by the API server with the real CRDs of its kind."""
    out = server_dry_run(cluster, render(NON_DEFAULT))
    for expected in (
        "role.rbac.authorization.k8s.io/finops-operator serverside-applied",
        "certificate.cert-manager.io/finops-operator-webhook serverside-applied",
        "issuer.cert-manager.io/finops-operator-ca serverside-applied",
        "servicemonitor.monitoring.coreos.com/finops-operator serverside-applied",
        "prometheusrule.monitoring.coreos.com/finops-operator serverside-applied",
        "configmap/finops-operator-dashboard serverside-applied",
        "poddisruptionbudget.policy/finops-operator serverside-applied",
    ):
        assert expected in out


def test_kustomize_cert_manager_component_passes_a_server_side_dry_run(cluster: Kube, tmp_path: Path) -> None:
    """deploy/components/cert-manager on the base, as a user's overlay includes it (kustomize cannot
    have the overlay inside the base), against cert-manager's real CRDs."""
    relative = Path(os.path.relpath(REPO / "deploy", tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": [str(relative)], "components": [str(relative / "components/cert-manager")]}
        )
    )
    out = server_dry_run(cluster, cluster.kubectl("kustomize", str(tmp_path)))
    assert "certificate.cert-manager.io/finops-operator-webhook serverside-applied" in out
    assert "deployment.apps/finops-operator serverside-applied" in out


def test_bad_objects_are_refused_by_the_server(cluster: Kube) -> None:
    """The dry run is not a rubber stamp: a typo in a rendered ServiceMonitor is refused."""
    objects = [doc for doc in yaml.safe_load_all(render(NON_DEFAULT)) if doc]
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["honorLabels"] = "sometimes"
    proc_error = None
    try:
        server_dry_run(cluster, yaml.safe_dump(monitor))
    except AssertionError as error:
        proc_error = str(error)
    assert proc_error is not None and "honorLabels" in proc_error


@pytest.fixture
def helm_env(cluster: Kube, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **cluster.env,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    yield env
    helm("uninstall", "finops-operator", "-n", NAMESPACE, "--ignore-not-found", env=env)


# Every object the chart ships beside the CRDs (one file per kind; the EdgeFleet author check is a
# ValidatingAdmissionPolicy and its binding), so a new kind cannot be forgotten here.
CHART_OBJECTS = tuple(
    (document["kind"], document["metadata"]["name"])
    for path in sorted((CHART / "files" / "crds").glob("*.yaml"))
    for document in yaml.safe_load_all(path.read_text())
    if document
)
CHART_CRDS = tuple(name for kind, name in CHART_OBJECTS if kind == "CustomResourceDefinition")


def adopt_crds(kube: Kube) -> None:
    """The session installed the CRDs and the author check with `kubectl apply -k crds/` (as the
    kustomize path does); Helm only takes over objects that say they belong to the release, exactly
    what a user moving from kustomize to Helm does (README, upgrade notes)."""
    for kind, name in CHART_OBJECTS:
        kube.kubectl("label", "--overwrite", kind, name, "app.kubernetes.io/managed-by=Helm")
        kube.kubectl(
            "annotate",
            "--overwrite",
            kind,
            name,
            "meta.helm.sh/release-name=finops-operator",
            f"meta.helm.sh/release-namespace={NAMESPACE}",
        )


def deployment_env(kube: Kube) -> dict[str, str]:
    deployment = kube.get_json("deployment", "finops-operator", "-n", NAMESPACE)
    return {
        e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_install_upgrade_uninstall(cluster: Kube, helm_env: dict[str, str]) -> None:
    adopt_crds(cluster)
    out = helm(
        "install", "finops-operator", str(CHART), "-n", NAMESPACE, "--wait", "--timeout", "3m", env=helm_env
    )
    assert "STATUS: deployed" in out
    assert "FINOPS_PROMETHEUS_URL" not in deployment_env(cluster)
    eventually(
        lambda: (
            cluster.get_json("deployment", "finops-operator", "-n", NAMESPACE)["status"].get("readyReplicas")
            == 2
        ),
        timeout=60,
        what="both operator replicas to be ready (kwok runs the pods)",
    )

    cluster.kubectl("create", "namespace", "helm-survivor", check=False)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump(
            {
                "apiVersion": "finops.dev/v1alpha1",
                "kind": "FinOpsPolicy",
                "metadata": {"name": "survives-uninstall", "namespace": "helm-survivor"},
                "spec": {"targetWorkloadSelector": {"matchLabels": {"app": "x"}}},
            }
        ),
    )

    out = helm(
        "upgrade",
        "finops-operator",
        str(CHART),
        "-n",
        NAMESPACE,
        "--wait",
        "--timeout",
        "3m",
        *set_args(
            {"prometheus.url": "http://prometheus.monitoring:9090", "admission.failurePolicy": "Ignore"}
        ),
        env=helm_env,
    )
    assert "REVISION: 2" in out
    env = deployment_env(cluster)
    assert env["FINOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["FINOPS_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    history = json.loads(helm("history", "finops-operator", "-n", NAMESPACE, "-o", "json", env=helm_env))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    out = helm("uninstall", "finops-operator", "-n", NAMESPACE, "--wait", env=helm_env)
    assert "These resources were kept due to the resource policy" in out
    assert not cluster.kubectl(
        "get",
        "deployment,serviceaccount,service,poddisruptionbudget",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/instance=finops-operator",
        "-o",
        "name",
    )
    assert not cluster.kubectl("get", "clusterrole", "finops-operator", "--ignore-not-found", "-o", "name")
    for crd in CHART_CRDS:
        assert (
            cluster.kubectl("get", "crd", crd, "-o", "name").strip()
            == f"customresourcedefinition.apiextensions.k8s.io/{crd}"
        )
    assert cluster.get_json("fop", "survives-uninstall", "-n", "helm-survivor")["metadata"]["name"]
    cluster.kubectl("delete", "namespace", "helm-survivor", "--wait=false")
