"""costLimits.maxHourlyCost at admission: GPUs per pod x replicas x the GPU-hour rate against the cap,
refused in Enforce and warned about in Warn, with the figures in the message; a scale-down, or the
operator restoring the replicas it recorded, is never refused."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.planners.policy import parse_policy_spec
from finops_operator.planners.policy.caps import (
    PodTemplateFacts,
    admit_deployment,
    cap_violations,
    previous_deployment,
)
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS

LLM = {"app": "llm"}
PRICING = {"gpuHourlyRate": 2.5, "currency": "EUR", "gpuProductRates": {"NVIDIA-H100-80GB-HBM3": 4.9}}


def policy(mode: str = "Enforce", cap: float = 20) -> tuple[str, Any]:
    raw = {
        "targetWorkloadSelector": {"matchLabels": LLM},
        "enforcementMode": mode,
        "costLimits": {"maxHourlyCost": cap},
        "pricing": PRICING,
    }
    return ("cost-cap", parse_policy_spec(raw))


def template(gpus: int, product: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "s", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]
    }
    if product:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {"metadata": {"labels": LLM}, "spec": spec}


def deployment(gpus: int, replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": LLM, "annotations": annotations or {}},
        "spec": {"replicas": replicas, "template": template(gpus)},
    }


def test_enforce_refuses_with_the_figures_and_warn_warns() -> None:
    facts = PodTemplateFacts.from_template(template(2))
    refused = admit_deployment([policy()], "llm", LLM, facts, replicas=5)
    assert not refused.allowed
    assert refused.message == (
        "Deployment llm rejected: FinOpsPolicy cost-cap: 2 GPUs per pod x 5 replicas x 2.5 EUR per GPU-hour "
        "= 25 EUR per hour exceeds maxHourlyCost 20"
    )
    assert admit_deployment([policy()], "llm", LLM, facts, replicas=4).allowed  # 20 EUR/h: at the cap
    warned = admit_deployment([policy("Warn")], "llm", LLM, facts, replicas=5)
    assert warned.allowed and warned.warnings == (refused.message.removeprefix("Deployment llm rejected: "),)
    assert admit_deployment([policy("DryRun")], "llm", LLM, facts, replicas=5) == admit_deployment(
        [], "llm", LLM, facts
    )


def test_the_rate_of_the_pinned_gpu_product() -> None:
    facts = PodTemplateFacts.from_template(template(1, "NVIDIA-H100-80GB-HBM3"))
    [violation] = cap_violations("llm", policy()[1], facts, replicas=5)
    assert "1 GPUs per pod x 5 replicas x 4.9 EUR per GPU-hour = 24.5 EUR per hour" in violation.message


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (deployment(2, 4), deployment(2, 5), False),  # a scale-up past the cap
        (deployment(2, 6), deployment(2, 5), True),  # already over the cap, made better: warned
        (deployment(2, 0, {ANNOTATION_PREVIOUS_REPLICAS: "6"}), deployment(2, 6), True),  # a restore
        (deployment(1, 5), deployment(2, 5), False),  # more GPUs per pod
    ],
)
def test_updates_are_refused_only_when_they_raise_the_cost(
    old: dict[str, Any], new: dict[str, Any], allowed: bool
) -> None:
    facts = PodTemplateFacts.from_template(new["spec"]["template"])
    verdict = admit_deployment(
        [policy()], "llm", LLM, facts, previous_deployment(old), replicas=new["spec"]["replicas"]
    )
    assert verdict.allowed is allowed, verdict


def test_the_audit_lists_running_workloads_over_the_cap() -> None:
    facts = PodTemplateFacts.from_template(template(2))
    assert [v.rule for v in cap_violations("llm", policy()[1], facts, replicas=8)] == ["maxHourlyCost"]
    assert cap_violations("llm", policy()[1], facts) == []  # replicas unknown: not judged
