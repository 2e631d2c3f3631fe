"""Health checks in Argo CD's own test layout (health_test.yaml beside health.lua), run with Argo CD's
own Lua evaluator and its restricted libraries, on objects captured from the real operator
(tests/integration/test_argocd_health_live.py writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.argocd_lua import ARGOCD_CM, KINDS, argocd_cm, health, kind_dir, load


def _cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        for test in load(kind_dir(kind) / "health_test.yaml")["tests"]:
            cases.append(pytest.param(kind, test, id=f"{kind}/{Path(test['inputPath']).stem}"))
    return cases


@pytest.mark.parametrize(("kind", "test"), _cases())
def test_health_of_a_captured_object(kind: str, test: dict[str, Any]) -> None:
    assert health(kind, kind_dir(kind) / test["inputPath"]) == test["healthStatus"]


def test_every_captured_object_has_a_health_test() -> None:
    for kind in KINDS:
        tested = {t["inputPath"] for t in load(kind_dir(kind) / "health_test.yaml")["tests"]}
        captured = {f"testdata/{p.name}" for p in (kind_dir(kind) / "testdata").glob("*.yaml")}
        assert captured == tested, kind


def test_argocd_cm_snippet_is_rendered_from_the_scripts() -> None:
    assert ARGOCD_CM.read_text() == argocd_cm(), "run: .venv/bin/python -m tests.argocd_lua"
