"""GPU telemetry end to end, without a GPU: simulated DCGM exporter -> real Prometheus scrape -> the
operator's own PromQL client. Only the GPU is fake; the HTTP scrape, TSDB, staleness handling, PromQL
evaluation and promtool-backfilled history are the real thing. No Kubernetes needed.
"""

from __future__ import annotations

import math
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finops_operator.settings import Settings
from finops_operator.telemetry.prometheus import PrometheusError, query, query_range
from tests.dcgm_exporter import DcgmExporter
from tests.kube import eventually
from tests.prometheus_harness import (
    HistorySeries,
    MakePrometheus,
    PrometheusBinaries,
    PrometheusServer,
    openmetrics_text,
    seed_history,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]

DAY = 86400
STEP = 300


def gpu_query(namespace: str) -> str:
    """The operator's default query, substituted the way the FinOpsPolicy handler does it."""
    default = Settings.model_fields["gpu_utilization_query"].default
    assert isinstance(default, str)
    return default.replace("$namespace", namespace)


def utilisation_by_pod(url: str, namespace: str) -> dict[str, float]:
    return {s.labels["pod"]: s.value for s in query(url, gpu_query(namespace))}


def daily_demand(ts: float) -> float:
    """Requests/s with a daily cycle: trough 10 at midnight UTC, peak 90 at noon."""
    return 50 - 40 * math.cos(2 * math.pi * (ts % DAY) / DAY)


def test_exporter_serves_dcgm_series_without_a_gpu(dcgm_exporter: DcgmExporter) -> None:
    """The exposition must look like dcgm-exporter's, or these tests prove nothing about real clusters."""
    dcgm_exporter.set_utilization("team-a", "trainer-0", 37, container="cuda")
    body = dcgm_exporter.render()
    line = next(x for x in body.splitlines() if x.startswith("DCGM_FI_DEV_GPU_UTIL{"))
    for label in ('gpu="0"', 'UUID="GPU-', 'device="nvidia0"', 'modelName="NVIDIA A100-SXM4-80GB"'):
        assert label in line
    assert 'namespace="team-a",pod="trainer-0",container="cuda"} 37.0' in line
    assert "# TYPE DCGM_FI_DEV_GPU_UTIL gauge" in body


def test_gpu_utilisation_goes_through_a_real_scrape(
    dcgm_exporter: DcgmExporter, make_prometheus: MakePrometheus
) -> None:
    """What the operator reads for idle shutdown is what the exporter exposed, averaged per pod and
    confined to the policy's namespace; a change shows up within a couple of scrapes."""
    dcgm_exporter.set_utilization("team-a", "trainer-0", 37)
    dcgm_exporter.set_utilization("team-a", "trainer-1", [20, 60])  # two GPUs: the query averages
    dcgm_exporter.set_utilization("team-b", "other-0", 90)
    exporter_with_idle = DcgmExporter(hostname="gpu-node-1", unassigned_gpus=2)  # GPUs no pod holds
    with exporter_with_idle:
        prometheus = make_prometheus(exporters=[dcgm_exporter, exporter_with_idle])

        samples = query(prometheus.url, gpu_query("team-a"))
        assert sorted((sorted(s.labels.items()), s.value) for s in samples) == [
            ([("namespace", "team-a"), ("pod", "trainer-0")], 37.0),
            ([("namespace", "team-a"), ("pod", "trainer-1")], 40.0),
        ]
        assert utilisation_by_pod(prometheus.url, "team-b") == {"other-0": 90.0}
        assert utilisation_by_pod(prometheus.url, "nobody-here") == {}

        dcgm_exporter.set_utilization("team-a", "trainer-0", 3)
        eventually(
            lambda: utilisation_by_pod(prometheus.url, "team-a") == {"trainer-0": 3.0, "trainer-1": 40.0},
            timeout=20,
            what="the new utilisation to be scraped",
        )
        # Deterministic variant for other tests: wait for one scrape that started after the change.
        dcgm_exporter.set_utilization("team-a", "trainer-1", [0, 0])
        prometheus.wait_for_scrape()
        assert utilisation_by_pod(prometheus.url, "team-a") == {"trainer-0": 3.0, "trainer-1": 0.0}


def test_removed_pod_goes_stale_and_leaves_the_query(
    dcgm_exporter: DcgmExporter, gpu_prometheus: PrometheusServer
) -> None:
    """A deleted pod must vanish at once (staleness marker), not linger for the 5-minute lookback, or
    the operator would keep judging a pod that no longer exists."""
    dcgm_exporter.set_utilization("team-a", "trainer-0", 50)
    dcgm_exporter.set_utilization("team-a", "trainer-1", 60)
    url = gpu_prometheus.url
    eventually(lambda: len(utilisation_by_pod(url, "team-a")) == 2, timeout=20, what="both pods")

    dcgm_exporter.remove_pod("team-a", "trainer-0")
    eventually(
        lambda: utilisation_by_pod(gpu_prometheus.url, "team-a") == {"trainer-1": 60.0},
        timeout=20,  # far below the 300 s lookback: only the staleness marker can make this pass
        what="trainer-0 to go stale",
    )
    raw = gpu_prometheus.query('DCGM_FI_DEV_GPU_UTIL{pod="trainer-0"}')
    assert raw == []


def test_seeded_history_is_returned_by_query_range(
    dcgm_exporter: DcgmExporter, make_prometheus: MakePrometheus
) -> None:
    """Predictive scaling needs days of demand; backfilled blocks must serve range queries with the
    daily shape intact, next to a live head that is still being scraped."""
    now = time.time()
    end = int(now // STEP) * STEP - STEP  # last seeded point strictly before the head starts
    start = end - 3 * DAY
    points = [(float(t), daily_demand(t)) for t in range(start, end + 1, STEP)]
    labels = {"namespace": "team-a", "deployment": "llm"}
    history = [
        HistorySeries("inference_requests_per_second", labels, points),
        HistorySeries("inference_requests_per_second", {**labels, "deployment": "embedder"}, points[-10:]),
    ]
    dcgm_exporter.set_utilization("team-a", "llm-0", 42)
    prometheus = make_prometheus(history=history, exporters=[dcgm_exporter])
    assert len(prometheus.seeded_blocks) >= 3 * 24 // 2  # promtool cuts 2-hour blocks

    series = query_range(
        prometheus.url,
        'inference_requests_per_second{namespace="team-a",deployment="llm"}',
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        step_seconds=STEP,
    )
    assert len(series) == 1
    series_labels, values = series[0]
    assert series_labels == {"__name__": "inference_requests_per_second", **labels}
    assert len(values) == 3 * DAY // STEP + 1
    assert [t for t, _ in values] == [t for t, _ in points]
    assert [v for _, v in values] == pytest.approx([v for _, v in points])
    by_time_of_day = {t % DAY: v for t, v in values}  # later days overwrite earlier: same daily cycle
    assert by_time_of_day[0] == pytest.approx(10) and by_time_of_day[DAY / 2] == pytest.approx(90)

    # Coarser steps (what a forecaster would fetch) sample the same blocks.
    hourly = query_range(
        prometheus.url,
        "sum(inference_requests_per_second)",
        start=datetime.fromtimestamp(end - DAY, UTC),
        end=datetime.fromtimestamp(end, UTC),
        step_seconds=3600,
    )
    assert [len(v) for _, v in hourly] == [25]
    assert hourly[0][1][-1][1] == pytest.approx(2 * daily_demand(end))
    # The live head works alongside the backfilled blocks.
    assert utilisation_by_pod(prometheus.url, "team-a") == {"llm-0": 42.0}


def test_history_that_promtool_would_mangle_is_refused(
    prometheus_binary: PrometheusBinaries, tmp_path: Path
) -> None:
    """promtool silently drops out-of-order samples and accepts millisecond timestamps as far-future
    blocks; the harness must refuse both rather than seed something other than what the test meant."""
    now = time.time()
    with pytest.raises(ValueError, match="strictly increasing"):
        openmetrics_text([HistorySeries("m", {}, [(now - 60, 1), (now - 120, 2)])])
    with pytest.raises(ValueError, match="not milliseconds"):
        openmetrics_text([HistorySeries("m", {}, [(now * 1000 - 60_000, 1)])])
    # What it does render (families grouped, escaped labels, NaN, # EOF) promtool accepts.
    awkward = [
        HistorySeries("b", {"x": 'q"\\'}, [(now - 7200, 1), (now - 1, 2)]),
        HistorySeries("a", {}, [(now - 1, math.nan)]),
        HistorySeries("b", {"x": "y"}, [(now - 1, 3)]),
    ]
    text = openmetrics_text(awkward)
    assert text.count("# TYPE b gauge") == 1 and text.endswith("# EOF\n")
    assert 'b{x="q\\"\\\\"}' in text
    assert seed_history(prometheus_binary.promtool, awkward, tmp_path / "data")


def test_unreachable_prometheus_raises_a_readable_error() -> None:
    """The operator turns this into a status condition, so it must say what was unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(PrometheusError, match=rf"Prometheus at {url} unreachable: .*refused"):
            query(url, gpu_query("team-a"), timeout=5)


def test_bad_query_raises_prometheus_own_error(make_prometheus: MakePrometheus) -> None:
    """A typo in a policy's PromQL must surface Prometheus's own parse error, not claim it is down."""
    prometheus = make_prometheus()
    with pytest.raises(PrometheusError, match=r"refused the query: .*parse error"):
        query(prometheus.url, "avg by (pod (DCGM_FI_DEV_GPU_UTIL")
    with pytest.raises(PrometheusError, match=r"refused the query: .*parse error"):
        query_range(
            prometheus.url,
            "rate(",
            start=datetime.fromtimestamp(time.time() - 600, UTC),
            end=datetime.now(UTC),
            step_seconds=60,
        )


def test_bad_query_raises_prometheus_error(make_prometheus: MakePrometheus) -> None:
    """Whatever the wording, a refused or mistyped query is a PrometheusError the handler can report,
    never an unhandled exception from urllib or json."""
    prometheus = make_prometheus()
    with pytest.raises(PrometheusError, match=re.escape(prometheus.url)):
        query(prometheus.url, "avg by (pod (DCGM_FI_DEV_GPU_UTIL")
    with pytest.raises(
        PrometheusError, match="expected an instant vector from 'DCGM_FI_DEV_GPU_UTIL\\[5m\\]'"
    ):
        query(prometheus.url, "DCGM_FI_DEV_GPU_UTIL[5m]")
