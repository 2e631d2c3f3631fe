"""What one pod asks for, by the Kubernetes effective-request rule: the one GPU count of the project.

Per container the limit counts, else the request (for extended resources such as ``nvidia.com/gpu``
Kubernetes requires them equal, and a limit alone sets the request). Init containers run one at a
time before the others, except restartable ones (``restartPolicy: Always``, sidecars), which keep
running: the pod needs the larger of (regular containers + sidecars) and, for each plain init
container, itself plus the sidecars started before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from finops_operator.api.common import GPU_RESOURCE

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


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(value: object) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list | tuple) else []
    return [c for c in items if isinstance(c, Mapping)]


def container_amount(container: Mapping[str, Any], resource: str) -> Decimal:
    """The limit, else the request, of one container; 0 when absent, malformed or negative."""
    resources = _mapping(container.get("resources"))
    value = _mapping(resources.get("limits")).get(resource)
    if value is None:
        value = _mapping(resources.get("requests")).get(resource)
    if value is None:
        return Decimal(0)
    try:
        amount = parse_quantity(value)
    except ValueError:
        return Decimal(0)  # the API server rejects malformed quantities before we see them
    return amount if amount.is_finite() and amount > 0 else Decimal(0)


def pod_amount(pod_spec: Mapping[str, Any], resource: str) -> Decimal:
    """What one pod asks for of ``resource`` (the effective request, see the module docstring)."""
    regular = sum(
        (container_amount(c, resource) for c in _containers(pod_spec.get("containers"))), Decimal(0)
    )
    sidecars = Decimal(0)
    init_peak = Decimal(0)
    for container in _containers(pod_spec.get("initContainers")):
        amount = container_amount(container, resource)
        if container.get("restartPolicy") == "Always":
            sidecars += amount
        else:
            init_peak = max(init_peak, sidecars + amount)
    return max(regular + sidecars, init_peak)


def gpus_in_pod_spec(pod_spec: Mapping[str, Any]) -> int:
    """GPUs one pod asks for (limits, else requests; init containers as Kubernetes counts them)."""
    return int(pod_amount(_mapping(pod_spec), GPU_RESOURCE))
