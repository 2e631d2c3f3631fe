"""The sovereignty report (`finops report sovereignty`): rows, JSON and table from region objects."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.sovereignty.helpers import EU


def _region_object(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 2},
        "spec": {"region": EU, "enforcementMode": "Warn", "allowedGPUProducts": ["NVIDIA-L4"]},
        "status": status,
    }


def _conditions(
    ready: str = "True", compliant: str = "True", conflict: str = "False"
) -> list[dict[str, Any]]:
    return [
        {"type": "Ready", "status": ready, "reason": "NoMatchingNodes" if ready != "True" else "Reconciled"},
        {"type": "Compliant", "status": compliant, "reason": "x"},
        {"type": "NamespaceConflict", "status": conflict, "reason": "y", "message": "ai (also bound to b)"},
    ]


def test_report_rows_json_and_table() -> None:
    import json

    from finops_operator.reports import sovereignty_report

    clean = _region_object(
        "b-clean",
        observedGeneration=2,
        lastAuditTime="2026-11-22T10:00:00Z",
        boundNamespaceCount=2,
        matchingNodes=3,
        compliantWorkloads=4,
        conditions=_conditions(),
    )
    dirty = _region_object(
        "a-dirty",
        observedGeneration=2,
        lastAuditTime="2026-11-22T10:00:00Z",
        violatingWorkloads=1,
        violationCount=1,
        violations=[
            {
                "namespace": "ai",
                "kind": "Deployment",
                "name": "llm",
                "rule": "Region",
                "since": "2026-11-22T09:00:00Z",
                "message": "asks for us-east-1",
            }
        ],
        conditions=_conditions(compliant="False"),
    )
    report = sovereignty_report([clean, dirty])
    assert [r.name for r in report.regions] == ["a-dirty", "b-clean"]
    assert not report.compliant
    assert sovereignty_report([clean]).compliant
    data = json.loads(report.to_json())
    assert data["compliant"] is False
    assert data["regions"][0]["violations"][0]["rule"] == "Region"
    assert data["regions"][1]["allowed_gpu_products"] == ["NVIDIA-L4"]
    table = report.to_table()
    assert table.splitlines()[0].split()[:3] == ["NAME", "REGION", "MODE"]
    assert "a-dirty  ai" in table and "Overall: NOT COMPLIANT" in table


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (_region_object("x"), "never audited"),
        (_region_object("x", lastAuditTime="t", conditions=_conditions(ready="False")), "not Ready"),
        (
            _region_object("x", lastAuditTime="t", conditions=_conditions(conflict="True")),
            "namespace conflict",
        ),
        (_region_object("x", lastAuditTime="t", observedGeneration=1, conditions=_conditions()), "older"),
    ],
)
def test_report_never_calls_an_unaudited_or_broken_region_compliant(
    obj: dict[str, Any], problem: str
) -> None:
    from finops_operator.reports import sovereignty_report

    report = sovereignty_report([obj])
    assert not report.compliant
    assert problem in report.regions[0].problems[0]
    assert problem.split(maxsplit=1)[0] in report.to_table()


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"spec": None, "status": "x"},
        {"status": {"conditions": "nope", "violations": [1, None, "x"]}},
        {"metadata": [], "status": {"violationCount": "NaN", "matchingNodes": True}},
    ],
)
def test_report_tolerates_malformed_objects(garbage: dict[str, Any]) -> None:
    from finops_operator.reports import sovereignty_report

    report = sovereignty_report([garbage])
    assert not report.compliant and report.regions[0].violation_count == 0
    report.to_table()
    report.to_json()
