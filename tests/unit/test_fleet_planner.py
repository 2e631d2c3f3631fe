from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus, RevisionRecord
from finops_operator.planners.fleet import (
    FLEET_LABEL,
    MODEL_VERSION_LABEL,
    PROFILE_ANNOTATION,
    REVISION_LABEL,
    UPDATED_AT_ANNOTATION,
    FleetEventReason,
    FleetReason,
    RevisionContent,
    RolloutObservation,
    RolloutPlan,
    SiteFacts,
    SiteNode,
    SiteWorkload,
    deployment_name,
    desired_deployment,
    discover_sites,
    label_value,
    plan_rollout,
    revision_content,
    revision_of,
    site_node,
    site_workload,
    wave_size,
    wave_steps,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "store-assistant"}},
    "spec": {
        "containers": [
            {"name": "server", "image": "llama:cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
            {"name": "sidecar", "image": "envoy:1"},
        ]
    },
}


def make_spec(**overrides: Any) -> EdgeFleetSpec:
    raw: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"finops.dev/edge": "true"}},
        "modelVersion": "v1",
        "template": TEMPLATE,
        "rollout": {"wavePercents": [10, 50, 100], "soakSeconds": 300, "waveTimeoutSeconds": 600},
        "offlineTolerance": {"maxOfflineSitesPercent": 30},
    }
    rollout = overrides.pop("rollout", {})
    raw["rollout"] = {**raw["rollout"], **rollout}
    raw.update(overrides)
    return EdgeFleetSpec.model_validate(raw)


def site(name: str, online: bool = True, labels: dict[str, str] | None = None) -> SiteFacts:
    node = SiteNode(
        f"{name}-node", {"finops.dev/site": name, **(labels or {})}, online, T0 - timedelta(days=1)
    )
    return SiteFacts(name, (node,), online, node.ready_since if online else None)


def site_names(count: int) -> list[str]:
    return [f"store-{i:03d}" for i in range(count)]


@dataclass
class Sim:
    """A fake cluster: applies plans like the handler would, and pods become Ready one tick later
    unless the site is offline or ``broken(site, revision)``."""

    spec: EdgeFleetSpec
    sites: dict[str, SiteFacts]
    now: datetime = T0
    tick: timedelta = timedelta(seconds=60)
    status: EdgeFleetStatus = field(default_factory=EdgeFleetStatus)
    workloads: dict[str, SiteWorkload] = field(default_factory=dict)
    contents: dict[str, RevisionContent] = field(default_factory=dict)
    failed_revision: str | None = None
    health_ok: bool | None = None
    health_error: str | None = None
    broken: Callable[[str, str], bool] = lambda _site, _revision: False
    events: list[tuple[str, str, str]] = field(default_factory=list)
    generation: int = 1

    @classmethod
    def deployed(cls, count: int, **kwargs: Any) -> Sim:
        """A fleet of ``count`` online sites that completed its first deployment of ``make_spec()``."""
        sim = cls(make_spec(), {n: site(n) for n in site_names(count)}, **kwargs)
        sim.run_until(lambda s: s.status.stable_revision is not None and s.all_ready())
        return sim

    def observe(self) -> RolloutObservation:
        return RolloutObservation(
            generation=self.generation,
            current_status=self.status,
            sites=dict(self.sites),
            site_workloads=dict(self.workloads),
            revision_contents=dict(self.contents),
            health_ok=self.health_ok,
            health_error=self.health_error,
            failed_revision=self.failed_revision,
        )

    def settle(self) -> None:
        for name, workload in self.workloads.items():
            facts = self.sites.get(name)
            healthy = facts is not None and facts.online and not self.broken(name, workload.revision or "")
            if healthy and not workload.ready:
                self.workloads[name] = replace(workload, ready=True, ready_since=self.now)
            elif not healthy and workload.ready:
                self.workloads[name] = replace(workload, ready=False, ready_since=None)

    def step(self) -> RolloutPlan:
        self.settle()
        plan = plan_rollout(self.spec, self.observe(), self.now)
        self.status = plan.status
        self.failed_revision = plan.failed_revision
        self.contents.update(plan.revisions_to_store)
        self.contents = {r: c for r, c in self.contents.items() if r in plan.revisions_to_keep}
        for apply in plan.workloads_to_apply:
            old = self.workloads.get(apply.site)
            if old is None or old.revision != apply.revision:
                self.workloads[apply.site] = SiteWorkload(apply.revision, False, None, apply.updated_at)
        for name in plan.workloads_to_delete:
            del self.workloads[name]
        self.events.extend(plan.events)
        self.now += self.tick
        return plan

    def run_until(self, done: Callable[[Sim], bool], max_steps: int = 200) -> int:
        for steps in range(max_steps):
            if done(self):
                return steps
            self.step()
        raise AssertionError(f"not done after {max_steps} steps: {self.status}")

    def on(self, revision: str | None) -> list[str]:
        return sorted(n for n, w in self.workloads.items() if w.revision == revision)

    def all_ready(self) -> bool:
        return all(
            (w := self.workloads.get(n)) is not None and w.ready for n, s in self.sites.items() if s.online
        )

    def change_spec(self, **overrides: Any) -> str:
        self.spec = make_spec(**overrides)
        self.generation += 1
        return revision_of(self.spec)


def condition(status: EdgeFleetStatus, kind: str) -> tuple[ConditionStatus, str]:
    found = find(status.conditions, kind)
    assert found is not None, kind
    return found.status, found.reason


def reasons(events: Iterable[tuple[str, str, str]]) -> list[str]:
    return [reason for _type, reason, _message in events]


# --- revisions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "changes"),
    [
        pytest.param({"modelVersion": "v2"}, True, id="model-version"),
        pytest.param({"template": {**TEMPLATE, "metadata": {"labels": {"app": "x"}}}}, True, id="template"),
        pytest.param({"hardwareProfiles": [{"name": "npu", "nodeLabels": {"a": "b"}}]}, True, id="profiles"),
        pytest.param({"replicasPerSite": 3}, False, id="replicas"),
        pytest.param({"rollout": {"paused": True, "soakSeconds": 1}}, False, id="rollout-settings"),
        pytest.param({"siteLabel": "example.com/store"}, False, id="site-label"),
        pytest.param({"revisionHistoryLimit": 2}, False, id="history-limit"),
    ],
)
def test_revision_tracks_only_what_a_wave_must_protect(overrides: dict[str, Any], changes: bool) -> None:
    base = revision_of(make_spec())
    assert (revision_of(make_spec(**overrides)) != base) is changes
    assert re.fullmatch(r"[0-9a-f]{10}", base)


def test_revision_is_stable_and_survives_storage_round_trip() -> None:
    spec = make_spec(hardwareProfiles=[{"name": "npu", "nodeLabels": {"acc": "npu"}, "image": "npu:1"}])
    content = revision_content(spec)
    assert revision_of(spec) == revision_of(make_spec(**spec.to_wire())) == content.revision
    assert RevisionContent.from_data(content.to_data()) == content
    assert RevisionContent.from_data(content.to_data()).revision == content.revision


# --- sites ------------------------------------------------------------------------------------------


def test_discover_sites_groups_selected_nodes_by_site_label() -> None:
    spec = make_spec(hardwareProfiles=[{"name": "npu", "nodeLabels": {"acc": "npu"}}])
    edge = {"finops.dev/edge": "true"}
    nodes = [
        SiteNode("b-1", {**edge, "finops.dev/site": "b", "acc": "npu"}, ready=False),
        SiteNode("a-2", {**edge, "finops.dev/site": "a"}, ready=False),
        SiteNode("a-1", {**edge, "finops.dev/site": "a"}, ready=True, ready_since=T0),
        SiteNode("c-1", {"finops.dev/site": "c"}),  # not in the fleet
        SiteNode("x-1", edge),  # no site label
        SiteNode("y-1", {**edge, "finops.dev/site": ""}),  # empty site value
    ]
    sites = discover_sites(nodes, spec)
    assert list(sites) == ["a", "b"]
    assert [n.name for n in sites["a"].nodes] == ["a-1", "a-2"]
    assert sites["a"].online and sites["a"].online_since == T0 and sites["a"].profile is None
    assert not sites["b"].online and sites["b"].profile == "npu"
    # Unlabelling the last node of a site removes the site.
    assert list(discover_sites(nodes[1:], spec)) == ["a"]


def test_hardware_profile_needs_every_node_and_first_match_wins() -> None:
    spec = make_spec(
        hardwareProfiles=[
            {"name": "npu", "nodeLabels": {"acc": "npu"}},
            {"name": "any", "nodeLabels": {}},
        ]
    )
    edge = {"finops.dev/edge": "true", "finops.dev/site": "s"}
    mixed = [SiteNode("1", {**edge, "acc": "npu"}), SiteNode("2", {**edge, "acc": "gpu"})]
    assert discover_sites(mixed, spec)["s"].profile == "any"
    assert discover_sites(mixed[:1], spec)["s"].profile == "npu"


def test_node_and_deployment_facts_from_api_objects() -> None:
    node = {
        "metadata": {"name": "n1", "labels": {"a": "b"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T09:00:00Z"}]
        },
    }
    assert site_node(node) == SiteNode("n1", {"a": "b"}, True, datetime(2026, 11, 22, 9, tzinfo=UTC))
    deployment: dict[str, Any] = {
        "metadata": {
            "generation": 3,
            "labels": {REVISION_LABEL: "abc"},
            "annotations": {UPDATED_AT_ANNOTATION: "2026-11-22T09:00:00+00:00"},
        },
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z"},
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "lastUpdateTime": "2026-11-22T09:05:00Z",
                },
            ],
        },
    }
    assert site_workload(deployment) == SiteWorkload(
        "abc", True, datetime(2026, 11, 22, 9, 5, tzinfo=UTC), datetime(2026, 11, 22, 9, tzinfo=UTC)
    )
    rolling = {**deployment, "status": {**deployment["status"], "replicas": 3}}  # old pod still around
    assert not site_workload(rolling).ready
    assert site_workload({}) == SiteWorkload(None, False, None, None)


# --- names and the Deployment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fleet", "site_name", "expected"),
    [
        pytest.param("assistant", "store-1", "assistant-store-1", id="safe"),
        pytest.param("assistant", "Store_1", None, id="uppercase-underscore"),
        pytest.param("assistant", "store.berlin", None, id="dot"),
        pytest.param("assistant", "s" * 63, None, id="long-site"),
        pytest.param("a" * 60 + ".b", "x", None, id="long-dotted-fleet"),
    ],
)
def test_deployment_names_are_dns_labels_and_deterministic(
    fleet: str, site_name: str, expected: str | None
) -> None:
    name = deployment_name(fleet, site_name)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert name == deployment_name(fleet, site_name)
    if expected is not None:
        assert name == expected
    else:
        assert re.search(r"-[0-9a-f]{8}$", name)


def test_names_of_distinct_sites_never_collide() -> None:
    sites = ["store-1", "Store-1", "store_1", "store.1", "STORE.1", "s" * 63, "s" * 62 + "t"]
    assert len({deployment_name("fleet", s) for s in sites}) == len(sites)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("v1", id="plain"),
        pytest.param("llama+3.2/int4", id="unsafe"),
        pytest.param("x" * 128, id="long"),
    ],
)
def test_label_values_are_valid(value: str) -> None:
    result = label_value(value)
    assert len(result) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", result)
    assert (result == value) is (value == "v1")


def test_desired_deployment_pins_the_site_and_labels_for_the_policy() -> None:
    spec = make_spec(
        replicasPerSite=2,
        modelVersion="llama+3.2",
        nodeSelector={
            "matchLabels": {"finops.dev/edge": "true"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["kiosk"]}],
        },
    )
    facts = site("store-7")
    manifest = desired_deployment(
        "assistant",
        "edge-ai",
        spec,
        facts,
        revision="abc",
        content=revision_content(spec),
        policy_labels={"cost-center": "edge", FLEET_LABEL: "spoof"},
        updated_at=T0,
    )
    metadata, body = manifest["metadata"], manifest["spec"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("apps/v1", "Deployment")
    # A single-accelerator site cannot run the old and the new revision side by side: no surge pod.
    assert body["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert metadata["name"] == "assistant-store-7" and metadata["namespace"] == "edge-ai"
    assert "ownerReferences" not in metadata
    assert metadata["labels"] == {
        "cost-center": "edge",
        FLEET_LABEL: "assistant",
        "finops.dev/site": "store-7",
        REVISION_LABEL: "abc",
        MODEL_VERSION_LABEL: label_value("llama+3.2"),
    }
    assert metadata["annotations"][UPDATED_AT_ANNOTATION] == T0.isoformat()
    assert body["replicas"] == 2
    assert body["selector"] == {"matchLabels": {FLEET_LABEL: "assistant", "finops.dev/site": "store-7"}}
    pod = body["template"]
    assert pod["metadata"]["labels"]["app"] == "store-assistant"
    assert pod["metadata"]["labels"][REVISION_LABEL] == "abc"
    assert "cost-center" not in pod["metadata"]["labels"]
    assert pod["spec"]["nodeSelector"] == {"finops.dev/site": "store-7"}
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "finops.dev/edge", "operator": "In", "values": ["true"]},
                {"key": "tier", "operator": "NotIn", "values": ["kiosk"]},
            ]
        }
    ]
    assert TEMPLATE["spec"].get("nodeSelector") is None  # the spec's template is not mutated


def test_hardware_profile_overrides_the_first_container_of_the_revision() -> None:
    profile = {"name": "npu", "nodeLabels": {"acc": "npu"}, "image": "llama:npu", "resources": {"limits": {}}}
    old = make_spec(hardwareProfiles=[profile])
    new = make_spec(modelVersion="v2")  # the profile is gone in the current spec
    npu_site = site("s1", labels={"acc": "npu"})

    def render(content: RevisionContent) -> dict[str, Any]:
        return desired_deployment(
            "f", "ns", new, npu_site, revision="r", content=content, policy_labels={}, updated_at=T0
        )

    rolled_back = render(revision_content(old))  # a rollback renders the old revision's profiles
    server, sidecar = rolled_back["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "llama:npu" and server["resources"] == {"limits": {}}
    assert sidecar["image"] == "envoy:1"
    assert rolled_back["metadata"]["annotations"][PROFILE_ANNOTATION] == "npu"
    current = render(revision_content(new))["spec"]["template"]["spec"]["containers"][0]
    assert current["image"] == "llama:cuda"


# --- first deployment and steady state --------------------------------------------------------------


def test_first_deployment_goes_everywhere_at_once_and_becomes_stable() -> None:
    sim = Sim(make_spec(), {n: site(n) for n in site_names(20)})
    plan = sim.step()
    revision = revision_of(sim.spec)
    assert {a.revision for a in plan.workloads_to_apply} == {revision}
    assert plan.revisions_to_store.keys() == {revision}
    assert condition(plan.status, "Progressing") == (ConditionStatus.TRUE, FleetReason.DEPLOYING)
    assert condition(plan.status, "Ready")[0] == ConditionStatus.FALSE
    plan = sim.step()
    assert plan.status.stable_revision == plan.status.current_revision == revision
    assert plan.status.current_wave == 0
    assert condition(plan.status, "Progressing") == (ConditionStatus.FALSE, FleetReason.ROLLOUT_COMPLETE)
    assert condition(plan.status, "Ready") == (ConditionStatus.TRUE, FleetReason.ALL_SITES_READY)
    assert condition(plan.status, "Degraded") == (ConditionStatus.FALSE, FleetReason.HEALTHY)
    assert [r.revision for r in plan.status.revisions] == [revision]


def test_no_sites_is_ready_with_reason() -> None:
    plan = Sim(make_spec(), {}).step()
    assert condition(plan.status, "Ready") == (ConditionStatus.TRUE, FleetReason.NO_SITES)
    assert plan.workloads_to_apply == ()


# --- waves ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percents", "sites", "sizes"),
    [
        pytest.param([10, 50, 100], 20, [2, 10, 20], id="10-50-100-of-20"),
        pytest.param([10, 50, 100], 3, [1, 2, 3], id="10-50-100-of-3"),
        pytest.param([1, 100], 20, [1, 20], id="at-least-one"),
        pytest.param([25, 100], 7, [2, 7], id="ceil"),
        pytest.param([100], 5, [5], id="single-wave"),
    ],
)
def test_wave_sizes(percents: list[int], sites: int, sizes: list[int]) -> None:
    assert [wave_size(p, sites) for p in wave_steps(percents)] == sizes


def test_waves_update_sites_in_order_and_gate_on_soak() -> None:
    sim = Sim.deployed(20)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2")
    plan = sim.step()
    assert reasons(plan.events) == [FleetEventReason.ROLLOUT_STARTED]
    assert plan.status.current_wave == 1 and plan.status.current_revision == new
    assert plan.status.stable_revision == stable
    assert sim.on(new) == ["store-000", "store-001"]
    assert condition(plan.status, "Progressing") == (ConditionStatus.TRUE, FleetReason.WAVE_IN_PROGRESS)
    assert plan.revisions_to_store.keys() == {new}

    seen: list[tuple[int, int]] = []
    while sim.status.stable_revision != new:
        sim.step()
        if (sim.status.current_wave, len(sim.on(new))) not in seen:
            seen.append((sim.status.current_wave, len(sim.on(new))))
    assert seen == [(1, 2), (2, 10), (3, 20), (0, 20)]
    assert sim.on(new)[:10] == site_names(10)
    assert reasons(sim.events[-3:]).count(FleetEventReason.ROLLOUT_COMPLETE) == 1
    assert condition(sim.status, "Progressing") == (ConditionStatus.FALSE, FleetReason.ROLLOUT_COMPLETE)
    assert [r.revision for r in sim.status.revisions] == [new, stable]


@pytest.mark.parametrize(
    ("ready_for", "wave"),
    [pytest.param(299, 1, id="soak-not-over"), pytest.param(300, 2, id="soak-over")],
)
def test_soak_gates_the_next_wave(ready_for: int, wave: int) -> None:
    spec = make_spec(modelVersion="v2")
    old, new = "old", revision_of(spec)
    sites = {n: site(n) for n in site_names(20)}
    ready_since = T0 - timedelta(seconds=ready_for)
    workloads = {n: SiteWorkload(old, True, T0 - timedelta(days=1), T0 - timedelta(days=1)) for n in sites}
    for name in site_names(2):
        workloads[name] = SiteWorkload(new, True, ready_since, ready_since - timedelta(seconds=30))
    status = EdgeFleetStatus(current_revision=new, stable_revision=old, current_wave=1)
    contents = {old: revision_content(make_spec())}
    plan = plan_rollout(spec, RolloutObservation(1, status, sites, workloads, contents), T0)
    assert plan.status.current_wave == wave
    assert sum(a.revision == new for a in plan.workloads_to_apply) == (2 if wave == 1 else 10)
    if wave == 1:
        _, reason = condition(plan.status, "Progressing")
        message = find(plan.status.conditions, "Progressing")
        assert reason == FleetReason.WAVE_IN_PROGRESS and message and "Ready for 300s" in message.message


def test_wave_start_skips_waves_that_need_no_more_sites() -> None:
    sim = Sim.deployed(3)
    sim.spec = make_spec(modelVersion="v2", rollout={"wavePercents": [10, 20, 30, 100]})
    new = revision_of(sim.spec)
    sim.run_until(lambda s: s.status.current_wave >= 2 or s.status.stable_revision == new)
    assert sim.status.current_wave == 4 and sim.on(new) == site_names(3)


def test_online_sites_are_preferred() -> None:
    sim = Sim.deployed(10)
    sim.sites["store-000"] = site("store-000", online=False)
    new = sim.change_spec(modelVersion="v2")
    sim.step()
    assert sim.on(new) == ["store-001"]


# --- offline sites ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offline", "tolerance", "passes"),
    [
        pytest.param(1, 30, True, id="1-of-5-within-30pct"),
        pytest.param(2, 30, False, id="2-of-5-beyond-30pct"),
        pytest.param(2, 40, True, id="2-of-5-at-40pct"),
        pytest.param(5, 100, True, id="all-offline-tolerated"),
        pytest.param(1, 0, False, id="zero-tolerance"),
    ],
)
def test_offline_sites_in_a_wave(offline: int, tolerance: int, passes: bool) -> None:
    sim = Sim.deployed(10)
    new = sim.change_spec(
        modelVersion="v2",
        rollout={"wavePercents": [50, 100]},
        offlineTolerance={"maxOfflineSitesPercent": tolerance},
    )
    sim.step()
    sim.step()
    assert sim.on(new) == site_names(5) and sim.status.current_wave == 1
    for name in site_names(offline):  # updated, then their nodes went NotReady
        sim.sites[name] = site(name, online=False)
    sim.now += timedelta(hours=2)  # well past soak and the wave timeout
    sim.step()
    assert (sim.status.current_wave == 2) is passes
    assert sim.status.sites_offline == offline
    assert sim.failed_revision is None and sim.status.sites_failed == 0  # offline is not failed
    if not passes:
        message = find(sim.status.conditions, "Progressing")
        assert message is not None and "offline sites" in message.message


def test_offline_site_keeps_its_revision_and_catches_up_when_back() -> None:
    sim = Sim.deployed(10)
    sim.sites["store-009"] = site("store-009", online=False)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2")
    sim.run_until(lambda s: s.status.stable_revision == new)
    # The last wave includes the offline site: its Deployment carries the new revision already.
    assert sim.on(new) == site_names(10) and stable not in {w.revision for w in sim.workloads.values()}
    assert not sim.workloads["store-009"].ready
    assert condition(sim.status, "Ready") == (ConditionStatus.TRUE, FleetReason.ALL_SITES_READY)

    # Back online hours after the update: it gets the full wave timeout to start, it is not failed.
    sim.now += timedelta(hours=5)
    back = site("store-009")
    sim.sites["store-009"] = replace(back, online_since=sim.now)
    plan = plan_rollout(sim.spec, sim.observe(), sim.now)
    assert plan.status.sites_failed == 0
    assert condition(plan.status, "Ready") == (ConditionStatus.FALSE, FleetReason.SITES_NOT_READY)
    assert next(a for a in plan.workloads_to_apply if a.site == "store-009").revision == new
    sim.step()
    sim.step()
    assert sim.workloads["store-009"].ready
    assert condition(sim.status, "Ready") == (ConditionStatus.TRUE, FleetReason.ALL_SITES_READY)


# --- failures and rollback --------------------------------------------------------------------------


def test_failing_readiness_rolls_back_automatically_and_is_not_retried() -> None:
    sim = Sim.deployed(20)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2")
    sim.broken = lambda name, revision: revision == new and name == "store-001"
    sim.run_until(lambda s: s.failed_revision is not None)
    assert sim.status.current_revision == stable and sim.status.stable_revision == stable
    assert sim.status.current_wave == 0
    assert sim.status.last_rollback_reason is not None
    assert "store-001 not Ready" in sim.status.last_rollback_reason
    assert "1 of 2 site(s) failed (more than 20%)" in sim.status.last_rollback_reason
    assert condition(sim.status, "Degraded") == (ConditionStatus.TRUE, FleetReason.ROLLED_BACK)
    assert condition(sim.status, "Progressing") == (ConditionStatus.FALSE, FleetReason.ROLLED_BACK)
    assert sim.events[-1][:2] == ("Warning", FleetEventReason.ROLLED_BACK)
    assert sim.on(stable) == site_names(20)

    for _ in range(20):  # the spec still asks for the failed revision: it is never retried
        plan = sim.step()
        assert {a.revision for a in plan.workloads_to_apply} == {stable}
    assert condition(sim.status, "Degraded") == (ConditionStatus.TRUE, FleetReason.ROLLED_BACK)
    assert condition(sim.status, "Ready") == (ConditionStatus.TRUE, FleetReason.ALL_SITES_READY)
    assert new in {r.revision for r in sim.status.revisions}

    fixed = sim.change_spec(modelVersion="v3")
    sim.broken = lambda _name, _revision: False
    plan = sim.step()
    assert plan.failed_revision is None and sim.status.current_wave == 1
    assert condition(sim.status, "Degraded") == (ConditionStatus.FALSE, FleetReason.HEALTHY)
    sim.run_until(lambda s: s.status.stable_revision == fixed)
    assert sim.status.last_rollback_reason is not None  # "last" rollback stays on record


@pytest.mark.parametrize(
    ("broken", "limit", "rolls_back"),
    [
        pytest.param(1, 20, False, id="1-of-10-within-20pct"),
        pytest.param(2, 20, False, id="2-of-10-at-20pct"),
        pytest.param(3, 20, True, id="3-of-10-beyond-20pct"),
        pytest.param(1, 0, True, id="zero-tolerance"),
        pytest.param(10, 100, False, id="never"),
    ],
)
def test_rollback_threshold(broken: int, limit: int, rolls_back: bool) -> None:
    sim = Sim.deployed(10)
    new = sim.change_spec(modelVersion="v2", rollout={"wavePercents": [100], "maxFailedSitesPercent": limit})
    bad = set(site_names(broken))
    sim.broken = lambda name, revision: revision == new and name in bad
    for _ in range(15):  # 15 minutes: past the 600 s wave timeout
        sim.step()
    assert (sim.failed_revision == new) is rolls_back
    if not rolls_back:
        assert sim.status.sites_failed == broken
        assert condition(sim.status, "Degraded") == (ConditionStatus.TRUE, FleetReason.SITES_FAILING)
        # Tolerated failures do not hold the rollout: the only wave passes.
        assert (sim.status.stable_revision == new) is (broken < 10)


def test_failing_health_query_blocks_then_rolls_back() -> None:
    sim = Sim.deployed(10)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2")
    sim.health_ok = False
    for _ in range(8):
        sim.step()
    assert sim.status.current_wave == 1 and sim.failed_revision is None
    message = find(sim.status.conditions, "Progressing")
    assert message is not None and "health query" in message.message
    sim.run_until(lambda s: s.failed_revision is not None, max_steps=10)
    assert sim.status.current_revision == stable and new not in {
        a.revision for a in sim.step().workloads_to_apply
    }
    assert "health query" in (sim.status.last_rollback_reason or "")


def test_unevaluable_health_query_holds_the_wave_but_never_rolls_back() -> None:
    sim = Sim.deployed(10)
    new = sim.change_spec(modelVersion="v2")
    sim.health_error = "Prometheus query failed: connection refused"
    for _ in range(40):  # far beyond waveTimeoutSeconds
        sim.step()
    assert sim.status.current_wave == 1 and sim.failed_revision is None
    assert sim.status.current_revision == new
    progressing = find(sim.status.conditions, "Progressing")
    assert progressing is not None and "connection refused" in progressing.message
    sim.health_error = None
    sim.run_until(lambda s: s.status.stable_revision == new)


def test_rollback_without_the_stable_content_holds_and_reports() -> None:
    sim = Sim.deployed(10)
    new = sim.change_spec(modelVersion="v2", rollout={"maxFailedSitesPercent": 0})
    sim.broken = lambda name, revision: revision == new
    sim.step()
    sim.contents.clear()  # storage lost
    plans = [sim.step() for _ in range(12)]
    assert sim.failed_revision is None and new in sim.contents  # the target is simply stored again
    assert condition(sim.status, "Degraded") == (ConditionStatus.TRUE, FleetReason.ROLLBACK_UNAVAILABLE)
    # Held: no further site moves, and sites whose stable content is lost are left as they are
    # (never overwritten with the failing revision, never deleted).
    assert sim.on(new) == ["store-000"] and len(sim.on(sim.status.stable_revision)) == 9
    assert [a.site for a in plans[-1].workloads_to_apply] == ["store-000"]
    assert plans[-1].workloads_to_delete == ()
    assert reasons(sim.events).count(FleetEventReason.ROLLBACK_UNAVAILABLE) == 1


# --- pause ------------------------------------------------------------------------------------------


def test_pause_holds_the_wave_and_resume_continues() -> None:
    sim = Sim.deployed(20)
    new = sim.change_spec(modelVersion="v2")
    sim.step()
    sim.spec = make_spec(modelVersion="v2", rollout={"paused": True})
    for _ in range(20):
        sim.step()
    assert sim.status.current_wave == 1 and sim.on(new) == site_names(2)
    assert condition(sim.status, "Progressing") == (ConditionStatus.FALSE, FleetReason.PAUSED)
    sim.spec = make_spec(modelVersion="v2")
    sim.step()
    assert sim.status.current_wave == 2 and len(sim.on(new)) == 10
    assert condition(sim.status, "Progressing") == (ConditionStatus.TRUE, FleetReason.WAVE_IN_PROGRESS)


def test_paused_before_start_updates_nothing() -> None:
    sim = Sim.deployed(5)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2", rollout={"paused": True})
    plan = sim.step()
    assert plan.status.current_revision == new and plan.status.current_wave == 1
    assert {a.revision for a in plan.workloads_to_apply} == {stable}


def test_rollback_still_happens_while_paused() -> None:
    sim = Sim.deployed(10)
    new = sim.change_spec(modelVersion="v2", rollout={"maxFailedSitesPercent": 0})
    sim.broken = lambda _name, revision: revision == new
    sim.step()
    sim.spec = make_spec(modelVersion="v2", rollout={"maxFailedSitesPercent": 0, "paused": True})
    sim.run_until(lambda s: s.failed_revision == new, max_steps=15)
    assert sim.on(new) == []


# --- sites coming and going -------------------------------------------------------------------------


def test_new_site_during_a_rollout_gets_the_stable_revision() -> None:
    sim = Sim.deployed(20)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2")
    sim.step()
    sim.sites["zz-new"] = site("zz-new")  # 21 sites: wave 1 grows to ceil(2.1) = 3
    plan = sim.step()
    applies = {a.site: a.revision for a in plan.workloads_to_apply}
    assert applies["zz-new"] == stable
    assert sim.on(new) == ["store-000", "store-001", "store-002"]
    assert FleetEventReason.SITES_ADDED in reasons(plan.events)
    assert plan.status.sites_total == 21


def test_new_site_after_the_rollout_gets_the_current_revision() -> None:
    sim = Sim.deployed(4)
    sim.sites["new"] = site("new")
    plan = sim.step()
    assert {a.revision for a in plan.workloads_to_apply} == {sim.status.stable_revision}


def test_removed_site_has_its_workload_deleted() -> None:
    sim = Sim.deployed(5)
    del sim.sites["store-002"]
    plan = sim.step()
    assert plan.workloads_to_delete == ("store-002",)
    assert "store-002" not in {a.site for a in plan.workloads_to_apply}
    assert plan.status.sites_total == 4
    assert FleetEventReason.SITES_REMOVED in reasons(plan.events)
    assert sim.step().workloads_to_delete == ()


def test_superseded_rollout_keeps_its_sites_until_their_wave() -> None:
    sim = Sim.deployed(20)
    stable = sim.status.stable_revision
    second = sim.change_spec(modelVersion="v2")
    sim.run_until(lambda s: s.status.current_wave == 2)
    third = sim.change_spec(modelVersion="v3")
    sim.step()
    assert sim.status.stable_revision == stable and sim.status.current_wave == 1
    assert sim.on(third) == site_names(2) and sim.on(second) == site_names(10)[2:]
    sim.run_until(lambda s: s.status.stable_revision == third)
    assert sim.on(third) == site_names(20)


# --- status bookkeeping -----------------------------------------------------------------------------


def test_revision_history_is_newest_first_bounded_and_storage_keeps_the_stable() -> None:
    sim = Sim.deployed(3)
    first = sim.status.stable_revision
    sim.spec = make_spec(revisionHistoryLimit=2)
    revisions = [first]
    for version in ("v2", "v3", "v4"):
        revisions.append(sim.change_spec(modelVersion=version, revisionHistoryLimit=2))
        sim.run_until(lambda s: s.status.stable_revision == revisions[-1])
    assert [r.revision for r in sim.status.revisions] == revisions[:-3:-1]
    assert set(sim.contents) == set(revisions[-2:])
    # Reverting to an older revision moves it to the front.
    sim.change_spec(modelVersion="v3", revisionHistoryLimit=2)
    plan = sim.step()
    assert [r.revision for r in plan.status.revisions] == [revisions[2], revisions[3]]


def test_history_limit_never_drops_the_stable_content() -> None:
    sim = Sim.deployed(3)
    stable = sim.status.stable_revision
    new = sim.change_spec(modelVersion="v2", revisionHistoryLimit=1)
    plan = sim.step()
    assert [r.revision for r in plan.status.revisions] == [new]
    assert stable in plan.revisions_to_keep and stable in sim.contents


def test_conditions_only_transition_on_flips() -> None:
    sim = Sim.deployed(10)
    healthy = find(sim.status.conditions, "Degraded")
    sim.change_spec(modelVersion="v2")
    started_at = sim.now
    sim.step()
    for _ in range(3):
        sim.step()
    degraded = find(sim.status.conditions, "Degraded")
    progressing = find(sim.status.conditions, "Progressing")
    assert healthy is not None and degraded is not None and progressing is not None
    assert degraded.last_transition_time == healthy.last_transition_time  # still False
    assert degraded.observed_generation == 2
    assert progressing.status == ConditionStatus.TRUE and progressing.last_transition_time == started_at


def test_planning_is_idempotent_and_a_fixpoint() -> None:
    sim = Sim.deployed(20)
    sim.change_spec(modelVersion="v2")
    for _ in range(7):  # somewhere in the middle of wave 2
        sim.step()
    sim.settle()
    observation = sim.observe()
    first, second = plan_rollout(sim.spec, observation, sim.now), plan_rollout(sim.spec, observation, sim.now)
    assert first == second
    # Feeding the plan back before anything changed in the cluster changes nothing more.
    again = plan_rollout(sim.spec, replace(observation, current_status=first.status), sim.now)
    assert again.status == first.status and again.workloads_to_apply == first.workloads_to_apply
    assert again.events == ()


def test_status_counters() -> None:
    sim = Sim.deployed(10)
    sim.sites["store-009"] = site("store-009", online=False)
    new = sim.change_spec(modelVersion="v2", rollout={"wavePercents": [50, 100]})
    sim.step()
    status = sim.status
    assert (status.sites_total, status.sites_updated, status.sites_offline) == (10, 0, 1)
    sim.step()
    assert sim.status.sites_updated == 5 and sim.status.sites_ready == 9
    assert sim.on(new) == site_names(5)


def test_rollout_proceeds_when_the_stable_content_is_unknown() -> None:
    previous = EdgeFleetStatus(
        revisions=[RevisionRecord(revision="zzz", model_version="v0", created=T0 - timedelta(days=9))],
        stable_revision="zzz",
        current_revision="zzz",
    )
    spec = make_spec()
    plan = plan_rollout(spec, RolloutObservation(1, previous, {"a": site("a")}), T0)
    # The stable content is unknown: the new revision is rolled out, nothing can be rolled back to.
    assert plan.status.current_wave == 1 and plan.workloads_to_apply[0].revision == revision_of(spec)


def test_five_hundred_sites_roll_out_in_few_reconciles() -> None:
    """Planning time is a benchmark figure (benchmarks/fleet_rollout.py: planning cost per reconcile),
    not a timed assertion."""
    sim = Sim.deployed(500)
    sim.sites["store-499"] = site("store-499", online=False)
    new = sim.change_spec(modelVersion="v2")
    steps = sim.run_until(lambda s: s.status.stable_revision == new)
    assert sim.on(new) == site_names(500) and steps < 30
