"""The alert rules (deploy/prometheus/finops-operator.rules.yaml), checked and unit-tested by the real
promtool, and the shape every alert must have: severity, recipient_group, for, a runbook in docs/.

promtool comes with Debian's `prometheus` package (.ci/run installs it); without it these tests fail,
they never skip: CI must not go green without having run the alert tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import CHART, render_objects
from tests.kube import REPO

RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "finops-operator.rules.yaml"
RULE_TESTS = RULES_DIR / "finops-operator.rules.test.yaml"
DOCS = REPO / "docs" / "OBSERVABILITY.md"
RUNBOOK_BASE = "https://github.com/finops-dev/finops-operator/blob/v0.1.0/docs/OBSERVABILITY.md"


def promtool(*args: str, cwd: Path = RULES_DIR) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool not on PATH: install Debian's `prometheus` package (apt-get install prometheus)"
        )
    proc = subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_rules_are_valid() -> None:
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", RULES.name)


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name)


def test_every_alert_has_a_promtool_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alerts()} - tested == set()


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_routable_and_has_a_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("warning", "critical")
    # Policy alerts take recipient_group from the policy's route (with a fallback) in the expression.
    assert rule["labels"].get("recipient_group") or '"recipient_group", "platform"' in rule["expr"]
    assert re.fullmatch(r"\d+[mh]", rule["for"])
    anchor = rule["alert"].lower()
    assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#{anchor}"
    headings = {
        line.lstrip("#").strip().lower() for line in DOCS.read_text().splitlines() if line.startswith("###")
    }
    assert anchor in headings, f"docs/OBSERVABILITY.md has no '### {rule['alert']}' runbook"


def test_chart_carries_the_same_rules(tmp_path: Path) -> None:
    """The chart's copy is the source file, and what it renders (with another recipient group and
    release name) is still a valid rule file with the same alerts."""
    assert (CHART / "files" / "prometheus" / RULES.name).read_text() == RULES.read_text(), (
        f"cp {RULES.relative_to(REPO)} {CHART.relative_to(REPO)}/files/prometheus/"
    )
    objects = render_objects(
        {"metrics.prometheusRule.enabled": True, "metrics.prometheusRule.recipientGroup": "sre"},
        release="finops",
    )
    (rule_object,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    rendered = tmp_path / "rendered.rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": rule_object["spec"]["groups"]}))
    promtool("check", "rules", str(rendered))
    rules = [r for g in rule_object["spec"]["groups"] for r in g["rules"]]
    assert [r["alert"] for r in rules] == [r["alert"] for r in alerts()]
    assert {r["labels"]["recipient_group"] for r in rules if "recipient_group" in r["labels"]} == {"sre"}
    assert all('"recipient_group", "platform"' not in r["expr"] for r in rules)
    assert sum('"recipient_group", "sre"' in r["expr"] for r in rules) == 5
    absent = next(r for r in rules if r["alert"] == "FinOpsOperatorAbsent")
    assert 'up{job="finops-finops-operator"}' in absent["expr"]
