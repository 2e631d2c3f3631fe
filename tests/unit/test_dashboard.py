"""The Grafana dashboard: the committed JSON is what the generator writes, the chart ships the same,
and docs/OBSERVABILITY.md says what each panel answers. (Its queries run against a real Prometheus in
tests/integration/test_observability.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helm import render_objects
from tests.kube import REPO

GENERATOR = REPO / "deploy" / "grafana" / "dashboard.py"
DASHBOARD = REPO / "deploy" / "grafana" / "finops-operator.json"


def test_committed_dashboard_is_what_the_generator_writes() -> None:
    proc = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_chart_configmap_carries_the_dashboard_for_the_sidecar() -> None:
    objects = render_objects(
        {"dashboard.enabled": True, "dashboard.annotations": {"grafana_folder": "FinOps"}}
    )
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "FinOps"}
    assert json.loads(configmap["data"]["finops-operator.json"]) == json.loads(DASHBOARD.read_text())
    assert not [o for o in render_objects() if o["kind"] == "ConfigMap"]


def test_docs_say_what_every_panel_answers() -> None:
    docs = (REPO / "docs" / "OBSERVABILITY.md").read_text()
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    missing = [p["title"] for p in panels if f"| {p['title']} |" not in docs]
    assert not missing, f"docs/OBSERVABILITY.md has no row for panels {missing}"
    for panel in panels:
        assert panel["description"], panel["title"]
