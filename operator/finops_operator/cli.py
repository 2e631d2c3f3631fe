"""The ``finops`` command: run the operator, generate CRDs, and drive the local dev cluster."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from finops_operator import __version__
from finops_operator.crdgen import stale_crds, write_crds
from finops_operator.devcluster.binaries import BuildError, ensure_binaries
from finops_operator.devcluster.cluster import ClusterError, LocalCluster, default_cluster_dir
from finops_operator.reports import sovereignty_report
from finops_operator.settings import SettingsError, load_settings
from finops_operator.showback import ShowbackWindow, parse_at, showback_report

app = typer.Typer(help="FinOps and data-sovereignty guardrails for GPU/AI workloads.", no_args_is_help=True)
dev_app = typer.Typer(help="Local development helpers.", no_args_is_help=True)
cluster_app = typer.Typer(
    help="A real local control plane (etcd, kube-apiserver, controller-manager, "
    "scheduler, kwok) on 127.0.0.1.",
    no_args_is_help=True,
)
report_app = typer.Typer(help="Reports for auditors and finance.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(report_app, name="report")
dev_app.add_typer(cluster_app, name="cluster")

DEFAULT_CLUSTER_DIR = default_cluster_dir()
ClusterDir = Annotated[
    Path, typer.Option("--dir", help="Cluster state directory.", envvar="FINOPS_DEV_CLUSTER_DIR")
]


def _say(message: str) -> None:
    typer.echo(f"[finops dev] {message}", err=True)


@app.command()
def version() -> None:
    """Print the operator version."""
    typer.echo(__version__)


@app.command()
def run(
    *,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these namespaces.")
    ] = None,
    prometheus_url: Annotated[str | None, typer.Option(help="Prometheus base URL.")] = None,
    sample_interval: Annotated[float | None, typer.Option(help="Seconds between accounting samples.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port for /metrics (0 disables).")] = None,
    health_port: Annotated[int | None, typer.Option(help="Port for /healthz (0 disables).")] = None,
    webhook: Annotated[
        bool | None, typer.Option("--webhook/--no-webhook", help="Serve the admission webhook.")
    ] = None,
    webhook_port: Annotated[int | None, typer.Option(help="Webhook port.")] = None,
) -> None:
    """Run the operator (settings from FINOPS_* environment variables, overridden by flags)."""
    try:
        settings = load_settings(
            namespaces=namespace or None,
            prometheus_url=prometheus_url,
            sample_interval_seconds=sample_interval,
            metrics_port=metrics_port,
            health_port=health_port,
            webhook_enabled=webhook,
            webhook_port=webhook_port,
        )
    except SettingsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    from finops_operator.main import run_operator  # noqa: PLC0415 - Kopf is imported only to run

    asyncio.run(run_operator(settings))


@app.command()
def crds(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to write the CRDs.")] = Path(
        "crds"
    ),
    check: Annotated[bool, typer.Option("--check", help="Fail if the files differ from the models.")] = False,
) -> None:
    """Generate crds/*.yaml from the pydantic models (or verify them with --check)."""
    if check:
        stale = stale_crds(output_dir)
        if stale:
            typer.echo(f"out of date: {', '.join(stale)}; run `finops crds`", err=True)
            raise typer.Exit(1)
        typer.echo("CRDs are up to date")
        return
    for path in write_crds(output_dir):
        typer.echo(f"wrote {path}")


@app.command()
def forecast(
    trace: Annotated[Path, typer.Option(help="CSV trace with timestamp,value columns.", exists=True)],
    horizon: Annotated[int, typer.Option(help="Steps to forecast.")] = 36,
    model: Annotated[str, typer.Option(help="auto, or a model name such as hw_damped.")] = "auto",
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of history, forecast and interval.")] = None,
) -> None:
    """Forecast a demand trace and print the forecast (optionally plot it)."""
    from forecasting import ForecastConfig, ForecastError, forecast_series, load_trace  # noqa: PLC0415

    series = load_trace(trace)
    try:
        result = forecast_series(series, horizon, (0.1, 0.5, 0.9), ForecastConfig(model=model))
    except (ForecastError, ValueError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"model {result.model_name}: backtest MAE {result.backtest.mae:.4g}, MASE {result.backtest.mase:.3f}"
    )
    typer.echo("timestamp,mean,p10,p90")
    for i, stamp in enumerate(result.timestamps):
        typer.echo(
            f"{stamp.isoformat()},{result.mean[i]:.4g},{result.quantiles[0.1][i]:.4g},"
            f"{result.quantiles[0.9][i]:.4g}"
        )
    if plot is not None:
        from forecasting.plotting import plot_forecast  # noqa: PLC0415 - matplotlib only when plotting

        typer.echo(f"wrote {plot_forecast(series, result, plot)}", err=True)


@app.command()
def simulate(
    *,
    trace: Annotated[
        list[Path], typer.Option(help="CSV trace(s) with timestamp,value columns.", exists=True)
    ],
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of demand, ready capacity and every miss.")
    ] = None,
    max_under_provisioned_percent: Annotated[
        float,
        typer.Option(
            "--max-under-provisioned-percent",
            min=0.01,
            max=50.0,
            help="Service level the predictive policy states: % of intervals demand may exceed capacity.",
        ),
    ] = 0.5,
    decision_interval: Annotated[
        int | None, typer.Option(help="Seconds between decisions (default: 10 min for 10-min data, else 5).")
    ] = None,
    startup: Annotated[
        int | None, typer.Option(help="Replica start-up seconds (default: one decision).")
    ] = None,
    hpa_sync: Annotated[
        int | None, typer.Option(help="Seconds between HPA evaluations (default: once per decision).")
    ] = None,
) -> None:
    """Replay demand traces through the user's HPA (tuned on validation) and calibrated predictive
    scaling; print GPU-hours, achieved service level and ratios to the HPA and to `foresight`."""
    import pandas as pd  # noqa: PLC0415 - the forecasting stack only when simulating

    from forecasting.replay import ReplaySettings, run_comparison, summarize  # noqa: PLC0415

    def seconds(value: int | None) -> pd.Timedelta | None:
        return pd.Timedelta(seconds=value) if value else None

    level = max_under_provisioned_percent / 100.0
    settings = ReplaySettings(
        decision_interval=seconds(decision_interval),
        startup_delay=seconds(startup),
        hpa_sync=seconds(hpa_sync),
        service_level=level,
        service_levels=tuple(sorted({0.0025, 0.005, 0.01, 0.02, level})),
    )
    reports = []
    for path in trace:
        try:
            report = run_comparison(path, settings)
        except ValueError as error:
            typer.echo(f"{path}: {error}", err=True)
            raise typer.Exit(1) from None
        reports.append(report)
        typer.echo(report.to_table())
        typer.echo("")
        if plot is not None:
            from forecasting.plotting import plot_replay  # noqa: PLC0415 - matplotlib only when plotting

            target = plot if len(trace) == 1 else plot.with_name(f"{plot.stem}-{path.stem}{plot.suffix}")
            typer.echo(f"wrote {plot_replay(report, target)}", err=True)
    typer.echo(summarize(reports))


@report_app.command("sovereignty")
def report_sovereignty(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compliance of every SovereignRegion (from KUBECONFIG or the in-cluster account); exit 1 if any
    region is not compliant."""
    from finops_operator.kube import KubeClient  # noqa: PLC0415 - the Kubernetes client only when needed

    try:
        regions = KubeClient.from_environment().list_cluster_objects(
            "finops.dev", "v1alpha1", "sovereignregions"
        )
    except Exception as error:
        typer.echo(f"cannot read SovereignRegions: {error}", err=True)
        raise typer.Exit(2) from None
    report = sovereignty_report(regions)
    typer.echo(report.to_json() if as_json else report.to_table())
    raise typer.Exit(0 if report.compliant else 1)


class ReportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@report_app.command("showback")
def report_showback(
    window: Annotated[
        ShowbackWindow, typer.Option("--window", help="day, week or month.")
    ] = ShowbackWindow.DAY,
    at: Annotated[
        str | None,
        typer.Option("--at", help="A date (YYYY-MM-DD) or ISO instant inside the window; default now."),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="namespace, workload or label:<key>.")] = "namespace",
    output: Annotated[
        ReportFormat, typer.Option("--format", help="table, csv or json.")
    ] = ReportFormat.TABLE,
) -> None:
    """GPU-hours, cost and idle GPU-hours of every FinOpsPolicy's governed workloads over a day, week or
    month (from KUBECONFIG or the in-cluster account); exit 1 if a policy has no ledger for it."""
    from finops_operator.kube import KubeClient  # noqa: PLC0415 - the Kubernetes client only when needed

    try:
        moment = parse_at(at, datetime.now(UTC))
    except ValueError as error:
        typer.echo(f"--at {at!r}: {error}", err=True)
        raise typer.Exit(2) from None
    if by not in ("namespace", "workload") and not (by.startswith("label:") and len(by) > len("label:")):
        typer.echo(f"--by {by!r}: use namespace, workload or label:<key>", err=True)
        raise typer.Exit(2)
    try:
        kube = KubeClient.from_environment()
        policies = kube.list_cluster_objects("finops.dev", "v1alpha1", "finopspolicies")
        deployments = (
            kube.list_cluster_objects("apps", "v1", "deployments") if by.startswith("label:") else []
        )
    except Exception as error:
        typer.echo(f"cannot read FinOpsPolicies: {error}", err=True)
        raise typer.Exit(2) from None
    report = showback_report(policies, deployments, window=window, by=by, at=moment)
    render = {
        ReportFormat.TABLE: report.to_table,
        ReportFormat.CSV: report.to_csv,
        ReportFormat.JSON: report.to_json,
    }
    typer.echo(render[output]())
    for problem in report.problems if output != ReportFormat.TABLE else ():
        typer.echo(f"! {problem}", err=True)
    raise typer.Exit(1 if report.problems else 0)


@dev_app.command("binaries")
def dev_binaries() -> None:
    """Find or build the control-plane binaries and print their paths as JSON."""
    try:
        typer.echo(json.dumps(ensure_binaries(_say).as_dict(), indent=2))
    except BuildError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


@cluster_app.command("up")
def cluster_up(directory: ClusterDir = DEFAULT_CLUSTER_DIR) -> None:
    """Start the control plane with simulated GPU and edge nodes (idempotent)."""
    try:
        state = LocalCluster(directory, _say).up()
    except (BuildError, ClusterError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"export KUBECONFIG={state.kubeconfig}")


@cluster_app.command("down")
def cluster_down(directory: ClusterDir = DEFAULT_CLUSTER_DIR) -> None:
    """Stop every process of the control plane and delete its state."""
    LocalCluster(directory, _say).down()


@cluster_app.command("restart")
def cluster_restart(component: str, directory: ClusterDir = DEFAULT_CLUSTER_DIR) -> None:
    """Restart one component (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
    with its data, as a fault drill; returns once the API server is ready again."""
    try:
        LocalCluster(directory, _say).restart(component)
    except ClusterError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


@cluster_app.command("env")
def cluster_env(directory: ClusterDir = DEFAULT_CLUSTER_DIR) -> None:
    """Print the shell line that points kubectl at the local cluster."""
    cluster = LocalCluster(directory)
    if cluster.state is None:
        typer.echo("no local cluster; run `finops dev cluster up`", err=True)
        raise typer.Exit(1)
    typer.echo(f"export KUBECONFIG={cluster.state.kubeconfig}")


@cluster_app.command("status")
def cluster_status(directory: ClusterDir = DEFAULT_CLUSTER_DIR) -> None:
    """Say whether the local cluster is running."""
    cluster = LocalCluster(directory)
    running = cluster.is_running()
    typer.echo("running" if running else "not running")
    raise typer.Exit(0 if running else 1)


def main() -> None:
    app(prog_name=Path(sys.argv[0]).name or "finops")
