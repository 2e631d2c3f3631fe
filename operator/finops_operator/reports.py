"""Compliance reports for auditors, built from objects as the API returns them (``kubectl get -o json``
items or the Kubernetes client's dicts). Pure: the CLI fetches, this module only reads and formats,
so a report can be rebuilt from an archived JSON dump."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

UNKNOWN = "Unknown"


@dataclass(frozen=True)
class ViolationRow:
    namespace: str
    kind: str
    name: str
    rule: str
    since: str
    message: str


@dataclass(frozen=True)
class RegionRow:
    """One SovereignRegion as an auditor reads it: what it confines, and what its last audit found."""

    name: str
    region: str
    mode: str
    bound_namespaces: int
    matching_nodes: int
    compliant_workloads: int
    violating_workloads: int
    violation_count: int
    ready: str
    compliant: str
    namespace_conflict: str
    last_audit_time: str
    allowed_gpu_products: tuple[str, ...] = ()
    allowed_data_classifications: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    violations: tuple[ViolationRow, ...] = field(default=())
    problems: tuple[str, ...] = ()
    """Why this region cannot be called compliant beyond its violations (not ready, conflicts, no audit)."""


@dataclass(frozen=True)
class SovereigntyReport:
    regions: tuple[RegionRow, ...]

    @property
    def compliant(self) -> bool:
        """True only when every region has been audited, is Ready, and found nothing."""
        return all(r.compliant == "True" and not r.problems for r in self.regions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "compliant": self.compliant,
            "regions": [
                {
                    **{k: v for k, v in asdict(row).items() if k != "violations"},
                    "violations": [asdict(v) for v in row.violations],
                }
                for row in self.regions
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def to_table(self) -> str:
        """A summary table, then every listed violation; problems are spelled out under the table."""
        header = (
            "NAME",
            "REGION",
            "MODE",
            "NAMESPACES",
            "NODES",
            "COMPLIANT",
            "VIOLATING",
            "VIOLATIONS",
            "READY",
            "LAST AUDIT",
        )
        rows = [header] + [
            (
                r.name,
                r.region,
                r.mode,
                str(r.bound_namespaces),
                str(r.matching_nodes),
                str(r.compliant_workloads),
                str(r.violating_workloads),
                str(r.violation_count),
                r.ready,
                r.last_audit_time or "never",
            )
            for r in self.regions
        ]
        lines = [_line(rows, row) for row in rows]
        for r in self.regions:
            lines.extend(f"! {r.name}: {p}" for p in r.problems)
        violations = [(r.name, v) for r in self.regions for v in r.violations]
        if violations:
            vrows = [("REGION", "NAMESPACE", "KIND", "NAME", "RULE", "SINCE")] + [
                (name, v.namespace, v.kind, v.name, v.rule, v.since) for name, v in violations
            ]
            lines.extend(["", *(_line(vrows, row) for row in vrows)])
        lines.extend(["", f"Overall: {'COMPLIANT' if self.compliant else 'NOT COMPLIANT'}"])
        return "\n".join(lines)


def _line(rows: Sequence[tuple[str, ...]], row: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(row))]
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if _mapping(condition).get("type") == kind:
            return _mapping(condition)
    return {}


def region_row(obj: Mapping[str, Any]) -> RegionRow:
    """One SovereignRegion object (as a dict from the API) as a report row; tolerant of missing or
    malformed status (a region never audited is reported as such, never as compliant)."""
    spec, status = _mapping(obj.get("spec")), _mapping(obj.get("status"))
    ready, compliant, conflict = (_condition(status, t) for t in ("Ready", "Compliant", "NamespaceConflict"))
    problems: list[str] = []
    if not status.get("lastAuditTime"):
        problems.append("never audited (is the operator running?)")
    if ready and ready.get("status") != "True":
        problems.append(f"not Ready: {ready.get('reason', '')}: {ready.get('message', '')}")
    if conflict.get("status") == "True":
        problems.append(f"namespace conflict: {conflict.get('message', '')}")
    generation = _int(_mapping(obj.get("metadata")).get("generation"))
    if status and _int(status.get("observedGeneration")) < generation:
        problems.append("status is older than the current spec")
    violations = tuple(
        ViolationRow(
            namespace=str(v.get("namespace", "")),
            kind=str(v.get("kind", "")),
            name=str(v.get("name", "")),
            rule=str(v.get("rule", "")),
            since=str(v.get("since", "")),
            message=str(v.get("message", "")),
        )
        for v in (_mapping(x) for x in (status.get("violations") or []) if isinstance(x, Mapping))
    )
    return RegionRow(
        name=str(_mapping(obj.get("metadata")).get("name", "")),
        region=str(spec.get("region", "")),
        mode=str(spec.get("enforcementMode", "Enforce")),
        bound_namespaces=_int(status.get("boundNamespaceCount")),
        matching_nodes=_int(status.get("matchingNodes")),
        compliant_workloads=_int(status.get("compliantWorkloads")),
        violating_workloads=_int(status.get("violatingWorkloads")),
        violation_count=_int(status.get("violationCount")),
        ready=str(ready.get("status", UNKNOWN)),
        compliant=str(compliant.get("status", UNKNOWN)),
        namespace_conflict=str(conflict.get("status", UNKNOWN)),
        last_audit_time=str(status.get("lastAuditTime") or ""),
        allowed_gpu_products=_strings(spec.get("allowedGPUProducts")),
        allowed_data_classifications=_strings(spec.get("allowedDataClassifications")),
        namespaces=_strings(status.get("boundNamespaces")),
        violations=violations,
        problems=tuple(problems),
    )


def sovereignty_report(regions: Iterable[Mapping[str, Any]]) -> SovereigntyReport:
    """The compliance report of SovereignRegion objects (dicts as the API returns them), by name."""
    return SovereigntyReport(tuple(sorted((region_row(r) for r in regions), key=lambda row: row.name)))
