"""What admission answers for the findings of one request."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.api.common import EnforcementMode
from finops_operator.planners.sovereignty import (
    Finding,
    admission_decision,
)

FINDINGS = [
    Finding("ai", "Deployment", "llm", "Region", "first", "r"),
    Finding("ai", "Deployment", "llm", "GPUProduct", "second", "g"),
]


@pytest.mark.parametrize(
    ("mode", "findings", "expected"),
    [
        (EnforcementMode.ENFORCE, [], (True, (), "", ())),
        (EnforcementMode.WARN, [], (True, (), "", ())),
        (EnforcementMode.DRY_RUN, [], (True, (), "", ())),
        (EnforcementMode.ENFORCE, FINDINGS, (False, (), "first; second", ())),
        (EnforcementMode.WARN, FINDINGS, (True, ("first", "second"), "", ())),
        (EnforcementMode.DRY_RUN, FINDINGS, (True, (), "", tuple(FINDINGS))),
    ],
    ids=["enforce-clean", "warn-clean", "dryrun-clean", "enforce-rejects", "warn-admits", "dryrun-reports"],
)
def test_admission_decision(
    mode: EnforcementMode, findings: list[Finding], expected: tuple[Any, ...]
) -> None:
    decision = admission_decision(mode, findings)
    assert (decision.allowed, decision.warnings, decision.message, decision.dry_run_report) == expected


def test_admission_output_stays_bounded() -> None:
    many = [Finding("ai", "Pod", "p", "Region", "m" * 5000, "x") for _ in range(200)]
    warned = admission_decision(EnforcementMode.WARN, many)
    assert len(warned.warnings) == 17 and warned.warnings[-1].startswith("... and 184 more")
    assert all(len(w) <= 1024 for w in warned.warnings)
    assert len(admission_decision(EnforcementMode.ENFORCE, many).message) <= 4096
