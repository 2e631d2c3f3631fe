"""The Grafana dashboard's queries against a real Prometheus scraping the real operator on the real
control plane: every template-variable query and every panel query returns data, in both label
layouts (pod labels kept, and `exported_*` as behind a ServiceMonitor with honorLabels: false).

Only the GPU is simulated: DCGM_FI_DEV_GPU_UTIL comes from tests/dcgm_exporter.py. The operator
books GPU-hours of kwok-run pods, exhausts a budget and scales a Deployment to zero, finds an idle
workload through Prometheus, audits a SovereignRegion with a violator, rolls an EdgeFleet out on two
kwok edge sites and back when its second model never gets Ready, and forecasts three days of demand
history backfilled into Prometheus for a predictive policy, so each finops_* series the dashboard
reads has real values."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.devcluster.nodes import node_manifest
from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_edgefleet import GROUP_LABEL, fleet, site_nodes
from tests.integration.test_finopspolicy_enforcement import deployment, policy, replicas
from tests.integration.test_predictive_scaling import daily_history, predictive_policy
from tests.kube import REPO, Kube, drop_namespaces, eventually
from tests.operator_process import free_port, running_operator
from tests.prometheus_harness import PrometheusBinaries, PrometheusServer
from tests.required_tools import prometheus_binaries

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(420)]

DASHBOARD = REPO / "deploy" / "grafana" / "finops-operator.json"
OPERATOR_JOB = "finops-operator"
# The same targets scraped again the way a ServiceMonitor with honorLabels: false does it: target
# labels namespace/pod win, and the exporters' own become exported_namespace/exported_pod.
RELABELED_OPERATOR_JOB = "finops-operator-honorlabels-false"
RELABELED_DCGM_JOB = "dcgm-exporter-honorlabels-false"
LAYOUTS = {
    "pod labels kept": {
        "job": OPERATOR_JOB,
        "namespace_label": "namespace",
        "gpu_namespace_label": "namespace",
        "gpu_pod_label": "pod",
    },
    "honorLabels false": {
        "job": RELABELED_OPERATOR_JOB,
        "namespace_label": "exported_namespace",
        "gpu_namespace_label": "exported_namespace",
        "gpu_pod_label": "exported_pod",
    },
}
# What Grafana substitutes for its built-in interval variables, for a dashboard scraped every second.
BUILTINS = {"$__rate_interval": "30s", "$__range": "5m"}
EU, A100, H100 = "eu-west-1", "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"
EDGE, FLEET, SITES = "obs-edge", "obs-fleet", "obs-dashboard"
FLEET_ROLLOUT = {"wavePercents": [50, 100], "soakSeconds": 1, "waveTimeoutSeconds": 30}


@dataclass
class TwoLayoutPrometheus(PrometheusServer):
    """Scrapes the DCGM exporter (harness job) and the operator, each in both label layouts."""

    operator_target: str = ""
    dcgm_target: str = ""

    def config(self) -> str:
        config = json.loads(super().config())
        target_labels = {"namespace": "monitoring", "pod": "scraped-through-a-service"}
        for job, target, labels in (
            (OPERATOR_JOB, self.operator_target, {}),
            (RELABELED_OPERATOR_JOB, self.operator_target, target_labels),
            (RELABELED_DCGM_JOB, self.dcgm_target, target_labels),
        ):
            config["scrape_configs"].append(
                {
                    "job_name": job,
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "honor_labels": False,
                    "static_configs": [{"targets": [target], "labels": labels}],
                }
            )
        return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def binaries() -> PrometheusBinaries:
    return prometheus_binaries()


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in sorted({**BUILTINS, **{f"${k}": v for k, v in values.items()}}.items(), reverse=True):
        expr = expr.replace(name, value)
    assert "$" not in expr.replace("$1", ""), f"unsubstituted variable in {expr}"
    return expr


def label_values(prometheus: PrometheusServer, query: str) -> list[str]:
    """What Grafana's label_values(selector, label) returns, through the series API it uses."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, query
    selector, label = match.groups()
    series = prometheus.api("/api/v1/series", **{"match[]": selector, "start": str(time.time() - 600)})
    return sorted({s[label] for s in series if label in s})


def as_regex(values: list[str]) -> str:
    """Grafana's regex formatting of a multi-value variable (these names need no escaping)."""
    assert all(re.fullmatch(r"[\w.-]+", v) for v in values), values
    return "(" + "|".join(values) + ")"


@pytest.fixture(scope="module")
def observed(
    kube: Kube, binaries: PrometheusBinaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Workloads, policies and a SovereignRegion for the operator to act on, the operator running
    against Prometheus, and Prometheus scraping it until every series the dashboard reads exists."""
    namespaces = (
        ("obs-budget", {}),
        ("obs-idle", {"obs-test": "dashboard"}),
        (EDGE, {}),
        ("obs-predict", {}),
    )
    for namespace, labels in namespaces:
        kube.kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
            ),
        )
    violator = deployment("obs-idle", "on-h100", 1, gpus=1, labels={"tier": "batch"})
    violator["spec"]["template"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": H100}
    pricing = {"gpuHourlyRate": 2.5}
    objects = [
        deployment("obs-budget", "chat", 2, gpus=1),
        deployment("obs-idle", "sleepy", 1, gpus=1),
        violator,
        policy(
            "obs-budget",
            "tiny-budget",
            costLimits={"dailyGPUHours": 0.01, "budgetAction": "ScaleToZero"},
            pricing=pricing,
            alerting={"budgetExhausted": {"severity": "CRITICAL", "recipientGroup": "finops-team"}},
        ),
        policy(
            "obs-idle",
            "idle-rules",
            costLimits={"dailyGPUHours": 1000},
            pricing=pricing,
            optimizationRules={"idleShutdownThresholdMinutes": 60, "idleGPUUtilizationPercent": 5},
        ),
        # A policy governing nothing, so the fleet's namespace is one of the dashboard's namespaces.
        policy(EDGE, "edge-sites"),
        *(node_manifest(node) for node in site_nodes(SITES, 2)),
        fleet(EDGE, FLEET, SITES, "v1", **FLEET_ROLLOUT),
        deployment("obs-predict", "chat", 1, gpus=1),
        predictive_policy("obs-predict", 'sum(demand_rps{service="obs"})'),
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "SovereignRegion",
            "metadata": {"name": "obs-eu"},
            "spec": {
                "region": EU,
                "namespaceSelector": {"matchLabels": {"obs-test": "dashboard"}},
                "allowedGPUProducts": [A100],
                "allowedDataClassifications": ["public", "internal"],
                "enforcementMode": "DryRun",
            },
        },
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    workdir = tmp_path_factory.mktemp("observability")
    with DcgmExporter() as exporter:
        pods = eventually(
            lambda: [
                p["metadata"]["name"]
                for p in kube.get_json("pods", "-n", "obs-idle", "-l", "app=sleepy")["items"]
            ],
            timeout=60,
            what="the sleepy pod",
        )
        for pod in pods:
            exporter.set_utilization("obs-idle", pod, 2)
        metrics_port = free_port()
        prometheus = TwoLayoutPrometheus(
            binaries,
            workdir / "prometheus",
            targets=[exporter.target],
            operator_target=f"127.0.0.1:{metrics_port}",
            dcgm_target=exporter.target,
            history=[daily_history("obs", peak_offset=10 * 60, days=3)],
        ).start()
        try:
            with running_operator(
                kube,
                workdir,
                "--sample-interval",
                "2",
                "--prometheus-url",
                prometheus.url,
                "--metrics-port",
                str(metrics_port),
            ):
                eventually(
                    lambda: replicas(kube, "obs-budget", "chat") == 0, timeout=90, what="budget action"
                )
                eventually(
                    lambda: fleet_status(kube).get("stableRevision"), timeout=120, what="fleet rolled out"
                )
                # The second model's pods never get Ready (kwok's simulated unready stage): rolled back.
                bad = fleet(EDGE, FLEET, SITES, "v2", unready=True, **FLEET_ROLLOUT)
                kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad))
                for expr in (
                    'finops_actions_total{namespace="obs-budget"}',
                    'finops_idle_workloads{namespace="obs-idle"} > 0',
                    'finops_sovereignty_violations{region="obs-eu", rule="GPUProduct"} > 0',
                    'finops_budget_ratio{namespace="obs-budget"} >= 1',
                    f'finops_governed_workloads{{job="{RELABELED_OPERATOR_JOB}"}}',
                    'finops_policy_alert_route{namespace="obs-budget", recipient_group="finops-team"}',
                    f'finops_edgefleet_rollbacks_total{{namespace="{EDGE}"}} >= 1',
                    'finops_prediction_recommended_replicas{namespace="obs-predict"}',
                    'finops_demand_forecast{namespace="obs-predict", bound="upper"}',
                ):
                    eventually(lambda expr=expr: prometheus.query(expr), timeout=90, what=expr)
                time.sleep(5)  # a few more scrapes, so rates and projections have points to work on
                yield prometheus
        finally:
            prometheus.stop()
            print(f"--- {prometheus.log_path} ---\n{prometheus.log()[-2000:]}")
            kube.kubectl("delete", "sovr", "obs-eu", "--wait=false", check=False)
            # Namespaces first: pods on a deleted kwok node wait for the pod GC (about a minute).
            drop_namespaces(kube, *(n for n, _ in namespaces))
            kube.kubectl("delete", "node", "-l", f"{GROUP_LABEL}={SITES}", "--wait=false", check=False)


def fleet_status(kube: Kube) -> dict[str, Any]:
    return dict(kube.get_json("edgefleet", "-n", EDGE, FLEET).get("status") or {})


def variable_values(prometheus: PrometheusServer, layout: dict[str, str]) -> dict[str, str]:
    """Run the dashboard's query variables in order (later ones use earlier ones), like Grafana; the
    layout picks one of the values found for `job`, as a user would."""
    values = dict(layout)
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = label_values(prometheus, substitute(variable["query"], values))
        assert found, f"variable {variable['name']} ({variable['query']}) found nothing"
        if variable["name"] in layout:
            assert layout[variable["name"]] in found
        else:
            values[variable["name"]] = as_regex(found)
    return values


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_every_variable_and_panel_query_returns_data(
    observed: PrometheusServer, layout: dict[str, str]
) -> None:
    values = variable_values(observed, layout)
    assert "obs-budget" in values["namespace"] and "obs-idle" in values["namespace"]
    assert "obs-eu" in values["region"]
    empty = []
    for panel in panels():
        for target in panel["targets"]:
            expr = substitute(target["expr"], values)
            result = observed.query(expr)
            if all(math.isnan(value) for _, value in result):  # NaN alone is no data
                empty.append(f"{panel['title']}: {expr}")
            # The range query a time-series panel sends must be accepted too.
            observed.api(
                "/api/v1/query_range",
                query=expr,
                start=str(time.time() - 120),
                end=str(time.time()),
                step="5",
            )
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_panels_show_what_the_operator_did(observed: PrometheusServer) -> None:
    """Not just any data: the values say what happened on the cluster."""
    values = variable_values(observed, LAYOUTS["pod labels kept"])
    by_title = {p["title"]: p for p in panels()}

    def results(title: str) -> list[tuple[dict[str, str], float]]:
        return observed.query(substitute(by_title[title]["targets"][0]["expr"], values))

    budget = {labels["policy"]: value for labels, value in results("Budget used")}
    assert budget["tiny-budget"] >= 1 and budget["idle-rules"] < 0.01
    idle = {labels["policy"]: value for labels, value in results("Idle workloads")}
    assert idle["idle-rules"] == 1
    violations = {
        (labels["region"], labels["rule"]): value
        for labels, value in results("Sovereignty violations by rule")
    }
    assert violations[("obs-eu", "GPUProduct")] >= 1
    utilisation = {
        labels["namespace"]: value for labels, value in results("GPU utilisation by pod (dcgm-exporter)")
    }
    assert utilisation == {"obs-idle": 2.0}
    assert {labels["action"] for labels, _ in results("Actions on workloads")}
    assert {labels["kind"] for labels, _ in results("Reconciles per second")} >= {
        "FinOpsPolicy",
        "SovereignRegion",
        "EdgeFleet",
    }
    sites = {labels["state"]: value for labels, value in results("Sites by state")}
    assert sites["total"] == 2
    rollbacks = observed.query(
        substitute(by_title["Rollbacks and Degraded fleets"]["targets"][0]["expr"], values)
    )
    assert [value for _, value in rollbacks] and all(value > 0 for _, value in rollbacks)
    floor = {labels["policy"]: value for labels, value in results("Predicted replica floor")}
    assert floor["forecast"] >= 1
    forecast_panel = by_title["Forecast vs observed demand: $forecast_policy"]
    observed_demand, plan, lower, upper = (
        [value for _, value in observed.query(substitute(target["expr"], values))]
        for target in forecast_panel["targets"]
    )
    assert observed_demand and plan and lower and upper
    assert lower[0] <= plan[0] <= upper[0]  # the band is the forecast's own interval
    # Every kind that reconciles has a series: its errors, or 0 (the query's fallback), never no data.
    assert {labels["kind"] for labels, _ in results("Reconcile errors")} >= {"FinOpsPolicy", "EdgeFleet"}


def test_dashboard_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    """Also a unit test; repeated here so the integration run never checks a stale dashboard."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "grafana" / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr


def test_alert_rules_route_to_the_policys_recipient_group(observed: PrometheusServer) -> None:
    """The budget alerts' expressions, evaluated on the real operator's series: the exhausted policy's
    alert carries the recipientGroup of its budgetExhausted route; a policy without one, platform."""
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "finops-operator.rules.yaml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    fired = observed.query(by_name["FinOpsBudgetExhausted"]["expr"])
    # Once per scrape job here: this Prometheus scrapes the operator twice (both label layouts).
    assert {(labels["job"], labels["policy"], labels["recipient_group"]) for labels, _ in fired} == {
        (OPERATOR_JOB, "tiny-budget", "finops-team"),
        (RELABELED_OPERATOR_JOB, "tiny-budget", "finops-team"),
    }
    routes = observed.query('finops_policy_alert_route{namespace="obs-idle"}')
    assert routes == []  # idle-rules has no spec.alerting: its alerts fall back to platform
