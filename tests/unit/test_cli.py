"""The `finops` command as users type it (no cluster needed for these)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from finops_operator import __version__
from finops_operator.cli import app
from tests.kube import REPO

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


def test_crds_check_passes_on_the_committed_files() -> None:
    result = runner.invoke(app, ["crds", "--check", "--output-dir", str(REPO / "crds")])
    assert result.exit_code == 0, result.output


def test_forecast_prints_quantiles_and_draws_the_plot(tmp_path: Path) -> None:
    plot = tmp_path / "forecast.png"
    trace = REPO / "benchmarks" / "traces" / "llm_servegen_mlarge_10min.csv"
    result = runner.invoke(
        app,
        [
            "forecast",
            "--trace",
            str(trace),
            "--horizon",
            "3",
            "--model",
            "seasonal_naive",
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model seasonal_naive: backtest MAE")
    assert lines[1] == "timestamp,mean,p10,p90" and len(lines) == 5
    assert plot.stat().st_size > 10_000


def test_forecast_refuses_short_history_with_a_reason(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("timestamp,value\n" + "".join(f"{i * 600},{i % 7}\n" for i in range(30)))
    result = runner.invoke(app, ["forecast", "--trace", str(short)])
    assert result.exit_code == 1
    assert "InsufficientHistory" in result.output


def test_run_refuses_invalid_settings_naming_the_variable() -> None:
    result = runner.invoke(app, ["run", "--sample-interval", "0"])
    assert result.exit_code == 2
    assert "FINOPS_SAMPLE_INTERVAL_SECONDS" in result.output


def test_showback_refuses_an_unknown_grouping_before_reading_the_cluster() -> None:
    result = runner.invoke(app, ["report", "showback", "--window", "month", "--by", "team"])
    assert result.exit_code == 2 and "use namespace, workload or label:<key>" in result.output
    result = runner.invoke(app, ["report", "showback", "--at", "last tuesday"])
    assert result.exit_code == 2 and "--at 'last tuesday'" in result.output
