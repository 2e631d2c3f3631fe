"""crds/ is generated from the models and must never drift from them."""

from __future__ import annotations

from pathlib import Path

import yaml

from finops_operator.crdgen import KINDS, build_crd, stale_crds
from tests.kube import REPO


def test_crds_directory_matches_the_models() -> None:
    assert stale_crds(REPO / "crds") == [], "crds/ is stale: run `finops crds` (make crds)"


def test_stale_crds_detects_a_hand_edit(tmp_path: Path) -> None:
    from finops_operator.crdgen import write_crds

    written = write_crds(tmp_path)
    written[0].write_text(written[0].read_text().replace("dailyGPUHours", "dailyGpuHours"))
    assert stale_crds(tmp_path) == [written[0].name]


def _walk(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_schemas_are_structural() -> None:
    for kind in KINDS:
        schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for node in _walk(schema):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node and "const" not in node
            assert node.get("additionalProperties") not in (True, False)
            if "properties" in node:
                assert node["type"] == "object"


def test_spec_cross_field_rules_are_cel_validations() -> None:
    crd = yaml.safe_load((REPO / "crds" / "finops.dev_finopspolicies.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [v["rule"] for v in spec["properties"]["autoScale"]["x-kubernetes-validations"]]
    assert rules == ["self.minReplicas <= self.maxReplicas"]
    assert (
        spec["properties"]["optimizationRules"]["properties"]["idleGPUUtilizationPercent"]["maximum"] == 100
    )
    assert spec["properties"]["enforcementMode"]["default"] == "Enforce"


def test_status_conditions_are_a_map_keyed_by_type() -> None:
    for kind in KINDS:
        status = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        conditions = status["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
