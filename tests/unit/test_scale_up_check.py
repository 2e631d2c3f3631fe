"""costLimits.refuseBudgetBreakingScaleUp at admission: a change adding GPUs is refused (Enforce) or
warned about (Warn) when the burn after it would use up a GPU-hour budget before its window ends;
figures from the policy's status (its window ledgers and gpusRunning). Pinned clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from finops_operator.planners.policy import parse_policy_spec
from finops_operator.planners.policy.caps import PodTemplateFacts, admit_deployment, previous_deployment
from finops_operator.planners.policy.scaleup import BudgetPosition, budget_position, scale_up_overrun
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS

NOW = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # 4 h before the daily reset
LLM = {"app": "llm"}
STATUS = {
    "gpusRunning": 2,
    "windows": [
        {
            "period": "daily",
            "start": "2026-11-22T00:00:00Z",
            "end": "2026-11-23T00:00:00Z",
            "ledgerTime": "2026-11-22T19:59:00Z",
            "gpuHoursUsed": 10.0,
        },
        {  # a closed window: not judged
            "period": "daily",
            "start": "2026-11-21T00:00:00Z",
            "end": "2026-11-22T00:00:00Z",
            "ledgerTime": "2026-11-22T00:00:00Z",
            "gpuHoursUsed": 30.0,
        },
    ],
}


def spec(mode: str = "Enforce", check: bool = True, daily: float = 20) -> Any:
    return parse_policy_spec(
        {
            "targetWorkloadSelector": {"matchLabels": LLM},
            "enforcementMode": mode,
            "costLimits": {"dailyGPUHours": daily, "refuseBudgetBreakingScaleUp": check},
        }
    )


def test_position_reads_only_the_open_windows_and_the_running_gpus() -> None:
    position = budget_position(STATUS)
    assert position is not None and position.gpus_running == 2
    assert [(w.period.value, w.gpu_hours_used) for w in position.windows] == [("daily", 10.0)]
    assert budget_position({}) is None
    assert budget_position({"windows": [{"period": "hourly"}]}) is None  # unreadable: no check


def test_a_scale_up_that_runs_the_budget_out_before_the_reset_is_described() -> None:
    position = budget_position(STATUS)
    # Left: 20 - 10 - 2 GPUs x 1 min = 9.97 GPU-hours; 4 h to go. 2 GPUs burn 8: fits.
    assert scale_up_overrun(spec(), position, 0, NOW) is None
    # One more GPU: 3 x 4 h = 12 > 9.97, used up 3.32 h from now.
    assert scale_up_overrun(spec(), position, 1, NOW) == (
        "adding 1 GPU(s) makes the burn 3 GPUs, which uses up the 9.97 GPU-hours left of the daily budget "
        "(20) at 2026-11-22 23:19 UTC, before the window ends at 2026-11-23 00:00 UTC"
    )
    assert scale_up_overrun(spec(daily=40), position, 1, NOW) is None
    assert scale_up_overrun(spec(check=False), position, 5, NOW) is None  # opt-in
    assert scale_up_overrun(spec(), None, 5, NOW) is None  # no sample yet: the budget action still applies


@pytest.mark.parametrize(
    ("mode", "allowed", "warned"), [("Enforce", False, 0), ("Warn", True, 1), ("DryRun", True, 0)]
)
def test_enforce_refuses_warn_warns_dry_run_admits(mode: str, allowed: bool, warned: int) -> None:
    facts = PodTemplateFacts(gpus=1)
    old = {
        "metadata": {"labels": LLM},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": LLM},
                "spec": {"containers": [{"name": "s", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            },
        },
    }
    positions = {"p": budget_position(STATUS)}
    verdict = admit_deployment(
        [("p", spec(mode))],
        "llm",
        LLM,
        facts,
        previous_deployment(old),
        replicas=3,
        positions=positions,
        now=NOW,
    )
    assert verdict.allowed is allowed and len(verdict.warnings) == warned
    if not allowed:
        assert "FinOpsPolicy p: adding 1 GPU(s) makes the burn 3 GPUs" in verdict.message


def test_scaling_down_and_restoring_recorded_replicas_are_never_refused() -> None:
    facts = PodTemplateFacts(gpus=1)
    template = {
        "metadata": {"labels": LLM},
        "spec": {"containers": [{"name": "s", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }
    scaled = {
        "metadata": {"labels": LLM, "annotations": {ANNOTATION_PREVIOUS_REPLICAS: "5"}},
        "spec": {"replicas": 0, "template": template},
    }
    positions = {"p": BudgetPosition(5, budget_position(STATUS).windows)}  # type: ignore[union-attr]
    restore = admit_deployment(
        [("p", spec())],
        "llm",
        LLM,
        facts,
        previous_deployment(scaled),
        replicas=5,
        positions=positions,
        now=NOW,
    )
    assert restore.allowed
    down = {"metadata": {"labels": LLM}, "spec": {"replicas": 4, "template": template}}
    assert admit_deployment(
        [("p", spec())],
        "llm",
        LLM,
        facts,
        previous_deployment(down),
        replicas=3,
        positions=positions,
        now=NOW,
    ).allowed
