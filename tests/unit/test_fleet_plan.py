"""plan_fleet: the decisions of one EdgeFleet reconcile beyond the rollout itself (which writes, what
is up to date, whose replicas, the health query, a missing policy), from an observation like the
handler's. Pure: no cluster, pinned clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet import (
    FLEET_LABEL,
    REVISION_LABEL,
    UPDATED_AT_ANNOTATION,
    AppliedWrite,
    FleetObservation,
    HealthAnswer,
    SiteDeployment,
    SiteNode,
    SiteWorkload,
    StoredRevision,
    deployment_name,
    health_query,
    plan_fleet,
    policy_events,
    remembered,
    revision_content,
    revision_of,
    site_deployment,
    stored_revision,
)
from finops_operator.planners.fleet.author import (
    author_check_binding,
    author_check_object,
    author_check_policy,
)
from finops_operator.planners.fleet.health import health_verdict
from finops_operator.planners.fleet.writes import APPLIED_HASH_ANNOTATION, scaled_by_policy, up_to_date
from finops_operator.planners.plan import ApplyManifest, CreateObject, DeleteObject, ObjectRef
from finops_operator.workloads.annotations import ANNOTATION_REPLICA_CAP, ANNOTATION_SCALED_BY

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
UID = "fleet-uid"
NAMESPACE, FLEET = "edge-ai", "assistant"
TEMPLATE: dict[str, Any] = {"spec": {"containers": [{"name": "server", "image": "llama:1"}]}}


def make_spec(**overrides: Any) -> EdgeFleetSpec:
    raw: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"finops.dev/edge": "true"}},
        "modelVersion": "v1",
        "template": TEMPLATE,
        **overrides,
    }
    return EdgeFleetSpec.model_validate(raw)


SPEC = make_spec()
REVISION = revision_of(SPEC)


def node(site: str) -> SiteNode:
    return SiteNode(f"{site}-node", {"finops.dev/edge": "true", "finops.dev/site": site}, True, T0)


def checked_since(created: datetime) -> dict[str, Any]:
    """The author-check admission objects as the API server has them, created at ``created``."""
    stamp = created.isoformat()
    return {
        m["kind"]: author_check_object({"metadata": {**m["metadata"], "creationTimestamp": stamp}})
        for m in (author_check_policy(), author_check_binding())
    }


def observation(**overrides: Any) -> FleetObservation:
    """A fleet deployed on sites a and b, stable on REVISION, as the handler observes it; its spec
    written (by an author the API server checked) after the author check was in force."""
    status = EdgeFleetStatus(stable_revision=REVISION, current_revision=REVISION)
    defaults: dict[str, Any] = {
        "namespace": NAMESPACE,
        "name": FLEET,
        "uid": UID,
        "generation": 1,
        "current_status": status,
        "nodes": (node("a"), node("b")),
        "author_check": checked_since(T0 - timedelta(days=1)),
        "spec_written": T0 - timedelta(hours=1),
    }
    return FleetObservation(**{**defaults, **overrides})


def applies(observed: FleetObservation, spec: EdgeFleetSpec = SPEC) -> list[dict[str, Any]]:
    plan = plan_fleet(spec, observed, T0)
    return [dict(i.manifest) for i in plan.intents if isinstance(i, ApplyManifest)]


def as_deployed(manifest: dict[str, Any], **changes: Any) -> SiteDeployment:
    """The Deployment the index would show after ``manifest`` was applied (Ready), then ``changes``."""
    metadata = manifest["metadata"]
    deployment = SiteDeployment(
        name=metadata["name"],
        site=metadata["labels"]["finops.dev/site"],
        owners=frozenset({UID}),
        workload=SiteWorkload(metadata["labels"][REVISION_LABEL], True, T0, T0),
        labels=dict(metadata["labels"]),
        annotations=dict(metadata["annotations"]),
        replicas=manifest["spec"].get("replicas", 1),
        generation=2,
    )
    return replace(deployment, **changes)


def deployed() -> tuple[SiteDeployment, ...]:
    return tuple(as_deployed(m) for m in applies(observation()))


# --- which Deployments are applied ----------------------------------------------------------------


def test_site_manifest_is_owned_hashed_and_first_applied_everywhere() -> None:
    manifests = applies(observation())
    assert [m["metadata"]["name"] for m in manifests] == [
        deployment_name(FLEET, "a"),
        deployment_name(FLEET, "b"),
    ]
    metadata = manifests[0]["metadata"]
    assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in metadata["ownerReferences"]] == [
        ("EdgeFleet", FLEET, UID, True)
    ]
    assert len(metadata["annotations"][APPLIED_HASH_ANNOTATION]) == 16
    assert manifests[0]["spec"]["replicas"] == 1


def test_nothing_is_applied_when_every_deployment_is_as_planned() -> None:
    assert applies(observation(deployments=deployed())) == []


@pytest.mark.parametrize(
    ("changes", "applied", "reapplied"),
    [
        pytest.param({}, None, False, id="as-planned"),
        pytest.param({"labels": {}}, None, True, id="label-removed"),
        pytest.param({"annotations": {}}, None, True, id="hash-annotation-removed"),
        pytest.param({"replicas": 3}, None, True, id="replicas-changed"),
        pytest.param({}, AppliedWrite(REVISION, T0, 2), False, id="own-write-same-generation"),
        pytest.param({}, AppliedWrite(REVISION, T0, 1), True, id="edited-since-own-write"),
        pytest.param({}, AppliedWrite("older", T0, 1), False, id="own-write-of-another-revision"),
    ],
)
def test_up_to_date(changes: dict[str, Any], applied: AppliedWrite | None, reapplied: bool) -> None:
    manifest = applies(observation())[0]
    assert up_to_date(as_deployed(manifest, **changes), manifest, applied) is not reapplied


def test_a_missing_deployment_is_never_up_to_date() -> None:
    assert not up_to_date(None, applies(observation())[0], None)


@pytest.mark.parametrize(
    ("annotations", "policy_decides"),
    [
        pytest.param({}, False, id="unmarked"),
        pytest.param({ANNOTATION_SCALED_BY: "edge-cost:budget"}, True, id="scaled-by-policy"),
        pytest.param({ANNOTATION_REPLICA_CAP: "1"}, True, id="capped-by-policy"),
        pytest.param({"example.com/other": "x"}, False, id="foreign-annotation"),
    ],
)
def test_replicas_are_left_to_a_policy_that_scaled_the_workload(
    annotations: dict[str, str], policy_decides: bool
) -> None:
    ours = deployed()
    marked = (replace(ours[0], annotations={**ours[0].annotations, **annotations}), ours[1])
    assert scaled_by_policy(marked[0]) is policy_decides
    manifests = {m["metadata"]["name"]: m for m in applies(observation(deployments=marked))}
    if policy_decides:
        assert "replicas" not in manifests[ours[0].name]["spec"]
    else:
        assert ours[0].name not in manifests or manifests[ours[0].name]["spec"]["replicas"] == 1
    assert scaled_by_policy(None) is False


def test_own_write_not_yet_in_the_index_keeps_its_update_time() -> None:
    v2 = make_spec(modelVersion="v2")
    earlier = T0 - timedelta(minutes=3)
    name = deployment_name(FLEET, "a")
    # Site a was moved to v2 by this process three minutes ago; the index still shows v1.
    observed = observation(
        deployments=deployed(),
        applied={name: AppliedWrite(revision_of(v2), earlier, 3)},
        revisions=(StoredRevision("r1", REVISION, 1, frozenset({UID}), revision_content(SPEC)),),
    )
    by_name = {m["metadata"]["name"]: m for m in applies(observed, v2)}
    assert by_name[name]["metadata"]["annotations"][UPDATED_AT_ANNOTATION] == earlier.isoformat()


def test_remembered_applies_are_site_deployments_only() -> None:
    manifest = applies(observation())[0]
    assert remembered(manifest, {"metadata": {"generation": 4}}) == AppliedWrite(REVISION, T0, 4)
    revision = {"kind": "ControllerRevision", "metadata": {"name": "r"}}
    assert remembered(revision, {"metadata": {"generation": 1}}) is None


# --- revisions and deletions ----------------------------------------------------------------------


def test_new_revision_content_is_stored_first_numbered_after_the_fleets_own() -> None:
    stored = (
        StoredRevision("mine", REVISION, 4, frozenset({UID}), revision_content(SPEC)),
        StoredRevision("foreign", "zzz", 9, frozenset({"other"}), None),
    )
    v2 = make_spec(modelVersion="v2")
    plan = plan_fleet(v2, observation(deployments=deployed(), revisions=stored), T0)
    first = plan.intents[0]
    assert isinstance(first, CreateObject)
    assert first.manifest["kind"] == "ControllerRevision" and first.manifest["revision"] == 5
    assert first.manifest["metadata"]["labels"] == {FLEET_LABEL: FLEET, REVISION_LABEL: revision_of(v2)}
    assert first.manifest["metadata"]["ownerReferences"][0]["uid"] == UID


def test_only_owned_deployments_of_removed_sites_and_owned_old_revisions_are_deleted() -> None:
    gone = as_deployed(applies(observation())[0], site="c", name="assistant-c")
    foreign = replace(gone, site="d", name="assistant-d", owners=frozenset({"other"}))
    stored = (
        StoredRevision("keep", REVISION, 1, frozenset({UID}), revision_content(SPEC)),
        StoredRevision("old", "0123456789", 2, frozenset({UID}), None),
        StoredRevision("foreign", "abcdefabcd", 3, frozenset({"other"}), None),
    )
    plan = plan_fleet(SPEC, observation(deployments=(*deployed(), gone, foreign), revisions=stored), T0)
    deletes = [i.target for i in plan.intents if isinstance(i, DeleteObject)]
    assert deletes == [
        ObjectRef("apps/v1", "Deployment", "assistant-c", NAMESPACE),
        ObjectRef("apps/v1", "ControllerRevision", "old", NAMESPACE),
    ]


def test_index_objects_become_facts() -> None:
    content = revision_content(SPEC)
    body = {
        "metadata": {"name": "r", "labels": {REVISION_LABEL: REVISION}, "ownerReferences": [{"uid": UID}]},
        "data": content.to_data(),
        "revision": 3,
    }
    assert stored_revision(body) == StoredRevision("r", REVISION, 3, frozenset({UID}), content)
    tampered = {**body, "metadata": {**body["metadata"], "labels": {REVISION_LABEL: "0000000000"}}}
    assert stored_revision(tampered).content is None  # content that does not hash to its label
    assert stored_revision({**body, "data": {"junk": 1}}).content is None
    deployment = site_deployment(
        {"metadata": {"name": "d", "labels": {"finops.dev/site": "a"}, "generation": 2}, "spec": {}}
    )
    assert (deployment.name, deployment.site, deployment.replicas, deployment.generation) == ("d", "a", 1, 2)


# --- the health query -----------------------------------------------------------------------------

QUERY = 'min(up{namespace="$namespace", fleet="$fleet", revision="$revision"})'


@pytest.mark.parametrize(
    ("query", "stable", "asked"),
    [
        pytest.param(None, "old", False, id="no-query"),
        pytest.param(QUERY, None, False, id="first-deployment"),
        pytest.param(QUERY, "spec", False, id="no-rollout"),
        pytest.param(QUERY, "old", True, id="rollout"),
    ],
)
def test_health_query_only_during_a_rollout(query: str | None, stable: str | None, asked: bool) -> None:
    spec = make_spec(rollout={"healthQuery": query} if query else {})
    revision = revision_of(spec)
    status = EdgeFleetStatus(stable_revision=revision if stable == "spec" else stable)
    promql = health_query(spec, status, NAMESPACE, FLEET)
    expected = f'min(up{{namespace="{NAMESPACE}", fleet="{FLEET}", revision="{revision}"}})'
    assert promql == (expected if asked else None)


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        pytest.param(None, (None, None), id="not-asked"),
        pytest.param(HealthAnswer(error="down"), (None, "down"), id="not-evaluable"),
        pytest.param(HealthAnswer(values=()), (False, None), id="no-samples-no-evidence"),
        pytest.param(HealthAnswer(values=(1.0, 2.0)), (True, None), id="healthy"),
        pytest.param(HealthAnswer(values=(1.0, 0.0)), (False, None), id="one-zero"),
    ],
)
def test_health_verdict(answer: HealthAnswer | None, verdict: tuple[bool | None, str | None]) -> None:
    assert health_verdict(answer) == verdict


# --- the referenced FinOpsPolicy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "labels", "missing_before", "warned"),
    [
        pytest.param(None, None, True, False, id="no-reference"),
        pytest.param("edge-cost", {"tier": "edge"}, True, False, id="found"),
        pytest.param("edge-cost", None, True, True, id="still-absent"),
        pytest.param("edge-cost", None, False, False, id="first-absence-index-may-not-be-loaded"),
        pytest.param("edge-cost", {"tier": "edge"}, False, False, id="found-at-first-sight"),
    ],
)
def test_policy_not_found_only_when_absent_twice(
    reference: str | None, labels: dict[str, str] | None, missing_before: bool, warned: bool
) -> None:
    spec = make_spec(finOpsPolicyRef={"name": reference}) if reference else SPEC
    observed = observation(policy_labels=labels, policy_missing_before=missing_before)
    events = [(e.type, e.reason, e.message) for e in policy_events(spec, observed)]
    assert events == (
        [("Warning", "PolicyNotFound", f"FinOpsPolicy edge-cost not found in namespace {NAMESPACE}")]
        if warned
        else []
    )
    assert [e.reason for e in plan_fleet(spec, observed, T0).events].count("PolicyNotFound") == warned


def test_policy_labels_go_on_the_site_deployments() -> None:
    spec = make_spec(finOpsPolicyRef={"name": "edge-cost"})
    manifests = applies(observation(policy_labels={"tier": "edge"}), spec)
    assert all(m["metadata"]["labels"]["tier"] == "edge" for m in manifests)
