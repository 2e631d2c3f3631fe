"""Per-workload caps (CPU cores, memory, GPUs per pod, hourly cost, quantized models) and the admission
verdict for a Deployment under the FinOpsPolicies of its namespace: a new violation, or one made worse, is
refused; a change that leaves an old violation as it was is not (see ``admit_deployment``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from finops_operator.api.common import GPU_PRODUCT_LABEL, GPU_RESOURCE, EnforcementMode
from finops_operator.api.finopspolicy import FinOpsPolicySpec, Violation
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.policy.ledger import hourly_rate
from finops_operator.planners.policy.scaleup import BudgetPosition, scale_up_overrun
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS
from finops_operator.workloads.resources import pod_amount

QUANTIZATION_LABEL = "finops.dev/model-quantization"
UNQUANTIZED = frozenset({"", "none", "fp32", "fp16", "bf16", "float32", "float16", "bfloat16"})


@dataclass(frozen=True)
class PodTemplateFacts:
    """The resources one pod of a workload asks for (limits, else requests, summed over containers)."""

    cpu_cores: float = 0.0
    memory_gb: float = 0.0
    gpus: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    gpu_product: str | None = None
    """The GPU product its nodeSelector pins (nvidia.com/gpu.product), which sets its price."""

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> PodTemplateFacts:
        spec = template.get("spec") or {}
        cpu = pod_amount(spec, "cpu")
        memory = pod_amount(spec, "memory")
        gpus = pod_amount(spec, GPU_RESOURCE)
        labels = (template.get("metadata") or {}).get("labels") or {}
        product = (spec.get("nodeSelector") or {}).get(GPU_PRODUCT_LABEL)
        return cls(
            float(cpu),
            float(memory / Decimal(10**9)),
            int(gpus),
            dict(labels),
            str(product) if product else None,
        )


def hourly_cost(spec: FinOpsPolicySpec, facts: PodTemplateFacts, replicas: int) -> tuple[float, float]:
    """(GPU-hour rate, cost per hour) of ``replicas`` pods like ``facts`` at the policy's prices."""
    rate = hourly_rate(spec.pricing, facts.gpu_product)
    return rate, facts.gpus * max(replicas, 0) * rate


def cap_violations(
    workload: str, spec: FinOpsPolicySpec, facts: PodTemplateFacts, replicas: int | None = None
) -> list[Violation]:
    """Every cap the pod template (and, for the hourly cost, its ``replicas``) breaks, each with what
    was found and what is allowed."""
    found: list[Violation] = []
    limits = spec.cost_limits
    if limits and limits.max_hourly_cost is not None and replicas is not None:
        rate, cost = hourly_cost(spec, facts, replicas)
        if cost > limits.max_hourly_cost + 1e-9:
            currency = spec.pricing.currency if spec.pricing else ""
            found.append(
                Violation(
                    name=workload,
                    rule="maxHourlyCost",
                    message=f"{facts.gpus} GPUs per pod x {replicas} replicas x {rate:g} {currency} per "
                    f"GPU-hour = {cost:g} {currency} per hour exceeds maxHourlyCost "
                    f"{limits.max_hourly_cost:g}",
                )
            )
    if limits and limits.max_cpu_cores is not None and facts.cpu_cores > limits.max_cpu_cores:
        found.append(
            Violation(
                name=workload,
                rule="maxCPUCores",
                message=f"{facts.cpu_cores:g} CPU cores per pod exceeds maxCPUCores {limits.max_cpu_cores:g}",
            )
        )
    if limits and limits.max_memory_gb is not None and facts.memory_gb > limits.max_memory_gb + 1e-9:
        found.append(
            Violation(
                name=workload,
                rule="maxMemoryGB",
                message=f"{facts.memory_gb:.3g} GB memory per pod exceeds maxMemoryGB "
                f"{limits.max_memory_gb:g}",
            )
        )
    if limits and limits.max_gpus_per_pod is not None and facts.gpus > limits.max_gpus_per_pod:
        found.append(
            Violation(
                name=workload,
                rule="maxGPUsPerPod",
                message=f"{facts.gpus} GPUs per pod exceeds maxGPUsPerPod {limits.max_gpus_per_pod}",
            )
        )
    rules = spec.optimization_rules
    if rules and rules.model_quantization_required:
        value = facts.labels.get(QUANTIZATION_LABEL, "")
        if value.lower() in UNQUANTIZED:
            shown = f"label {QUANTIZATION_LABEL}={value}" if value else f"no {QUANTIZATION_LABEL} label"
            found.append(
                Violation(
                    name=workload,
                    rule="modelQuantizationRequired",
                    message=f"{shown} on the pod template; a quantized model (e.g. int8, int4, "
                    "fp8) is required",
                )
            )
    return found


MEASURED_BY: Mapping[str, Callable[[PodTemplateFacts], float]] = {
    "maxCPUCores": attrgetter("cpu_cores"),
    "maxMemoryGB": attrgetter("memory_gb"),
    "maxGPUsPerPod": attrgetter("gpus"),
}
"""What each numeric cap measures; a rule not listed here (quantization) is broken or not, no degrees."""


@dataclass(frozen=True)
class PreviousDeployment:
    """A Deployment as it was before an UPDATE: the labels policies select it by, its pod template and
    its replicas."""

    labels: Mapping[str, str]
    facts: PodTemplateFacts
    replicas: int = 1


def previous_deployment(old: Mapping[str, Any] | None) -> PreviousDeployment | None:
    """The object an UPDATE replaces (None on CREATE)."""
    if old is None:
        return None
    labels = (old.get("metadata") or {}).get("labels") or {}
    spec = old.get("spec") or {}
    template = spec.get("template") or {}
    # A Deployment the operator scaled down counts with the replicas it recorded: restoring them is
    # not a scale-up past the hourly cost that admission could refuse.
    recorded = str(
        ((old.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PREVIOUS_REPLICAS, "")
    )
    replicas = max(replicas_of(spec), int(recorded) if recorded.isdecimal() else 0)
    return PreviousDeployment(dict(labels), PodTemplateFacts.from_template(template), replicas)


def replicas_of(spec: Mapping[str, Any]) -> int:
    """spec.replicas of a Deployment as admitted (unset means 1, as the API server defaults it)."""
    value = spec.get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def made_worse(
    violation: Violation,
    facts: PodTemplateFacts,
    previous: PodTemplateFacts | None,
    broken_before: Set[str],
    cost_change: tuple[float, float] | None = None,
) -> bool:
    """Whether a change introduces ``violation`` or moves further past the cap than the workload was.

    ``previous`` is the pod template before the change (None: there was none, or the policy did not
    select it), ``broken_before`` the rules it already broke under the same policy, ``cost_change``
    the hourly cost (before, after). A numeric cap is made worse when its measure grew; quantization
    only when it was not broken before."""
    if previous is None or violation.rule not in broken_before:
        return True
    if violation.rule == "maxHourlyCost":
        return cost_change is None or cost_change[1] > cost_change[0] + 1e-9
    measure = MEASURED_BY.get(violation.rule)
    return measure is not None and measure(facts) > measure(previous)


@dataclass(frozen=True)
class AdmissionVerdict:
    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


def _added_gpus(
    facts: PodTemplateFacts, replicas: int | None, before: PodTemplateFacts | None, old_replicas: int | None
) -> int:
    """GPUs a change adds to what the policy governed before (all of them for a new workload)."""
    now = facts.gpus * max(replicas if replicas is not None else 1, 0)
    if before is None or old_replicas is None:
        return now
    return now - before.gpus * max(old_replicas, 0)


def admit_deployment(
    policies: Sequence[tuple[str, FinOpsPolicySpec]],
    name: str,
    labels: Mapping[str, str],
    facts: PodTemplateFacts,
    previous: PreviousDeployment | None = None,
    *,
    replicas: int | None = None,
    positions: Mapping[str, BudgetPosition | None] | None = None,
    now: datetime | None = None,
) -> AdmissionVerdict:
    """Reject when an Enforce-mode policy selecting the Deployment is broken by the change; warn for
    Warn mode; DryRun only reports through the audit. Messages name the policy and the limit.

    On an UPDATE (``previous``), Enforce refuses only what the change makes worse: a cap the workload
    did not break before under that policy (including a policy that did not select it before), or a
    numeric cap exceeded by more than before. A violation the workload already had and that the
    change leaves as it was, or reduces, is admitted with a warning: otherwise a workload that broke
    a cap before the policy existed could take no change at all (not the operator's own affinity
    repair, not an image fix, not a step towards the cap), and the audit lists it anyway."""
    denials: list[str] = []
    warnings: list[str] = []
    for policy, spec in sorted(policies, key=lambda p: p[0]):
        if not selector_matches(spec.target_workload_selector, labels):
            continue
        before: PodTemplateFacts | None = None
        if previous is not None and selector_matches(spec.target_workload_selector, previous.labels):
            before = previous.facts
        old_replicas = previous.replicas if previous is not None else None
        broken_before = (
            {v.rule for v in cap_violations(name, spec, before, old_replicas)}
            if before is not None
            else set()
        )
        cost_change = (
            (hourly_cost(spec, before, old_replicas)[1], hourly_cost(spec, facts, replicas)[1])
            if before is not None and old_replicas is not None and replicas is not None
            else None
        )
        overrun = (
            scale_up_overrun(
                spec, (positions or {}).get(policy), _added_gpus(facts, replicas, before, old_replicas), now
            )
            if now is not None
            else None
        )
        if overrun is not None and spec.enforcement_mode == EnforcementMode.ENFORCE:
            denials.append(f"FinOpsPolicy {policy}: {overrun}")
        elif overrun is not None and spec.enforcement_mode == EnforcementMode.WARN:
            warnings.append(f"FinOpsPolicy {policy}: {overrun}")
        for violation in cap_violations(name, spec, facts, replicas):
            text = f"FinOpsPolicy {policy}: {violation.message}"
            if spec.enforcement_mode == EnforcementMode.ENFORCE:
                if made_worse(violation, facts, before, broken_before, cost_change):
                    denials.append(text)
                else:
                    warnings.append(f"{text} (already so before this change, which does not make it worse)")
            elif spec.enforcement_mode == EnforcementMode.WARN:
                warnings.append(text)
    if denials:
        return AdmissionVerdict(False, f"Deployment {name} rejected: " + "; ".join(denials), tuple(warnings))
    return AdmissionVerdict(True, "", tuple(warnings))
