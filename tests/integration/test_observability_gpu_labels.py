"""The GPU-utilisation query in both label layouts Prometheus produces for dcgm-exporter: pod labels
kept (`namespace`, `pod`), and behind a ServiceMonitor with honorLabels: false, where they arrive as
`exported_namespace`/`exported_pod` and `namespace`/`pod` name the exporter's own pod. A query for one
layout finds nothing in the other without any error, so the default must work in both.

Only the GPU is simulated (tests/dcgm_exporter.py); the scrapes, relabelling, PromQL and the operator
are real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from finops_operator.settings import Settings, load_settings
from finops_operator.telemetry.prometheus import query
from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import condition, deployment, policy
from tests.kube import Kube, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import PrometheusBinaries, PrometheusServer
from tests.required_tools import prometheus_binaries

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(240)]

EXPORTER_POD = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p"}
LAYOUTS = {"pod labels kept": False, "honorLabels false": True}


@dataclass
class ScrapedLike(PrometheusServer):
    """The harness's server, its targets scraped with the exporter pod's target labels (as a
    ServiceMonitor does) when ``service_monitor_labels`` is set; honor_labels stays false."""

    service_monitor_labels: bool = False

    def config(self) -> str:
        config = json.loads(super().config())
        if self.service_monitor_labels:
            for scrape in config["scrape_configs"]:
                scrape["honor_labels"] = False
                scrape["static_configs"][0]["labels"] = EXPORTER_POD
        return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def binaries() -> PrometheusBinaries:
    return prometheus_binaries()


@pytest.fixture(params=LAYOUTS.values(), ids=LAYOUTS.keys())
def layout(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def exporter() -> Iterator[DcgmExporter]:
    with DcgmExporter(unassigned_gpus=2) as running:  # GPUs no pod holds carry no pod labels
        yield running


def start(
    binaries: PrometheusBinaries, workdir: Path, exporter: DcgmExporter, relabel: bool
) -> PrometheusServer:
    return ScrapedLike(binaries, workdir, targets=[exporter.target], service_monitor_labels=relabel).start()


def default_query(namespace: str) -> str:
    default = Settings.model_fields["gpu_utilization_query"].default
    assert isinstance(default, str)
    return default.replace("$namespace", namespace)


def test_default_query_finds_pods_in_both_layouts(
    binaries: PrometheusBinaries, tmp_path: Path, exporter: DcgmExporter, layout: bool
) -> None:
    exporter.set_utilization("team-a", "trainer-0", 37)
    exporter.set_utilization("team-a", "trainer-1", [20, 60])
    exporter.set_utilization("team-b", "other-0", 90)
    prometheus = start(binaries, tmp_path, exporter, layout)
    try:
        raw = prometheus.query("DCGM_FI_DEV_GPU_UTIL")
        assert any(("exported_namespace" in labels) == layout for labels, _ in raw)
        samples = query(prometheus.url, default_query("team-a"))
        assert sorted((s.labels["pod"], s.labels["namespace"], s.value) for s in samples) == [
            ("trainer-0", "team-a", 37.0),
            ("trainer-1", "team-a", 40.0),
        ]
        assert all(set(s.labels) == {"namespace", "pod"} for s in samples)
        # GPUs no pod holds carry no pod labels of their own; behind a ServiceMonitor they show up under
        # the exporter's pod, a name no governed Deployment owns (the operator looks pods up by name).
        exporter_namespace = {s.labels["pod"] for s in query(prometheus.url, default_query("gpu-operator"))}
        assert exporter_namespace == ({EXPORTER_POD["pod"]} if layout else set())
        assert {s.labels["pod"] for s in query(prometheus.url, default_query("team-b"))} == {"other-0"}
    finally:
        prometheus.stop()


def test_label_names_are_configurable_through_the_query(
    binaries: PrometheusBinaries, tmp_path: Path, exporter: DcgmExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FINOPS_GPU_UTILIZATION_QUERY (chart: prometheus.gpuUtilizationQuery) takes any label names, as
    long as the result carries `pod`; docs/OBSERVABILITY.md shows the honorLabels: false form."""
    exporter.set_utilization("team-a", "trainer-0", 12)
    prometheus = start(binaries, tmp_path, exporter, True)
    try:
        custom = (
            'label_replace(avg by (exported_pod) (DCGM_FI_DEV_GPU_UTIL{exported_namespace="$namespace"}), '
            '"pod", "$1", "exported_pod", "(.+)")'
        )
        monkeypatch.setenv("FINOPS_GPU_UTILIZATION_QUERY", custom)
        settings = load_settings()
        samples = query(prometheus.url, settings.gpu_utilization_query.replace("$namespace", "team-a"))
        assert [(s.labels["pod"], s.value) for s in samples] == [("trainer-0", 12.0)]
    finally:
        prometheus.stop()


def test_operator_finds_idle_pods_behind_a_service_monitor(
    kube: Kube, binaries: PrometheusBinaries, tmp_path: Path, exporter: DcgmExporter
) -> None:
    """The real operator, default settings, Prometheus in the honorLabels: false layout: the idle pod
    is found (before, the default query saw no pods there and reported metrics missing)."""
    namespace = "gpu-labels"
    kube.kubectl("create", "namespace", namespace)
    try:
        kube.kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(
                [
                    deployment(namespace, "sleepy", 1, gpus=1),
                    policy(
                        namespace,
                        "idle-rules",
                        optimizationRules={
                            "idleShutdownThresholdMinutes": 60,
                            "idleGPUUtilizationPercent": 5,
                        },
                    ),
                ]
            ),
        )
        pods = eventually(
            lambda: [p["metadata"]["name"] for p in kube.get_json("pods", "-n", namespace)["items"]],
            timeout=60,
            what="the sleepy pod",
        )
        for pod in pods:
            exporter.set_utilization(namespace, pod, 1)
        prometheus = start(binaries, tmp_path / "prometheus", exporter, True)
        try:
            with running_operator(
                kube, tmp_path, "--sample-interval", "2", "--prometheus-url", prometheus.url
            ):
                idle = eventually(
                    lambda: (
                        (c := condition(kube, namespace, "idle-rules", "Idle"))
                        and c["status"] == "True"
                        and c
                    ),
                    timeout=60,
                    what="Idle condition",
                )
                assert "sleepy" in idle["message"]
                metrics = condition(kube, namespace, "idle-rules", "MetricsAvailable")
                assert metrics is None or metrics["status"] == "True", metrics
        finally:
            prometheus.stop()
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false")
