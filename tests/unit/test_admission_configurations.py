"""The operator's webhook configurations: scoped to the namespaces that need them, short timeouts,
written only when their content changes."""

from __future__ import annotations

from finops_operator.api.common import LabelSelector
from finops_operator.planners.admission import (
    HASH_ANNOTATION,
    MUTATING,
    NAME_LABEL,
    OPT_OUT_LABEL,
    VALIDATING,
    AdmissionObservation,
    Endpoint,
    Scope,
    desired_configurations,
    exempt_namespaces,
    plan_webhook_configurations,
)
from finops_operator.planners.labelselectors import selector_matches

ENDPOINTS = (
    Endpoint("sovereignty-pods", True, "", "v1", "pods", ("CREATE",), Scope.REGION_BOUND),
    Endpoint(
        "finopspolicy-caps", False, "apps", "v1", "deployments", ("CREATE", "UPDATE"), Scope.POLICY_NAMESPACES
    ),
)
URL = {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}


def observed(**changes: object) -> AdmissionObservation:
    base: dict[str, object] = {
        "endpoints": ENDPOINTS,
        "client_config": URL,
        "timeout_seconds": 3,
        "region_namespaces": frozenset({"eu-team", "kube-system"}),
        "policy_namespaces": frozenset({"ai"}),
        "exempt_namespaces": frozenset({"kube-system", "kube-public", "kube-node-lease", "finops-system"}),
    }
    base.update(changes)
    return AdmissionObservation(**base)  # type: ignore[arg-type]


def _webhook(config: dict[str, object]) -> dict[str, object]:
    (only,) = config["webhooks"]  # type: ignore[misc]
    return only  # type: ignore[no-any-return]


def called(config: dict[str, object], namespace: str, labels: dict[str, str] | None = None) -> bool:
    selector = _webhook(config)["namespaceSelector"]
    parsed = LabelSelector.model_validate(selector)
    return selector_matches(parsed, {NAME_LABEL: namespace, **(labels or {})})


def test_each_webhook_is_called_only_where_it_is_needed() -> None:
    wanted = desired_configurations(observed())
    mutating, validating = wanted[MUTATING], wanted[VALIDATING]
    assert called(mutating, "eu-team") and not called(mutating, "ai") and not called(mutating, "default")
    assert called(validating, "ai") and not called(validating, "eu-team")
    for exempt in ("kube-system", "kube-public", "kube-node-lease", "finops-system"):
        assert not called(mutating, exempt) and not called(validating, exempt)
    assert not called(mutating, "eu-team", {OPT_OUT_LABEL: "disabled"})
    assert _webhook(mutating)["timeoutSeconds"] == 3
    assert _webhook(mutating)["clientConfig"] == {
        "url": "https://127.0.0.1:9443/sovereignty-pods",
        "caBundle": "Q0E=",
    }


def test_a_webhook_with_no_namespace_to_serve_matches_none() -> None:
    wanted = desired_configurations(
        observed(region_namespaces=frozenset(), policy_namespaces=frozenset({"kube-system"}))
    )
    for config in wanted.values():
        assert not any(called(config, ns) for ns in ("default", "kube-system", "eu-team", "ai"))


def test_service_routing_keeps_the_service_and_adds_the_path() -> None:
    service = {
        "service": {"name": "finops-operator", "namespace": "finops-system", "port": 443},
        "caBundle": "Q0E=",
    }
    config = desired_configurations(observed(client_config=service))[VALIDATING]
    assert _webhook(config)["clientConfig"]["service"]["path"] == "/finopspolicy-caps"  # type: ignore[index]


def test_writes_only_what_changed_and_nothing_when_current() -> None:
    first = plan_webhook_configurations(observed())
    assert {i.manifest["kind"] for i in first} == {MUTATING, VALIDATING}
    hashes = {i.manifest["kind"]: i.manifest["metadata"]["annotations"][HASH_ANNOTATION] for i in first}
    assert plan_webhook_configurations(observed(applied_hashes=hashes)) == ()
    moved = plan_webhook_configurations(
        observed(applied_hashes=hashes, policy_namespaces=frozenset({"ai", "ml"}))
    )
    assert [i.manifest["kind"] for i in moved] == [VALIDATING]


def test_release_gate_webhooks_are_called_only_where_a_gate_selects() -> None:
    gate = Endpoint(
        "modelgate-deployments", False, "apps", "v1", "deployments", ("CREATE",), Scope.GATED_NAMESPACES
    )
    (validating,) = desired_configurations(
        observed(endpoints=(gate,), gated_namespaces=frozenset({"serving", "kube-system"}))
    ).values()
    assert called(validating, "serving")
    assert not called(validating, "ai") and not called(validating, "kube-system")


def test_namespaces_the_installation_excludes_are_never_called() -> None:
    """FINOPS_WEBHOOK_EXEMPT_NAMESPACES (the chart's admission.excludeNamespaces) adds to the
    namespaces that are always exempt, as the operator's own namespace does."""
    exempt = exempt_namespaces("finops-system", ["eu-team"])
    assert exempt >= {"kube-system", "kube-public", "kube-node-lease", "finops-system", "eu-team"}
    assert exempt_namespaces(None) == frozenset({"kube-system", "kube-public", "kube-node-lease"})
    configs = desired_configurations(
        observed(region_namespaces=frozenset({"eu-team", "eu-data"}), exempt_namespaces=exempt)
    )
    assert not called(configs[MUTATING], "eu-team")
    assert called(configs[MUTATING], "eu-data")
