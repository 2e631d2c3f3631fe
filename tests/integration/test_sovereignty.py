"""SovereignRegion against the real control plane (kwok nodes in eu-west-1 and us-east-1, A100/H100/L4
GPUs) with the real operator: affinity injection (GPU pods also confined to the allowed products),
rejection/warning/dry-run, the
ValidatingAdmissionPolicy path with the operator stopped, drift repair, the audit of pre-existing
violators. Every namespace and SovereignRegion here is this module's own, and removed afterwards."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import Kube, KubectlError, eventually, kubectl_binary
from tests.operator_process import OperatorProcess, free_port, running_operator

SAMPLE = 2.0
EU, US = "eu-west-1", "us-east-1"
A100, H100, L4 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"
REGION_LABEL = "topology.kubernetes.io/region"
GPU_LABEL = "nvidia.com/gpu.product"
CLASS_LABEL = "finops.dev/data-classification"
BINDING_LABEL = "sovereignty-test"
MANAGED = "app.kubernetes.io/managed-by=finops-operator"


def deployment(namespace: str, name: str, **pod_spec: Any) -> dict[str, Any]:
    labels = pod_spec.pop("labels", {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, **labels}},
        "spec": {
            "replicas": pod_spec.pop("replicas", 1),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "example/app:1"}], **pod_spec},
            },
        },
    }


def region(name: str, binding: str, mode: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "metadata": {"name": name},
        "spec": {
            "region": EU,
            "namespaceSelector": {"matchLabels": {BINDING_LABEL: binding}},
            "allowedGPUProducts": [A100],
            "allowedDataClassifications": ["public", "internal"],
            "enforcementMode": mode,
            **spec,
        },
    }


def run(kube: Kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl, returning the whole result: stderr is where kubectl prints warnings and rejections."""
    return subprocess.run(
        [kubectl_binary(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=kube.env,
        check=False,
        timeout=60,
    )


def apply(kube: Kube, *objects: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run(kube, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def applied(kube: Kube, *objects: dict[str, Any]) -> str:
    result = apply(kube, *objects)
    if result.returncode != 0:
        raise KubectlError(("apply",), result.stderr)
    return result.stderr


def namespace(kube: Kube, name: str, binding: str, **labels: str) -> None:
    applied(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {BINDING_LABEL: binding, **labels}},
        },
    )


def status(kube: Kube, name: str) -> dict[str, Any]:
    return dict(kube.get_json("sovr", name).get("status") or {})


def condition(kube: Kube, name: str, kind: str) -> dict[str, Any]:
    return next((c for c in status(kube, name).get("conditions", []) if c["type"] == kind), {})


def required_terms(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    spec = kube.get_json("deploy", "-n", namespace, name)["spec"]["template"]["spec"]
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return list(required.get("nodeSelectorTerms") or [])


def confined(terms: list[dict[str, Any]]) -> bool:
    wanted = {"key": REGION_LABEL, "operator": "In", "values": [EU]}
    return bool(terms) and all(wanted in t.get("matchExpressions", []) for t in terms)


def bound(kube: Kube, name: str, namespaces: list[str]) -> bool:
    return status(kube, name).get("boundNamespaces") == namespaces


def _cleanup(kube: Kube, regions: list[str], namespaces: list[str]) -> None:
    for name in regions:
        # The operator may be stopped: drop Kopf's finalizer so the deletion cannot hang.
        kube.kubectl(
            "patch", "sovr", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
        kube.kubectl("delete", "sovr", name, "--ignore-not-found", "--wait=false")
    for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
        for name in regions:
            kube.kubectl("delete", kind, f"finops-sovereignty-{name}", "--ignore-not-found")
    for name in namespaces:
        kube.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


@pytest.fixture
def cleanup(kube: Kube) -> Iterator[tuple[list[str], list[str]]]:
    regions: list[str] = []
    namespaces: list[str] = []
    yield regions, namespaces
    _cleanup(kube, regions, namespaces)


def _webhook_operator(kube: Kube, tmp_path: Path) -> Any:
    return running_operator(
        kube, tmp_path, "--sample-interval", str(SAMPLE), "--webhook", "--webhook-port", str(free_port())
    )


def _wait_for_webhooks(kube: Kube) -> None:
    eventually(
        lambda: (
            "sovereignty"
            in kube.kubectl("get", "mutatingwebhookconfiguration", "finops.dev", "-o", "yaml", check=False)
        ),
        timeout=30,
        what="the managed MutatingWebhookConfiguration",
    )


def _drop_webhooks(kube: Kube) -> None:
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")


@pytest.fixture
def operator(kube: Kube, tmp_path: Path) -> Iterator[OperatorProcess]:
    with _webhook_operator(kube, tmp_path) as process:
        _wait_for_webhooks(kube)
        yield process
    _drop_webhooks(kube)


def test_enforce_injects_rejects_repairs_and_reports_existing_violators(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    name, ns = "sov-test-enforce", "sov-enforce"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "enforce")
    # Before the region exists: one workload that says nothing (to be repaired), one asking for the US.
    applied(kube, deployment(ns, "legacy"), deployment(ns, "us-pinned", nodeSelector={REGION_LABEL: US}))
    eventually(
        lambda: any(
            p["spec"].get("nodeName", "").startswith("gpu-us")
            for p in kube.get_json("pods", "-n", ns, "-l", "app=us-pinned")["items"]
        ),
        timeout=60,
        what="us-pinned running in the US",
    )
    applied(kube, region(name, "enforce", "Enforce"))
    eventually(lambda: bound(kube, name, [ns]), timeout=30, what="namespace bound")

    # Drift repair: the affinity is added to the pre-existing workload (a rollout follows).
    eventually(lambda: confined(required_terms(kube, ns, "legacy")), timeout=30, what="legacy repaired")
    # Pre-existing violators are reported, with since-when, and not "repaired" into unschedulable pods.
    violations = eventually(
        lambda: [v for v in status(kube, name).get("violations", []) if "us-pinned" in v["name"]],
        timeout=30,
        what="us-pinned reported",
    )
    kinds = {(v["kind"], v["rule"]) for v in violations}
    assert ("Deployment", "Region") in kinds and ("Pod", "Region") in kinds, violations
    assert all(v["since"] for v in violations)
    assert not confined(required_terms(kube, ns, "us-pinned"))
    assert condition(kube, name, "Compliant")["status"] == "False"
    assert condition(kube, name, "Ready")["status"] == "True"
    summary = kube.kubectl("get", "sovr", name)
    assert "Enforce" in summary and EU in summary
    events = kube.get_json("events", "-n", ns, "--field-selector", "reason=SovereigntyAffinityRestored")
    assert events["items"], "no Event for the repair"

    # Injection: merged into the workload's own required affinity, its preferred affinity kept.
    own_term = {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
    preferred = [{"weight": 10, "preference": own_term}]
    applied(
        kube,
        deployment(
            ns,
            "web",
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [own_term]},
                    "preferredDuringSchedulingIgnoredDuringExecution": preferred,
                }
            },
        ),
    )
    terms = required_terms(kube, ns, "web")
    assert confined(terms) and own_term["matchExpressions"][0] in terms[0]["matchExpressions"]
    stored = kube.get_json("deploy", "-n", ns, "web")["spec"]["template"]["spec"]["affinity"]
    assert stored["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == preferred

    # Rejections name the SovereignRegion and the rule.
    for bad, rule in (
        (deployment(ns, "h100", nodeSelector={GPU_LABEL: H100}), "GPUProduct"),
        (deployment(ns, "secret", labels={CLASS_LABEL: "secret"}), "DataClassification"),
        (deployment(ns, "to-us", nodeSelector={REGION_LABEL: US}), "Region"),
    ):
        result = apply(kube, bad)
        assert result.returncode != 0, f"{bad['metadata']['name']} was admitted"
        assert f"SovereignRegion {name}" in result.stderr and rule in result.stderr, result.stderr
    # A rule only the Kopf webhook judges (CEL does not): a requirement that excludes the region.
    not_eu = {"matchExpressions": [{"key": REGION_LABEL, "operator": "NotIn", "values": [EU]}]}
    excluded = apply(
        kube,
        deployment(
            ns,
            "not-eu",
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [not_eu]}
                }
            },
        ),
    )
    assert excluded.returncode != 0
    assert (
        f"SovereignRegion {name}: Deployment {ns}/not-eu asks for nodes outside region {EU}"
        in excluded.stderr
    )
    assert "[rule Region]" in excluded.stderr
    # Scaling an existing violator is not blocked: only template and label changes are judged.
    kube.kubectl("scale", "deploy", "-n", ns, "us-pinned", "--replicas=0")
    assert 'sovereignty_violations{region="sov-test-enforce",rule="Region"}' in operator.metrics()


def test_warn_dry_run_conflicts_and_regions_without_nodes(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    warn, dry, nowhere = "sov-test-warn", "sov-test-dry", "sov-test-nowhere"
    cleanup[0].extend([warn, dry, nowhere])
    cleanup[1].extend(["sov-warn", "sov-dry", "sov-shared"])
    namespace(kube, "sov-warn", "warn")
    namespace(kube, "sov-dry", "dry")
    namespace(kube, "sov-shared", "warn", **{"sovereignty-test-also": "nowhere"})
    applied(
        kube,
        region(warn, "warn", "Warn"),
        region(dry, "dry", "DryRun"),
        region(
            nowhere,
            "unused",
            "Enforce",
            namespaceSelector={"matchLabels": {"sovereignty-test-also": "nowhere"}},
            nodeSelector={"matchLabels": {REGION_LABEL: "mars-north-1"}},
        ),
    )
    eventually(lambda: bound(kube, warn, ["sov-warn"]), timeout=30, what="warn region bound")
    eventually(lambda: bound(kube, dry, ["sov-dry"]), timeout=30, what="dry-run region bound")

    # Warn: admitted, kubectl prints the warning, and the affinity is still injected.
    warned = apply(kube, deployment("sov-warn", "h100", nodeSelector={GPU_LABEL: H100}))
    assert warned.returncode == 0, warned.stderr
    assert "Warning:" in warned.stderr and f"SovereignRegion {warn}" in warned.stderr
    assert "GPUProduct" in warned.stderr
    assert confined(required_terms(kube, "sov-warn", "h100"))

    # DryRun: admitted silently, nothing changed, reported by the audit.
    quiet = apply(kube, deployment("sov-dry", "h100", nodeSelector={GPU_LABEL: H100}))
    assert quiet.returncode == 0, quiet.stderr
    assert f"SovereignRegion {dry}" not in quiet.stderr
    assert required_terms(kube, "sov-dry", "h100") == []
    reported = eventually(
        lambda: [v for v in status(kube, dry).get("violations", []) if v["name"] == "h100"],
        timeout=30,
        what="dry-run violation in status",
    )
    assert reported[0]["rule"] == "GPUProduct" and reported[0]["kind"] == "Deployment"

    # A namespace bound to two regions: a condition on both, and a warning at admission.
    conflict = eventually(
        lambda: (
            condition(kube, nowhere, "NamespaceConflict").get("status") == "True"
            and condition(kube, nowhere, "NamespaceConflict")
        ),
        timeout=30,
        what="NamespaceConflict on the second region",
    )
    assert "sov-shared" in conflict["message"] and warn in conflict["message"]
    assert condition(kube, warn, "NamespaceConflict")["status"] == "True"
    shared = apply(kube, deployment("sov-shared", "app"))
    assert shared.returncode == 0 and "bound to several SovereignRegions" in shared.stderr
    # A region whose node selector matches no node says so.
    ready = condition(kube, nowhere, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "NoMatchingNodes"
    # The binding leaves the conflicted namespace out, like the webhooks and the audit.
    binding = kube.get_json("validatingadmissionpolicybinding", f"finops-sovereignty-{warn}")
    assert binding["spec"]["validationActions"] == ["Warn"]
    assert binding["metadata"]["ownerReferences"][0]["name"] == warn
    excluded = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["sov-shared"]} in excluded
    assert kube.get_json("validatingadmissionpolicybinding", f"finops-sovereignty-{dry}")["spec"][
        "validationActions"
    ] == ["Audit"]

    # Level-triggered but quiet: once nothing changes, the audits write nothing.
    def version() -> str:
        return str(kube.get_json("sovr", dry)["metadata"]["resourceVersion"])

    before = version()
    time.sleep(3 * SAMPLE)
    assert version() == before


def test_admission_policy_rejects_while_the_operator_is_stopped_and_drift_is_repaired_after(
    kube: Kube, tmp_path: Path, cleanup: tuple[list[str], list[str]]
) -> None:
    name, ns = "sov-test-offline", "sov-offline"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "offline")
    try:
        with _webhook_operator(kube, tmp_path) as process:
            _wait_for_webhooks(kube)
            applied(kube, region(name, "offline", "Enforce"))
            eventually(lambda: bound(kube, name, [ns]), timeout=30, what="namespace bound")
            eventually(
                lambda: kube.get_json("validatingadmissionpolicybinding", f"finops-sovereignty-{name}"),
                timeout=30,
                what="the binding",
            )
            applied(kube, deployment(ns, "app"))
            assert confined(required_terms(kube, ns, "app"))
            assert process.terminate() == 0
    finally:
        _drop_webhooks(kube)

    # Operator down: the API server still rejects, by the policy the operator generated.
    def rejected_by_policy() -> str:
        result = apply(kube, deployment(ns, "to-us", nodeSelector={REGION_LABEL: US}))
        return (
            result.stderr if result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr else ""
        )

    stderr = eventually(rejected_by_policy, timeout=30, what="rejection by the ValidatingAdmissionPolicy")
    assert f"SovereignRegion {name} (region {EU}), rule Region" in stderr
    assert f"Deployment {ns}/to-us" in stderr
    gpu = apply(kube, deployment(ns, "h100", nodeSelector={GPU_LABEL: H100}))
    assert gpu.returncode != 0 and "rule GPUProduct" in gpu.stderr
    # Someone removes the affinity while nothing can re-inject it (the mutating path fails open)...
    kube.kubectl(
        "patch",
        "deploy",
        "-n",
        ns,
        "app",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/template/spec/affinity"}]',
    )
    assert required_terms(kube, ns, "app") == []
    # ... and the audit puts it back once the operator is up again.
    restarted = tmp_path / "restarted"
    restarted.mkdir()
    try:
        with _webhook_operator(kube, restarted):
            eventually(
                lambda: confined(required_terms(kube, ns, "app")), timeout=30, what="affinity restored"
            )
    finally:
        _drop_webhooks(kube)


def test_opt_in_eviction_moves_pods_running_outside_the_region(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    name, ns = "sov-test-evict", "sov-evict"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "evict")
    prefer_us = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": [US]}]
                    },
                }
            ]
        }
    }
    # OnDelete: a repaired template alone does not move the running pod; only an eviction does.
    applied(
        kube,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "affinity": prefer_us,
                        "containers": [{"name": "main", "image": "example/db:1"}],
                    },
                },
            },
        },
    )

    def node_region() -> str | None:
        pods = kube.get_json("pods", "-n", ns, "-l", "app=db")["items"]
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        if not running:
            return None
        node = kube.get_json("node", running[0]["spec"]["nodeName"])
        return str(node["metadata"]["labels"][REGION_LABEL])

    assert eventually(node_region, timeout=60, what="db running") == US
    applied(kube, region(name, "evict", "Enforce", evictOutOfRegionPods=True))
    eventually(lambda: node_region() == EU, timeout=90, what="db evicted and rescheduled inside the region")
    assert confined(
        kube.get_json("sts", "-n", ns, "db")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
    )


def _prefer_product(product: str) -> dict[str, Any]:
    """A soft preference the scheduler follows whenever the required affinity lets it."""
    preference = {"matchExpressions": [{"key": GPU_LABEL, "operator": "In", "values": [product]}]}
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": preference}]
        }
    }


def _gpu_deployment(ns: str, name: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    body = deployment(ns, name, replicas=replicas, **pod_spec)
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    return body


def _products(kube: Kube, ns: str, app: str) -> list[str]:
    """The GPU product of the node of every live scheduled pod of ``app`` (empty until all are placed)."""
    pods = [
        p
        for p in kube.get_json("pods", "-n", ns, "-l", f"app={app}")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]
    if not pods or not all(p["spec"].get("nodeName") for p in pods):
        return []
    nodes = (kube.get_json("node", p["spec"]["nodeName"]) for p in pods)
    return sorted(str(n["metadata"]["labels"].get(GPU_LABEL)) for n in nodes)


def test_gpu_pods_are_confined_to_the_allowed_products_of_the_region(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    """eu-west-1 has A100 nodes (allowed) and L4 edge nodes (not allowed by this region): a GPU pod
    that says nothing about the product, even one preferring L4, lands on A100 only."""
    name, ns = "sov-test-gpu", "sov-gpu"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "gpu")
    # Before the region exists: a GPU workload that prefers L4 runs there (what the issue saw).
    applied(kube, _gpu_deployment(ns, "legacy-gpu", 1, affinity=_prefer_product(L4)))
    assert eventually(lambda: _products(kube, ns, "legacy-gpu"), timeout=60, what="legacy-gpu placed") == [L4]
    applied(kube, region(name, "gpu", "Enforce"))
    eventually(lambda: bound(kube, name, [ns]), timeout=30, what="namespace bound")

    region_term = {"key": REGION_LABEL, "operator": "In", "values": [EU]}
    product_term = {"key": GPU_LABEL, "operator": "In", "values": [A100]}
    # Drift repair adds the product requirement too, and the rollout moves the pod onto an A100.
    eventually(
        lambda: required_terms(kube, ns, "legacy-gpu") == [{"matchExpressions": [region_term, product_term]}],
        timeout=30,
        what="legacy-gpu repaired with the allowed products",
    )
    eventually(
        lambda: _products(kube, ns, "legacy-gpu") == [A100], timeout=60, what="legacy-gpu moved to A100"
    )

    # Admission: the GPU pod gets region AND products, the CPU-only pod the region alone.
    applied(
        kube,
        _gpu_deployment(ns, "gpu", 3, affinity=_prefer_product(L4)),
        deployment(ns, "cpu"),
    )
    assert required_terms(kube, ns, "gpu") == [{"matchExpressions": [region_term, product_term]}]
    assert required_terms(kube, ns, "cpu") == [{"matchExpressions": [region_term]}]
    assert eventually(lambda: _products(kube, ns, "gpu"), timeout=60, what="gpu pods placed") == [A100] * 3

    # An explicit ask for a product the region does not allow is still rejected.
    asked = apply(kube, _gpu_deployment(ns, "l4", 1, nodeSelector={GPU_LABEL: L4}))
    assert asked.returncode != 0, "an explicit ask for L4 was admitted"
    assert f"SovereignRegion {name}" in asked.stderr and "GPUProduct" in asked.stderr, asked.stderr


def test_the_region_repairs_a_workload_that_already_breaks_a_finopspolicy_cap(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    """The demo's embedding-service: fp16 under a policy requiring quantization. The caps webhook
    admits the operator's affinity repair (it makes no cap violation worse) and still refuses a
    change that does."""
    name, ns = "sov-test-caps", "sov-caps"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "caps")
    embedding = _gpu_deployment(ns, "embedding", 1)
    embedding["spec"]["template"]["metadata"]["labels"]["finops.dev/model-quantization"] = "fp16"
    applied(kube, embedding)
    applied(
        kube,
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "FinOpsPolicy",
            "metadata": {"name": "caps", "namespace": ns},
            "spec": {
                "targetWorkloadSelector": {"matchLabels": {"app": "embedding"}},
                "enforcementMode": "Enforce",
                "costLimits": {"maxGPUsPerPod": 2},
                "optimizationRules": {"modelQuantizationRequired": True},
            },
        },
    )

    def policy_ready() -> bool:
        conditions = (kube.get_json("fop", "-n", ns, "caps").get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    eventually(policy_ready, timeout=30, what="FinOpsPolicy Ready")
    applied(kube, region(name, "caps", "Enforce"))
    eventually(lambda: confined(required_terms(kube, ns, "embedding")), timeout=30, what="embedding repaired")
    assert f"Deployment {ns}/embedding refused" not in operator.log()

    # A change that leaves the old violation as it was goes through, with a warning naming it ...
    image = run(kube, "set", "image", "deploy/embedding", "-n", ns, "main=example/app:2")
    assert image.returncode == 0, image.stderr
    assert "Warning: FinOpsPolicy caps:" in image.stderr and "already so before this change" in image.stderr
    # ... one that makes a cap violation worse is refused.
    worse = run(kube, "set", "resources", "deploy/embedding", "-n", ns, "--limits=nvidia.com/gpu=4")
    assert worse.returncode != 0, "raising the GPUs past the cap was admitted"
    assert "FinOpsPolicy caps: 4 GPUs per pod exceeds maxGPUsPerPod 2" in worse.stderr, worse.stderr
