"""Hostile specs through the real API server with the real operator running: the schema and CEL
rules refuse what they can; every object they accept reaches Ready=True or Ready=False with a reason
and a message; the operator never crashes. Fewer examples than the planner property tests
(tests/unit/test_hostile_planners.py): each one is a round trip through the cluster."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_specs import FLEET_SPEC, POLICY_SPEC, REGION_SPEC
from tests.kube import Kube, eventually
from tests.operator_process import OperatorProcess, running_operator

NAMESPACE = "hostile"
FEW = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: a cluster round trip is too slow to explore
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KINDS = {
    "FinOpsPolicy": ("finopspolicies.finops.dev", POLICY_SPEC),
    "EdgeFleet": ("edgefleets.finops.dev", FLEET_SPEC),
    # A region binds namespaces by label: confine every generated one to a label no namespace has, so
    # an Enforce region cannot reach into the rest of the cluster (the other fields stay hostile).
    "SovereignRegion": (
        "sovereignregions.finops.dev",
        REGION_SPEC.map(
            lambda s: {**s, "namespaceSelector": {"matchLabels": {"finops.dev/hostile": "none"}}}
        ),
    ),
}
_names = itertools.count()


@pytest.fixture(scope="module")
def operator(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kube.kubectl("create", "namespace", NAMESPACE)
    log_dir: Path = tmp_path_factory.mktemp("hostile-operator")
    try:
        with running_operator(kube, log_dir, "--sample-interval", "5") as process:
            # EdgeFleets are acted on only once the author check is in force (docs/SECURITY.md).
            eventually(
                lambda: kube.kubectl(
                    "get", "validatingadmissionpolicybinding", "finops.dev-edgefleet-author", check=False
                ),
                timeout=60,
                what="the EdgeFleet author check",
            )
            yield process
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def _reported(kube: Kube, resource: str, name: str) -> dict[str, Any] | None:
    scope = () if resource.startswith("sovereignregions") else ("-n", NAMESPACE)
    body = kube.get_json(resource, name, *scope)
    conditions = (body.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") not in ("True", "False") or not ready.get("reason"):
        return None
    if ready["status"] == "False" and not ready.get("message"):
        return None
    return dict(ready)


def _round_trip(kube: Kube, kind: str, spec: dict[str, Any]) -> str:
    resource, _ = KINDS[kind]
    name = f"hostile-{next(_names)}"
    metadata: dict[str, Any] = {"name": name}
    if kind != "SovereignRegion":
        metadata["namespace"] = NAMESPACE
    body = {"apiVersion": "finops.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
    try:
        kube.kubectl("create", "-f", "-", stdin=json.dumps(body))
    except AssertionError:
        return "refused"  # the schema or a CEL rule said no, with its own message
    try:
        ready = eventually(
            lambda: _reported(kube, resource, name),
            timeout=60,
            what=f"Ready on {kind} {json.dumps(spec)[:400]}",
        )
    finally:
        scope = () if kind == "SovereignRegion" else ("-n", NAMESPACE)
        kube.kubectl("delete", resource, name, *scope, "--wait=false")
    return f"Ready={ready['status']} ({ready['reason']})"


@pytest.mark.parametrize("kind", list(KINDS))
def test_hostile_specs_are_refused_or_reported(kube: Kube, operator: OperatorProcess, kind: str) -> None:
    outcomes: list[str] = []

    @FEW
    @given(st.data())
    def one(data: st.DataObject) -> None:
        outcomes.append(_round_trip(kube, kind, data.draw(KINDS[kind][1])))

    one()
    log = operator.log()
    assert operator.process.poll() is None, "the operator exited"
    assert "Traceback" not in log, log[-4000:]
    print(f"{kind}: {sorted((o, outcomes.count(o)) for o in set(outcomes))}")
