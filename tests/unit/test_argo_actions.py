"""Custom actions in Argo CD's own test layout (actions/action_test.yaml), run with Argo CD's own Lua
evaluator, which gives actions the restricted libraries whatever argocd-cm says. Inputs are objects
captured from the real operator; expected outputs are those objects with the one change the action
makes, compared the way Argo CD's own action tests compare them (the whole object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.argocd_lua import CUSTOMIZATIONS, discovery, load, run_action

ACTION_DIRS = sorted(p.parent for p in CUSTOMIZATIONS.glob("*/*/actions/action_test.yaml"))


def without_nulls(value: Any) -> Any:
    """Lua has no null: a field set to null comes back absent, which Argo CD's diff treats as equal."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _tests(section: str) -> list[Any]:
    cases = []
    for directory in ACTION_DIRS:
        kind = directory.parent.name
        for test in load(directory / "action_test.yaml").get(section, []):
            name = f"{kind}/{test.get('action', 'discovery')}/{Path(test['inputPath']).stem}"
            cases.append(pytest.param(directory, test, id=name))
    return cases


@pytest.mark.parametrize(("directory", "test"), _tests("discoveryTests"))
def test_discovery_offers_the_actions_that_make_sense(directory: Path, test: dict[str, Any]) -> None:
    expected = {a["name"]: bool(a.get("disabled", False)) for a in test["result"]}
    assert discovery(directory, directory / test["inputPath"]) == expected


@pytest.mark.parametrize(("directory", "test"), _tests("actionTests"))
def test_action_patches_the_object_as_expected(directory: Path, test: dict[str, Any]) -> None:
    source = load(directory / test["inputPath"])
    impacted = run_action(directory, test["action"], directory / test["inputPath"])
    assert [i["operation"] for i in impacted] == ["patch"]
    result = impacted[0]["resource"]
    assert (result["kind"], result["metadata"]["name"]) == (source["kind"], source["metadata"]["name"])
    assert without_nulls(result) == without_nulls(load(directory / test["expectedOutputPath"]))


def test_the_actions_are_tested() -> None:
    assert {d.parent.name for d in ACTION_DIRS} == {"EdgeFleet", "Deployment"}
