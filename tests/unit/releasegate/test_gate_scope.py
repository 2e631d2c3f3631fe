"""Which namespaces the release-gate webhooks are registered for: those some gate's
namespaceSelector selects, and no other."""

from __future__ import annotations

import pytest

from finops_operator.planners.releasegate import gated_namespaces
from tests.unit.releasegate.helpers import spec

NAMESPACES = {"serving": {"tier": "prod"}, "staging": {"tier": "staging"}, "plain": {}}


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        pytest.param([], frozenset(), id="no-gate"),
        pytest.param([{"matchLabels": {"tier": "prod"}}], frozenset({"serving"}), id="one-gate"),
        pytest.param(
            [{"matchLabels": {"tier": "prod"}}, {"matchLabels": {"tier": "staging"}}],
            frozenset({"serving", "staging"}),
            id="union-of-gates",
        ),
        pytest.param([{"matchLabels": {"tier": "test"}}], frozenset(), id="selects-nothing"),
    ],
)
def test_gated_namespaces(selectors: list[dict[str, object]], expected: frozenset[str]) -> None:
    specs = [spec(namespaceSelector=selector) for selector in selectors]
    assert gated_namespaces(specs, NAMESPACES) == expected
