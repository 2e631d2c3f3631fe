"""The caps admission decision: a new violation, or one made worse, is refused in Enforce; a change
that leaves an old violation as it was (a placement repair, an image bump) or reduces it goes through."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.planners.policy import parse_policy_spec
from finops_operator.planners.policy.caps import (
    PodTemplateFacts,
    PreviousDeployment,
    admit_deployment,
    previous_deployment,
)

LLM = {"app": "llm"}


def policy(mode: str = "Enforce", **spec: Any) -> tuple[str, Any]:
    raw = {
        "targetWorkloadSelector": {"matchLabels": LLM},
        "enforcementMode": mode,
        "costLimits": {"maxGPUsPerPod": 2, "maxCPUCores": 8, "maxMemoryGB": 32},
        "optimizationRules": {"modelQuantizationRequired": True},
        **spec,
    }
    return ("caps", parse_policy_spec(raw))


def facts(
    gpus: int = 1, cpu: float = 2, quantization: str = "int8", memory_gb: float = 8
) -> PodTemplateFacts:
    return PodTemplateFacts(cpu, memory_gb, gpus, {"finops.dev/model-quantization": quantization})


def before(labels: dict[str, str] = LLM, **kwargs: Any) -> PreviousDeployment:
    return PreviousDeployment(labels, facts(**kwargs))


@pytest.mark.parametrize(
    ("mode", "now", "previous", "expected"),
    [
        ("Enforce", facts(), None, (True, [], 0)),
        ("Enforce", facts(gpus=4), None, (False, ["maxGPUsPerPod"], 0)),
        ("Enforce", facts(quantization="fp16"), None, (False, ["model-quantization=fp16"], 0)),
        ("Enforce", facts(quantization="fp16"), before(quantization="fp16"), (True, [], 1)),
        ("Enforce", facts(quantization="bf16"), before(quantization="fp16"), (True, [], 1)),
        ("Enforce", facts(quantization="fp16"), before(), (False, ["model-quantization=fp16"], 0)),
        ("Enforce", facts(gpus=4), before(gpus=4), (True, [], 1)),
        ("Enforce", facts(gpus=3), before(gpus=4), (True, [], 1)),
        ("Enforce", facts(gpus=6), before(gpus=4), (False, ["6 GPUs per pod"], 0)),
        ("Enforce", facts(gpus=4, cpu=12), before(gpus=4), (False, ["12 CPU cores"], 1)),
        ("Enforce", facts(memory_gb=64), before(memory_gb=48), (False, ["maxMemoryGB"], 0)),
        (
            "Enforce",
            facts(quantization="fp16"),
            before({"app": "web"}, quantization="fp16"),
            (False, ["fp16"], 0),
        ),
        ("Enforce", facts(quantization="fp16"), before({"app": "web"}), (False, ["fp16"], 0)),
        ("Enforce", facts(), before(gpus=4, quantization="fp16"), (True, [], 0)),
        ("Warn", facts(gpus=4), None, (True, [], 1)),
        ("Warn", facts(gpus=4), before(gpus=4), (True, [], 1)),
        ("DryRun", facts(gpus=4), None, (True, [], 0)),
    ],
    ids=[
        "create-within-caps",
        "create-over-a-cap",
        "create-unquantized",
        "update-keeps-old-unquantized-eg-affinity-repair",
        "update-unquantized-another-way-not-worse",
        "update-introduces-unquantized",
        "update-keeps-gpus-over-cap",
        "update-reduces-gpus-still-over",
        "update-raises-gpus-further",
        "update-adds-a-new-cap-violation",
        "update-raises-memory-further",
        "update-now-selected-old-violation-counts-as-new",
        "update-now-selected-and-violating",
        "update-fixes-everything",
        "warn-create-warns",
        "warn-update-warns",
        "dryrun-says-nothing",
    ],
)
def test_an_update_is_refused_only_for_what_it_makes_worse(
    mode: str,
    now: PodTemplateFacts,
    previous: PreviousDeployment | None,
    expected: tuple[bool, list[str], int],
) -> None:
    allowed, rules_in_message, warnings = expected
    verdict = admit_deployment([policy(mode)], "llm", LLM, now, previous)
    assert verdict.allowed is allowed
    assert all(text in verdict.message for text in rules_in_message), verdict.message
    assert len(verdict.warnings) == warnings, verdict.warnings
    if not allowed:
        assert verdict.message.startswith("Deployment llm rejected: FinOpsPolicy caps: ")


def test_a_kept_violation_is_named_in_a_warning() -> None:
    verdict = admit_deployment([policy()], "llm", LLM, facts(gpus=4), before(gpus=4))
    assert verdict.warnings == (
        "FinOpsPolicy caps: 4 GPUs per pod exceeds maxGPUsPerPod 2 "
        "(already so before this change, which does not make it worse)",
    )


def test_previous_deployment_reads_labels_and_the_pod_template() -> None:
    old = {
        "metadata": {"labels": LLM},
        "spec": {
            "template": {
                "metadata": {"labels": {"finops.dev/model-quantization": "fp16"}},
                "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
            }
        },
    }
    found = previous_deployment(old)
    assert found is not None and found.labels == LLM and found.facts.gpus == 2
    assert found.facts.labels == {"finops.dev/model-quantization": "fp16"}
    assert previous_deployment(None) is None
    assert previous_deployment({}) == PreviousDeployment({}, PodTemplateFacts())
