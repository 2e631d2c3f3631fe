"""EdgeFleet and ModelReleaseGates: a revision a gate refuses is never started; the fleet stays on its
stable revision (or deploys nothing), says why in status, and resumes once the refusal is gone."""

from __future__ import annotations

from finops_operator.api.edgefleet import EdgeFleetStatus
from finops_operator.planners.fleet import plan_fleet, revision_of
from finops_operator.planners.plan import ApplyManifest
from tests.unit.test_fleet_plan import REVISION, T0, applies, deployed, make_spec, observation

REFUSAL = (
    "ModelReleaseGate prod: Deployment edge-ai/assistant lacks evidence annotation x [rule RequiredEvidence]"
)
NEW = make_spec(modelVersion="v2")


def conditions(status: EdgeFleetStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status.value, c.reason) for c in status.conditions}


def test_a_refused_new_revision_is_not_started_and_status_says_why() -> None:
    plan = plan_fleet(NEW, observation(gate_refusal=REFUSAL, deployments=deployed()), T0)
    revisions = {
        m["metadata"]["labels"]["finops.dev/revision"]
        for m in applies(observation(gate_refusal=REFUSAL), NEW)
    }
    assert revision_of(NEW) not in revisions and revisions <= {REVISION}
    assert conditions(plan.status)["Progressing"] == ("False", "GateRefused")
    assert conditions(plan.status)["Degraded"] == ("True", "GateRefused")
    progressing = next(c for c in plan.status.conditions if c.type == "Progressing")
    assert progressing.message == f"revision {revision_of(NEW)} refused by a release gate: {REFUSAL}"
    assert plan.status.failed_revision is None  # not recorded as failed: fixing the evidence resumes
    assert "GateRefused" in [e.reason for e in plan.events]
    again = plan_fleet(NEW, observation(gate_refusal=REFUSAL, current_status=plan.status), T0)
    assert "GateRefused" not in [e.reason for e in again.events]


def test_resumes_once_the_gate_admits_the_revision() -> None:
    refused = plan_fleet(NEW, observation(gate_refusal=REFUSAL), T0)
    resumed = applies(observation(current_status=refused.status), NEW)
    assert revision_of(NEW) in {m["metadata"]["labels"]["finops.dev/revision"] for m in resumed}


def test_first_deployment_of_a_refused_revision_writes_nothing() -> None:
    plan = plan_fleet(NEW, observation(gate_refusal=REFUSAL, current_status=EdgeFleetStatus()), T0)
    assert not [i for i in plan.intents if isinstance(i, ApplyManifest)]
    assert conditions(plan.status)["Progressing"] == ("False", "GateRefused")


def test_a_running_stable_revision_is_not_taken_down_by_a_new_gate() -> None:
    plan = plan_fleet(make_spec(), observation(gate_refusal=REFUSAL), T0)
    assert "GateRefused" not in {reason for _, reason in conditions(plan.status).values()}
