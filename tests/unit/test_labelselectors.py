from __future__ import annotations

import pytest

from finops_operator.api.common import LabelSelector
from finops_operator.planners.labelselectors import selector_matches

LABELS = {"app": "llm", "env": "prod", "tier": "gpu"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, LABELS, True),
        ({}, {}, True),
        ({"matchLabels": {"app": "llm"}}, LABELS, True),
        ({"matchLabels": {"app": "llm", "env": "dev"}}, LABELS, False),
        ({"matchLabels": {"missing": "x"}}, LABELS, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]}, LABELS, True),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}, LABELS, False),
        ({"matchExpressions": [{"key": "nope", "operator": "In", "values": ["x"]}]}, LABELS, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, LABELS, True),
        ({"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["x"]}]}, LABELS, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, LABELS, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, LABELS, False),
        ({"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}, LABELS, True),
        (
            {
                "matchLabels": {"app": "llm"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}],
            },
            LABELS,
            False,
        ),
        ({"matchLabels": {"app": "llm"}}, None, False),
    ],
    ids=lambda value: str(value)[:40] if not isinstance(value, bool) else str(value),
)
def test_selector_semantics_match_kubernetes(
    selector: dict[str, object], labels: dict[str, str] | None, expected: bool
) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), labels) is expected
