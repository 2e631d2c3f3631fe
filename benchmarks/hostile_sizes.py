"""Pathological but schema-valid specs: how much slower each planner gets at the largest selector and
template the CRD schemas admit (64 matchLabels, 32 matchExpressions of 64 values, a template 64
levels deep) than on an ordinary spec, measured in the same run. The schemas bound every size
(tests/unit/test_hostile_planners.py checks that), so this reports a ratio, never asserts one.

    python benchmarks/hostile_sizes.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from finops_operator.api.common import MAX_LABELS  # noqa: E402
from finops_operator.api.edgefleet import MAX_TEMPLATE_DEPTH, EdgeFleetSpec, EdgeFleetStatus  # noqa: E402
from finops_operator.api.finopspolicy import FinOpsPolicyStatus  # noqa: E402
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionStatus  # noqa: E402
from finops_operator.planners.fleet import FleetObservation, SiteNode, plan_fleet  # noqa: E402
from finops_operator.planners.fleet.author import AuthorCheckObject, stale_author_check  # noqa: E402
from finops_operator.planners.policy import (  # noqa: E402
    PolicyObservation,
    WorkloadFacts,
    parse_policy_spec,
    plan_policy,
)
from finops_operator.planners.sovereignty import (  # noqa: E402
    ClusterNode,
    Inventory,
    SovereigntyObservation,
    plan_sovereignty,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SMALL_SELECTOR: dict[str, Any] = {"matchLabels": {"app": "llm"}}
HUGE_LABELS = {f"k{i}": "v" * 63 for i in range(MAX_LABELS)}
HUGE_SELECTOR: dict[str, Any] = {
    "matchLabels": HUGE_LABELS,
    "matchExpressions": [
        {"key": f"e{i}", "operator": "NotIn", "values": [f"{j}" * 3 for j in range(64)]} for i in range(32)
    ],
}

LABELS = {"app": "llm", **HUGE_LABELS}
"""Every object carries the labels both selectors ask for, so both select everything: only the
spec's size differs between the two measurements."""


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def _time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _policy(selector: dict[str, Any]) -> Callable[[], object]:
    deployments = [WorkloadFacts("ns", f"d{i}", LABELS, replicas=1, gpus_per_pod=1) for i in range(50)]
    observed = PolicyObservation(
        name="p", generation=1, current_status=FinOpsPolicyStatus(), workloads=deployments
    )
    spec = {"targetWorkloadSelector": selector, "costLimits": {"dailyGPUHours": 10}}
    return lambda: plan_policy(parse_policy_spec(spec), observed, NOW)


def _region(selector: dict[str, Any]) -> Callable[[], object]:
    nodes = {f"n{i}": ClusterNode(f"n{i}", {REGION_LABEL: "eu-west-1", **LABELS}) for i in range(50)}
    observed = SovereigntyObservation(
        name="r",
        uid="u",
        generation=1,
        current_status=SovereignRegionStatus(),
        nodes=nodes,
        inventory=Inventory({f"ns{i}": LABELS for i in range(50)}),
    )
    spec = {"region": "eu-west-1", "namespaceSelector": selector, "nodeSelector": selector}
    return lambda: plan_sovereignty(spec, observed, NOW)


def _fleet(selector: dict[str, Any], depth: int) -> Callable[[], object]:
    check = {
        str(m["kind"]): AuthorCheckObject(
            m["metadata"]["annotations"]["finops.dev/spec-hash"], NOW - timedelta(days=1)
        )
        for m in stale_author_check({})
    }
    nodes = tuple(SiteNode(f"n{i}", {"finops.dev/site": f"s{i}", **LABELS}, True, NOW) for i in range(50))
    raw = {
        "nodeSelector": selector,
        "modelVersion": "v1",
        "template": {
            "metadata": {"annotations": _deep(depth - 3)},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    }
    spec = EdgeFleetSpec.model_validate(raw)
    observed = FleetObservation(
        namespace="ns",
        name="f",
        uid="u",
        generation=1,
        current_status=EdgeFleetStatus(),
        nodes=nodes,
        author_check=check,
        spec_written=NOW,
    )
    return lambda: plan_fleet(spec, observed, NOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    cases = [
        ("FinOpsPolicy", _policy(SMALL_SELECTOR), _policy(HUGE_SELECTOR)),
        ("SovereignRegion", _region(SMALL_SELECTOR), _region(HUGE_SELECTOR)),
        ("EdgeFleet", _fleet(SMALL_SELECTOR, 4), _fleet(HUGE_SELECTOR, MAX_TEMPLATE_DEPTH)),
    ]
    print(f"{'kind':<16} {'ordinary ms':>12} {'largest admitted ms':>20} {'ratio':>7}")
    for kind, small, huge in cases:
        base, worst = _time(small, args.repeat), _time(huge, args.repeat)
        print(f"{kind:<16} {base * 1000:>12.2f} {worst * 1000:>20.2f} {worst / base:>7.1f}")


if __name__ == "__main__":
    main()
