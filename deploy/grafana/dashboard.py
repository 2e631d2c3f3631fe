"""Generate the FinOps operator's Grafana dashboard with grafana-foundation-sdk (Grafana's own typed
builders), instead of hand-editing JSON.

    .venv/bin/python deploy/grafana/dashboard.py          # writes both copies below
    .venv/bin/python deploy/grafana/dashboard.py --check  # exit 1 if they are not what this generates

Writes deploy/grafana/finops-operator.json (import it into Grafana) and the Helm chart's copy,
which the chart ships as a ConfigMap for Grafana's dashboard sidecar (dashboard.enabled).

Every query uses only series that exist: the operator's own finops_* series
(operator/finops_operator/metrics.py), `up`, and dcgm-exporter's DCGM_FI_DEV_GPU_UTIL. Label names
that depend on how Prometheus scrapes (``namespace`` or ``exported_namespace``: docs/OBSERVABILITY.md)
are dashboard variables, so one dashboard serves both layouts. There is deliberately no panel for
cost by team: no series carries the team (policies stand for teams), and a panel that can never show
data is worse than none.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
OUTPUTS = (
    HERE / "finops-operator.json",
    HERE.parent / "helm" / "finops-operator" / "files" / "grafana" / "finops-operator.json",
)
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Selectors shared by the panels; $namespace_label is `namespace` or `exported_namespace`.
POLICY = 'job=~"$job", $namespace_label=~"$namespace", policy=~"$policy"'
FORECAST_POLICY = 'job=~"$job", $namespace_label=~"$namespace", policy=~"$forecast_policy"'
FLEET = 'job=~"$job", $namespace_label=~"$namespace"'
SECONDS_TO_UTC_MIDNIGHT = "86400 - time() % 86400"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """One panel: what it answers (its description, also in docs/OBSERVABILITY.md) and its queries."""

    title: str
    answers: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    repeat: str | None = None
    """A variable to repeat the panel for, one panel per value."""
    band: tuple[str, str] | None = None
    """(lower, upper) legends: the area between the two series is filled, their lines hidden."""


ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    (
        "Budgets",
        (
            PanelSpec(
                "Budget used",
                "How much of its tightest daily GPU budget has each policy used right now?",
                (
                    Query(
                        f"max by ($namespace_label, policy) (finops_budget_ratio{{{POLICY}}})", "{{policy}}"
                    ),
                ),
                unit="percentunit",
                kind="stat",
            ),
            PanelSpec(
                "Projected budget at window end (00:00 UTC)",
                "At the last hour's burn rate, where does each policy land when the window resets? "
                "Above 100% means exhaustion before the end (the FinOpsBudgetProjectedExhaustion alert).",
                (
                    Query(
                        f"predict_linear(finops_budget_ratio{{{POLICY}}}[1h], {SECONDS_TO_UTC_MIDNIGHT})",
                        "{{policy}}",
                    ),
                ),
                unit="percentunit",
                kind="stat",
            ),
            PanelSpec(
                "Budget burn",
                "How fast is each policy using its daily budget, and when did it cross 80% or 100%?",
                (Query(f"finops_budget_ratio{{{POLICY}}}", "{{$namespace_label}}/{{policy}}"),),
                unit="percentunit",
                width=24,
            ),
        ),
    ),
    (
        "GPU-hours and cost",
        (
            PanelSpec(
                "GPU-hours by namespace",
                "Which namespaces use the GPU-hours of the current budget window?",
                (
                    Query(
                        f"sum by ($namespace_label) (finops_gpu_hours_used{{{POLICY}}})",
                        "{{$namespace_label}}",
                    ),
                ),
            ),
            PanelSpec(
                "Cost by namespace",
                "What do those GPU-hours cost (pricing.gpuHourlyRate of each policy)?",
                (Query(f"sum by ($namespace_label) (finops_cost_used{{{POLICY}}})", "{{$namespace_label}}"),),
                unit="currencyUSD",
            ),
            PanelSpec(
                "GPU-hours and cost by policy",
                "Which policy (one per team, by convention) spends what? The series carry the policy, "
                "not the team label of the workloads.",
                (
                    Query(f"sum by (policy) (finops_gpu_hours_used{{{POLICY}}})", "{{policy}} GPU-hours"),
                    Query(f"sum by (policy) (finops_cost_used{{{POLICY}}})", "{{policy}} cost"),
                ),
                width=24,
            ),
            PanelSpec(
                "GPU-hours and cost by workload, per hour",
                "Which workloads (Deployments, StatefulSets, Jobs, CronJobs, bare pods) spent what over the "
                "last hour? The showback counters finops_gpu_hours_total and finops_cost_total, as "
                "`finops report showback` sums them.",
                (
                    Query(
                        "sum by ($namespace_label, workload) "
                        f"(increase(finops_gpu_hours_total{{{POLICY}}}[1h]))",
                        "{{$namespace_label}}/{{workload}} GPU-hours",
                    ),
                    Query(
                        f"sum by ($namespace_label, workload) (increase(finops_cost_total{{{POLICY}}}[1h]))",
                        "{{$namespace_label}}/{{workload}} cost",
                    ),
                ),
                width=24,
            ),
        ),
    ),
    (
        "Idle GPUs and actions",
        (
            PanelSpec(
                "Idle workloads",
                "Which policies have governed Deployments holding GPUs idle right now?",
                (
                    Query(
                        f"sum by ($namespace_label, policy) (finops_idle_workloads{{{POLICY}}})",
                        "{{$namespace_label}}/{{policy}}",
                    ),
                ),
            ),
            PanelSpec(
                "GPU utilisation by pod (dcgm-exporter)",
                "How busy is each pod's GPU? The label names follow $gpu_namespace_label/$gpu_pod_label.",
                (
                    Query(
                        "avg by ($gpu_namespace_label, $gpu_pod_label) "
                        '(DCGM_FI_DEV_GPU_UTIL{$gpu_namespace_label=~"$namespace"})',
                        "{{$gpu_namespace_label}}/{{$gpu_pod_label}}",
                    ),
                ),
                unit="percent",
            ),
            PanelSpec(
                "Actions on workloads",
                "What did the operator change on workloads in the selected time range (Event reasons)?",
                (
                    Query(
                        f"sum by (action) (increase(finops_actions_total{{{POLICY}}}[$__range]))",
                        "{{action}}",
                    ),
                ),
                kind="stat",
                width=24,
            ),
        ),
    ),
    (
        "Sovereignty",
        (
            PanelSpec(
                "Sovereignty violations by rule",
                "Which rules (Region, GPUProduct, DataClassification) do workloads break, per region?",
                (
                    Query(
                        "sum by (region, rule) "
                        '(finops_sovereignty_violations{job=~"$job", region=~"$region"})',
                        "{{region}} {{rule}}",
                    ),
                ),
                width=24,
            ),
        ),
    ),
    (
        "Predictive scaling",
        (
            PanelSpec(
                "Forecast demand peak and its error",
                "What peak demand does each predictive policy expect within its horizon (at the quantile "
                "replicas are sized on), and how far off was its forecaster in backtest (MAE, in the same "
                "units)? The observed demand is the policy's own spec.predictiveScaling.demandQuery.",
                (
                    Query(
                        f"finops_prediction_demand_peak{{{POLICY}}}", "{{$namespace_label}}/{{policy}} peak"
                    ),
                    Query(
                        f"finops_prediction_backtest_mae{{{POLICY}}}",
                        "{{$namespace_label}}/{{policy}} backtest MAE",
                    ),
                ),
            ),
            PanelSpec(
                "Forecast vs observed demand: $forecast_policy",
                "Does the demand each predictive policy observes stay within what its forecaster "
                "expected? The forecast for the next step (at most 5 minutes ahead) with its 80 % "
                "interval as a band, beside the demand its spec.predictiveScaling.demandQuery reads now; "
                "one panel per policy that forecasts (pick one namespace when a policy name repeats).",
                (
                    Query(f"finops_demand_observed{{{FORECAST_POLICY}}}", "observed"),
                    Query(f'finops_demand_forecast{{{FORECAST_POLICY}, bound="plan"}}', "forecast"),
                    Query(f'finops_demand_forecast{{{FORECAST_POLICY}, bound="lower"}}', "80 % lower"),
                    Query(f'finops_demand_forecast{{{FORECAST_POLICY}, bound="upper"}}', "80 % upper"),
                ),
                repeat="forecast_policy",
                band=("80 % lower", "80 % upper"),
            ),
            PanelSpec(
                "Predicted replica floor",
                "What minimum replicas does the forecast set on each policy's HPA?",
                (
                    Query(
                        f"finops_prediction_recommended_replicas{{{POLICY}}}",
                        "{{$namespace_label}}/{{policy}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "EdgeFleet rollouts",
        (
            PanelSpec(
                "Rollout wave",
                "Which wave is each fleet's rollout in (0: idle)?",
                (
                    Query(
                        f"max by ($namespace_label, fleet) (finops_edgefleet_current_wave{{{FLEET}}})",
                        "{{$namespace_label}}/{{fleet}}",
                    ),
                ),
                width=8,
            ),
            PanelSpec(
                "Sites by state",
                "How many sites are updated, ready, offline or failing the current wave, of how many?",
                (
                    Query(
                        f"sum by ($namespace_label, fleet, state) (finops_edgefleet_sites{{{FLEET}}})",
                        "{{$namespace_label}}/{{fleet}} {{state}}",
                    ),
                ),
                width=16,
            ),
            PanelSpec(
                "Rollbacks and Degraded fleets",
                "Which fleets rolled back in the selected time range, and which are Degraded now "
                "(the FinOpsEdgeFleetRolledBack and FinOpsEdgeFleetDegraded alerts)?",
                (
                    Query(
                        "sum by ($namespace_label, fleet) "
                        f"(increase(finops_edgefleet_rollbacks_total{{{FLEET}}}[$__range]))",
                        "{{$namespace_label}}/{{fleet}} rollbacks",
                    ),
                    Query(
                        f"max by ($namespace_label, fleet) (finops_edgefleet_degraded{{{FLEET}}})",
                        "{{$namespace_label}}/{{fleet}} degraded",
                    ),
                ),
                kind="stat",
                width=24,
            ),
        ),
    ),
    (
        "Operator health",
        (
            PanelSpec(
                "Operator up",
                "Is Prometheus scraping the operator?",
                (Query('up{job=~"$job"}', "{{instance}}"),),
                kind="stat",
                width=6,
            ),
            PanelSpec(
                "Reconcile latency (p95)",
                "How long does one reconcile take, per kind?",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (le, kind) "
                        '(rate(finops_reconcile_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
                        "{{kind}}",
                    ),
                ),
                unit="s",
                width=9,
            ),
            PanelSpec(
                "Reconciles per second",
                "How often does each kind reconcile?",
                (
                    Query(
                        "sum by (kind) "
                        '(rate(finops_reconcile_duration_seconds_count{job=~"$job"}[$__rate_interval]))',
                        "{{kind}}",
                    ),
                ),
                unit="ops",
                width=9,
            ),
            PanelSpec(
                "Reconcile errors",
                "Are reconciles failing (exceptions, writes the API server refused), per kind and reason? "
                "0 for every kind that reconciles without errors (the FinOpsReconcileErrors alert).",
                (
                    Query(
                        "sum by (kind, reason) "
                        '(rate(finops_reconcile_errors_total{job=~"$job"}[$__rate_interval])) or '
                        "label_replace(sum by (kind) "
                        '(rate(finops_reconcile_duration_seconds_count{job=~"$job"}[$__rate_interval])) * 0, '
                        '"reason", "none", "", "")',
                        "{{kind}} {{reason}}",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Kubernetes API requests",
                "Which API calls do the handlers make beyond Kopf's watches (verb, resource)?",
                (
                    Query(
                        "sum by (verb, resource) "
                        '(rate(finops_api_requests_total{job=~"$job"}[$__rate_interval]))',
                        "{{verb}} {{resource}}",
                    ),
                ),
                unit="reqps",
            ),
            PanelSpec(
                "Status writes",
                "How often is status written (only when it changed), per kind?",
                (
                    Query(
                        'sum by (kind) (rate(finops_status_writes_total{job=~"$job"}[$__rate_interval]))',
                        "{{kind}}",
                    ),
                ),
                unit="wps",
            ),
        ),
    ),
)


def label_choice(name: str, label: str, values: tuple[str, ...], description: str) -> gd.CustomVariable:
    return (
        gd.CustomVariable(name)
        .label(label)
        .description(description)
        .values(",".join(values))
        .current(VariableOption(text=values[0], value=values[0], selected=True))
    )


def label_values(name: str, label: str, query: str) -> gd.QueryVariable:
    return (
        gd.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def variables() -> list[gd.CustomVariable | gd.QueryVariable | gd.DatasourceVariable]:
    return [
        gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        label_choice(
            "namespace_label",
            "finops_* namespace label",
            ("namespace", "exported_namespace"),
            "exported_namespace when a ServiceMonitor with honorLabels: false scrapes the operator",
        ),
        label_choice(
            "gpu_namespace_label",
            "dcgm namespace label",
            ("namespace", "exported_namespace"),
            "exported_namespace when dcgm-exporter is scraped with honorLabels: false",
        ),
        label_choice("gpu_pod_label", "dcgm pod label", ("pod", "exported_pod"), "exported_pod likewise"),
        label_values("job", "Operator job", "label_values(finops_reconcile_duration_seconds_count, job)"),
        label_values(
            "namespace", "Namespace", 'label_values(finops_governed_workloads{job=~"$job"}, $namespace_label)'
        ),
        label_values(
            "policy",
            "Policy",
            'label_values(finops_governed_workloads{job=~"$job", $namespace_label=~"$namespace"}, policy)',
        ),
        label_values(
            "region", "SovereignRegion", 'label_values(finops_sovereignty_violations{job=~"$job"}, region)'
        ),
        label_values(
            "forecast_policy",
            "Forecasting policy",
            'label_values(finops_demand_forecast{job=~"$job", $namespace_label=~"$namespace", '
            'policy=~"$policy"}, policy)',
        ),
    ]


def panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    built = timeseries.Panel() if spec.kind == "timeseries" else stat.Panel()
    built = built.title(spec.title).description(spec.answers).datasource(DATASOURCE).unit(spec.unit)
    built = built.span(spec.width).height(8)
    for index, query in enumerate(spec.queries):
        target = gp.Dataquery().expr(query.expr).legend_format(query.legend).ref_id("ABCDEFGH"[index])
        built = built.with_target(target.instant() if spec.kind == "stat" else target.range())
    if spec.repeat:
        built = built.repeat(spec.repeat).repeat_direction("h")
    if spec.band and isinstance(built, timeseries.Panel):
        lower, upper = spec.band
        hidden_line = DynamicConfigValue(id_val="custom.lineWidth", value=0)
        built = built.override_by_name(lower, [hidden_line])
        built = built.override_by_name(
            upper,
            [
                hidden_line,
                DynamicConfigValue(id_val="custom.fillBelowTo", value=lower),
                DynamicConfigValue(id_val="custom.fillOpacity", value=20),
            ],
        )
    return built


def build() -> gd.Dashboard:
    board = (
        gd.Dashboard("FinOps operator")
        .uid("finops-operator")
        .description("GPU budgets, cost, idle GPUs, sovereignty and the operator's own health.")
        .tags(["finops", "gpu", "kubernetes"])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
    )
    for variable in variables():
        board = board.with_variable(variable)
    for title, specs in ROWS:
        board = board.with_row(gd.Row(title))
        for spec in specs:
            board = board.with_panel(panel(spec))
    return board


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a written copy is out of date")
    args = parser.parse_args(argv)
    text = render()
    stale = [path for path in OUTPUTS if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python deploy/grafana/dashboard.py", file=sys.stderr)
        return 1 if stale else 0
    for path in OUTPUTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
