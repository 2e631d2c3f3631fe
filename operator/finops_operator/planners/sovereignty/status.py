"""The region's status: audit counts and violations, and the Ready, Compliant and NamespaceConflict
conditions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.sovereignregion import SovereignRegionSpec, SovereignRegionStatus
from finops_operator.planners.sovereignty.audit import AuditResult
from finops_operator.planners.sovereignty.region import (
    effective_node_selector,
    region_display_name,
    selector_text,
)
from finops_operator.planners.sovereignty.text import (
    MAX_LISTED_NAMESPACES,
    MAX_NAMES_IN_MESSAGE,
    MAX_VIOLATIONS,
    cap_text,
    show,
)

AUDIT_HEARTBEAT = timedelta(minutes=5)
"""lastAuditTime alone is rewritten at most this often."""


class SovereigntyReason:
    """Condition reasons specific to SovereignRegion (NamespaceConflict reuses SelectorOverlap/NoOverlap)."""

    NO_MATCHING_NODES = "NoMatchingNodes"
    NO_VIOLATIONS = "NoViolations"
    VIOLATIONS_FOUND = "ViolationsFound"


def plan_region_status(
    spec: SovereignRegionSpec,
    *,
    generation: int,
    current_status: SovereignRegionStatus | None,
    audit_result: AuditResult,
    namespace_conflicts: Mapping[str, Sequence[str]],
    matching_nodes: int,
    now: datetime,
    region_name: str | None = None,
) -> SovereignRegionStatus:
    """The region's status: audit counts and violations, and the Ready, Compliant and
    NamespaceConflict conditions (lastTransitionTime moves only when a status flips).

    ``namespace_conflicts`` maps each namespace this region shares with other regions to every
    region binding it; ``matching_nodes`` is the number of nodes the node selector selects."""
    name = region_display_name(spec, region_name)
    status = (current_status or SovereignRegionStatus()).model_copy(deep=True)
    status.observed_generation = generation
    status.bound_namespaces = list(audit_result.bound_namespaces[:MAX_LISTED_NAMESPACES])
    status.bound_namespace_count = len(audit_result.bound_namespaces)
    status.matching_nodes = matching_nodes
    status.compliant_workloads = audit_result.compliant_workloads
    status.violating_workloads = audit_result.violating_workloads
    status.violations = list(audit_result.violations[:MAX_VIOLATIONS])
    status.violation_count = audit_result.violation_count
    status.last_audit_time = now

    selector = selector_text(effective_node_selector(spec))
    if matching_nodes == 0:
        ready = ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.FALSE,
            SovereigntyReason.NO_MATCHING_NODES,
            f"SovereignRegion {show(name)} selects no node ({selector}); "
            "workloads bound to it cannot be scheduled",
        )
    else:
        ready = ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.TRUE,
            Reason.RECONCILED,
            f"{matching_nodes} node(s) match {selector}; "
            f"{len(audit_result.bound_namespaces)} namespace(s) bound",
        )

    mode = spec.enforcement_mode.value
    if audit_result.violation_count == 0:
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.TRUE,
            SovereigntyReason.NO_VIOLATIONS,
            f"{audit_result.compliant_workloads} workload(s) compliant, 0 violating ({mode})",
        )
    else:
        rules = Counter(v.rule for v in audit_result.violations)
        by_rule = ", ".join(f"{rule}: {count}" for rule, count in sorted(rules.items()))
        listed = f" (of the {len(audit_result.violations)} listed: {by_rule})" if by_rule else ""
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.FALSE,
            SovereigntyReason.VIOLATIONS_FOUND,
            f"{audit_result.compliant_workloads} workload(s) compliant, {audit_result.violating_workloads} "
            f"violating; {audit_result.violation_count} violation(s){listed} ({mode})",
        )

    if namespace_conflicts:
        parts = []
        names = sorted(namespace_conflicts)
        for namespace in names[:MAX_NAMES_IN_MESSAGE]:
            others = sorted(r for r in namespace_conflicts[namespace] if r != name)
            parts.append(f"{show(namespace)} (also bound to {', '.join(show(o) for o in others)})")
        more = f" and {len(names) - MAX_NAMES_IN_MESSAGE} more" if len(names) > MAX_NAMES_IN_MESSAGE else ""
        conflict = ConditionUpdate(
            ConditionType.NAMESPACE_CONFLICT,
            ConditionStatus.TRUE,
            Reason.SELECTOR_OVERLAP,
            cap_text(
                f"{len(names)} namespace(s) bound to more than one SovereignRegion: "
                f"{'; '.join(parts)}{more}; no region enforces on them until the conflict is resolved"
            ),
        )
    else:
        conflict = ConditionUpdate(
            ConditionType.NAMESPACE_CONFLICT,
            ConditionStatus.FALSE,
            Reason.NO_OVERLAP,
            "no bound namespace is selected by another SovereignRegion",
        )
    status.conditions = apply_conditions(status.conditions, [ready, compliant, conflict], generation, now)
    return status


def keep_quiet(
    current: SovereignRegionStatus, desired: SovereignRegionStatus, now: datetime
) -> SovereignRegionStatus:
    """The status heartbeat: keep the previous lastAuditTime while nothing else changed and it is
    younger than AUDIT_HEARTBEAT, so a quiet cluster sees no status writes."""
    previous = current.last_audit_time
    if previous is None:
        return desired
    before, after = current.to_wire(), desired.to_wire()
    others_same = all(before.get(k) == v for k, v in after.items() if k != "lastAuditTime")
    if others_same and now - previous < AUDIT_HEARTBEAT:
        return desired.model_copy(update={"last_audit_time": previous})
    return desired
