"""Label selector semantics, exactly as Kubernetes' metav1.LabelSelector defines them."""

from __future__ import annotations

from collections.abc import Mapping

from finops_operator.api.common import LabelSelector, LabelSelectorRequirement


def requirement_matches(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "In":
        return present and labels[requirement.key] in requirement.values
    if requirement.operator == "NotIn":
        return not present or labels[requirement.key] not in requirement.values
    if requirement.operator == "Exists":
        return present
    return not present  # DoesNotExist


def selector_matches(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """True when every matchLabels pair and every matchExpressions requirement holds.

    An empty selector matches everything, as in Kubernetes.
    """
    labels = labels or {}
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(requirement_matches(requirement, labels) for requirement in selector.match_expressions)
