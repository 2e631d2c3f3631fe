"""Per-workload caps (CPU cores, memory, GPUs per pod, quantized models) and the admission verdict for
a Deployment under the FinOpsPolicies of its namespace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from finops_operator.api.common import GPU_RESOURCE, EnforcementMode
from finops_operator.api.finopspolicy import FinOpsPolicySpec, Violation
from finops_operator.planners.labelselectors import selector_matches

QUANTIZATION_LABEL = "finops.dev/model-quantization"
UNQUANTIZED = frozenset({"", "none", "fp32", "fp16", "bf16", "float32", "float16", "bfloat16"})
_BINARY = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = ("k", "M", "G", "T", "P", "E")
_SUFFIXES: dict[str, Decimal] = {
    **{suffix: Decimal(2) ** (10 * power) for power, suffix in enumerate(_BINARY, 1)},
    **{suffix: Decimal(10) ** (3 * power) for power, suffix in enumerate(_DECIMAL, 1)},
    "K": Decimal(1000),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
}


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes resource.Quantity ("500m", "32Gi", "1e9", 2) as a number; ValueError if malformed."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):  # "Mi" before "M"
        if text.endswith(suffix):
            try:
                return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except InvalidOperation:
                break
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from None


def gpus_in_pod_spec(pod_spec: Mapping[str, Any]) -> int:
    """GPUs one pod asks for (limits, else requests; init containers as Kubernetes counts them)."""
    containers = list(pod_spec.get("containers") or [])
    return int(_pod_total(containers, list(pod_spec.get("initContainers") or []), GPU_RESOURCE))


@dataclass(frozen=True)
class PodTemplateFacts:
    """The resources one pod of a workload asks for (limits, else requests, summed over containers)."""

    cpu_cores: float = 0.0
    memory_gb: float = 0.0
    gpus: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> PodTemplateFacts:
        spec = template.get("spec") or {}
        containers = list(spec.get("containers") or [])
        init = list(spec.get("initContainers") or [])
        cpu = _pod_total(containers, init, "cpu")
        memory = _pod_total(containers, init, "memory")
        gpus = _pod_total(containers, init, GPU_RESOURCE)
        labels = (template.get("metadata") or {}).get("labels") or {}
        return cls(float(cpu), float(memory / Decimal(10**9)), int(gpus), dict(labels))


def _container_amount(container: Mapping[str, Any], resource: str) -> Decimal:
    resources = container.get("resources") or {}
    value = (resources.get("limits") or {}).get(resource)
    if value is None:
        value = (resources.get("requests") or {}).get(resource)
    if value is None:
        return Decimal(0)
    try:
        return parse_quantity(value)
    except ValueError:
        return Decimal(0)  # the API server rejects malformed quantities before we see them


def _pod_total(
    containers: Sequence[Mapping[str, Any]], init: Sequence[Mapping[str, Any]], resource: str
) -> Decimal:
    """Init containers run one at a time before the others: the pod needs the larger of the biggest init
    container and the sum of the regular ones."""
    regular = sum((_container_amount(c, resource) for c in containers), Decimal(0))
    first = max((_container_amount(c, resource) for c in init), default=Decimal(0))
    return max(regular, first)


def cap_violations(workload: str, spec: FinOpsPolicySpec, facts: PodTemplateFacts) -> list[Violation]:
    """Every cap the pod template breaks, each with what was found and what is allowed."""
    found: list[Violation] = []
    limits = spec.cost_limits
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


@dataclass(frozen=True)
class AdmissionVerdict:
    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


def admit_deployment(
    policies: Sequence[tuple[str, FinOpsPolicySpec]],
    name: str,
    labels: Mapping[str, str],
    facts: PodTemplateFacts,
) -> AdmissionVerdict:
    """Reject when an Enforce-mode policy selecting the Deployment is broken; warn for Warn mode; DryRun
    only reports through the audit. Messages name the policy and the limit."""
    denials: list[str] = []
    warnings: list[str] = []
    for policy, spec in sorted(policies, key=lambda p: p[0]):
        if not selector_matches(spec.target_workload_selector, labels):
            continue
        for violation in cap_violations(name, spec, facts):
            text = f"FinOpsPolicy {policy}: {violation.message}"
            if spec.enforcement_mode == EnforcementMode.ENFORCE:
                denials.append(text)
            elif spec.enforcement_mode == EnforcementMode.WARN:
                warnings.append(text)
    if denials:
        return AdmissionVerdict(False, f"Deployment {name} rejected: " + "; ".join(denials), tuple(warnings))
    return AdmissionVerdict(True, "", tuple(warnings))
