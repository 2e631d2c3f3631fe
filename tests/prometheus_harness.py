"""A real Prometheus server for tests: started on 127.0.0.1 with a generated config, optional seeded
history, and pytest fixtures.

Nothing about Prometheus is mocked: the binary scrapes real HTTP targets (e.g. ``tests.dcgm_exporter``)
and answers PromQL over its HTTP API. Days of history come from ``promtool tsdb create-blocks-from
openmetrics``, run before the server starts so the blocks are loaded like any persisted data.

Fixtures (best: ``pytest_plugins = ["tests.prometheus_harness"]`` in the root conftest; otherwise bind
them in the test module, ``make_prometheus = prometheus_harness.make_prometheus``; importing them by name
trips ruff's F811, and ``pytest_plugins`` in a test module fails if the harness was already imported):

* ``prometheus_binary`` (session): the ``prometheus``/``promtool`` pair; fails where they are missing,
  because the metric tests are part of what the README promises (``make test`` installs them as root,
  else names the command), unless ``FINOPS_SKIP_PROMETHEUS_TESTS=1`` asks for a skip, which is then
  repeated at the end of the run;
* ``make_prometheus`` (function): factory ``make_prometheus(targets=..., history=...)`` returning a
  started, ready :class:`PrometheusServer` that is stopped after the test;
* ``dcgm_exporter`` (function): a running simulated-GPU exporter;
* ``gpu_prometheus`` (function): a Prometheus scraping ``dcgm_exporter`` every second.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pytest

from tests.dcgm_exporter import DcgmExporter

SCRAPE_JOB = "dcgm-exporter"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
APT_HINT = "install Debian/Ubuntu's `prometheus` package: sudo apt-get install prometheus"
SKIP_ENV = "FINOPS_SKIP_PROMETHEUS_TESTS"


class PrometheusHarnessError(RuntimeError):
    """Prometheus (or promtool) did not do what the harness needed; the message carries its log."""


@dataclass(frozen=True)
class PrometheusBinaries:
    prometheus: Path
    promtool: Path


def find_binaries() -> PrometheusBinaries | None:
    """Both binaries from PATH, or None: seeding needs promtool as much as serving needs prometheus."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        return None
    return PrometheusBinaries(Path(prometheus), Path(promtool))


# -- seeded history ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistorySeries:
    """One gauge series to backfill: ``samples`` are (unix seconds, value), oldest first.

    To continue a series that a live scrape will extend, include the scrape's ``job`` and ``instance``
    labels: Prometheus adds them to scraped samples, and a series is identified by all its labels.
    """

    name: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _om_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics_text(series: Iterable[HistorySeries], *, now: float | None = None) -> str:
    """Render history in the OpenMetrics form promtool accepts, refusing what it would mangle silently.

    promtool's backfill quietly drops out-of-order samples and happily writes millisecond timestamps as
    blocks thousands of years in the future, so both are errors here rather than puzzles later.
    """
    now = time.time() if now is None else now
    families: dict[str, list[HistorySeries]] = {}
    for item in series:
        if not _METRIC_NAME.fullmatch(item.name):
            raise ValueError(f"invalid metric name {item.name!r}")
        for label in item.labels:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} on {item.name}")
        if not item.samples:
            raise ValueError(f"{item.name}{dict(item.labels)} has no samples")
        previous = -math.inf
        for timestamp, _ in item.samples:
            millis = round(timestamp * 1000)
            if not math.isfinite(timestamp) or millis <= previous:
                raise ValueError(
                    f"{item.name}{dict(item.labels)}: timestamps must be finite and strictly increasing "
                    f"(at millisecond precision); {timestamp} follows {previous / 1000}"
                )
            if timestamp > now:
                raise ValueError(
                    f"{item.name}{dict(item.labels)}: sample at {timestamp} is in the future; history must "
                    "predate the server's head (and timestamps are unix seconds, not milliseconds)"
                )
            previous = millis
        families.setdefault(item.name, []).append(item)
    # All series of a family must be contiguous under a single # TYPE line.
    lines: list[str] = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} gauge")
        for item in families[name]:
            labels = ",".join(f'{key}="{_om_escape(value)}"' for key, value in sorted(item.labels.items()))
            prefix = f"{name}{{{labels}}}" if labels else name
            lines += [f"{prefix} {_om_number(value)} {ts:.3f}" for ts, value in item.samples]
    lines.append("# EOF")  # mandatory: without it promtool refuses the whole file
    return "\n".join(lines) + "\n"


def seed_history(promtool: Path, series: Sequence[HistorySeries], data_dir: Path) -> list[Path]:
    """Write TSDB blocks for ``series`` into ``data_dir`` (before Prometheus starts there).

    Returns the created block directories. The OpenMetrics input goes next to ``data_dir``, not in it,
    so Prometheus never finds a stray file among its blocks.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}-history.om"
    source.write_text(openmetrics_text(series))
    before = {p for p in data_dir.iterdir() if (p / "meta.json").exists()}
    proc = subprocess.run(
        [str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # promtool reports some input errors on stderr yet still exits 0; an empty result is the tell.
    created = sorted({p for p in data_dir.iterdir() if (p / "meta.json").exists()} - before)
    if proc.returncode != 0 or not created:
        raise PrometheusHarnessError(
            f"promtool could not backfill {source} (exit {proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return created


# -- the server --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class PrometheusServer:
    """One Prometheus process with its own config, data directory and log under ``workdir``.

    ``targets`` are ``host:port`` pairs scraped every ``scrape_interval`` under job ``job``; ``history``
    is backfilled before start. ``start`` returns once the server is ready and, if there are targets,
    once each target's first scrape is queryable.
    """

    binaries: PrometheusBinaries
    workdir: Path
    targets: Sequence[str] = ()
    history: Sequence[HistorySeries] = ()
    scrape_interval: str = "1s"
    job: str = SCRAPE_JOB
    # Retention counts back from the newest block, and anything older is deleted at start-up, so seeded
    # history must fit inside it; Prometheus's default (15d) would silently drop older seeds.
    retention: str = "3650d"
    startup_timeout: float = 60
    port: int = 0
    seeded_blocks: list[Path] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def config(self) -> str:
        """The generated prometheus.yml (JSON is valid YAML, and needs no quoting rules)."""
        settings = {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval}
        scrape = {
            "job_name": self.job,
            "scrape_interval": self.scrape_interval,
            "scrape_timeout": self.scrape_interval,
            "static_configs": [{"targets": list(self.targets)}],
        }
        return json.dumps({"global": settings, "scrape_configs": [scrape] if self.targets else []}, indent=2)

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("Prometheus is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config())
        if self.history:
            self.seeded_blocks = seed_history(self.binaries.promtool, self.history, self.data_dir)
        for attempt in range(3):  # another process may grab the free port before Prometheus binds it
            self.port = _free_port()
            self._spawn(config)
            try:
                self._wait_ready()
                break
            except PrometheusHarnessError:
                self.stop()
                if attempt == 2 or "address already in use" not in self.log():
                    raise
        try:
            self._wait_targets_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, config: Path) -> None:
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(self.binaries.prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code = self._process.returncode
                raise PrometheusHarnessError(
                    f"Prometheus exited with {code} at start-up:\n{self.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise PrometheusHarnessError(
            f"Prometheus not ready after {self.startup_timeout}s:\n{self.log()[-4000:]}"
        )

    def _wait_targets_up(self) -> None:
        if not self.targets:
            return
        deadline = time.monotonic() + self.startup_timeout
        up: list[tuple[dict[str, str], float]] = []
        while time.monotonic() < deadline:
            up = self.query(f'up{{job="{self.job}"}} == 1')
            if len(up) == len(self.targets):
                return
            time.sleep(0.2)
        raise PrometheusHarnessError(
            f"targets {list(self.targets)} not all scraped successfully within {self.startup_timeout}s "
            f"(up: {up}); Prometheus log:\n{self.log()[-4000:]}"
        )

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM and wait (SIGKILL if it hangs), so no process, zombie or open log outlives the test."""
        process, log = self._process, self._log
        self._process = self._log = None
        try:
            if process is not None:
                if process.poll() is None:
                    process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
        finally:
            if log is not None:
                log.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- queries (independent of the operator's client, so tests can check that client against it) ---------

    def api(self, path: str, **params: str) -> Any:
        """GET an API path and return ``data`` of a successful answer."""
        body = _http_json(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=10)
        if body.get("status") != "success":
            raise PrometheusHarnessError(f"{path} {params} failed: {body}")
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Instant query, evaluated now: (labels, value) per series of the resulting vector."""
        data = self.api("/api/v1/query", query=promql)
        if data["resultType"] != "vector":
            raise PrometheusHarnessError(f"{promql!r} is a {data['resultType']}, not an instant vector")
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def wait_for_scrape(self, after: float | None = None, timeout: float = 30) -> None:
        """Wait until every target has been scraped by a scrape that *started* after ``after`` (default
        now), so whatever a test changed in an exporter before calling this is now in Prometheus."""
        after = time.time() if after is None else after
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamps = self.query(f'timestamp(up{{job="{self.job}"}})')
            if len(stamps) == len(self.targets) and all(ts > after for _, ts in stamps):
                return
            time.sleep(0.2)
        raise PrometheusHarnessError(f"no complete scrape after {after} within {timeout}s")


# -- pytest fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prometheus_binary() -> PrometheusBinaries:
    """The prometheus and promtool binaries. Missing, they fail the test: a skipped metric test would
    look like a pass. ``FINOPS_SKIP_PROMETHEUS_TESTS=1`` skips instead, for whoever means it."""
    found = find_binaries()
    if found is None:
        if os.environ.get(SKIP_ENV):
            pytest.skip(f"{SKIP_ENV} is set and prometheus/promtool are not on PATH")
        pytest.fail(
            f"prometheus/promtool not on PATH; {APT_HINT} (or set {SKIP_ENV}=1 to skip the metric tests)",
            pytrace=False,
        )
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it at the end, where nobody misses it, when metric tests were skipped on request."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SKIP_ENV in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "!", f"{len(skipped)} metric test(s) SKIPPED because {SKIP_ENV} is set: not tested", red=True
        )


MakePrometheus = Callable[..., PrometheusServer]


@pytest.fixture
def make_prometheus(
    prometheus_binary: PrometheusBinaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakePrometheus]:
    """Factory for started Prometheus servers; every one is stopped at teardown, and its log is shown if
    the test failed (pytest prints captured stdout of failed tests)."""
    servers: list[PrometheusServer] = []

    def make(
        *,
        targets: Sequence[str] = (),
        exporters: Sequence[DcgmExporter] = (),
        history: Sequence[HistorySeries] = (),
        **options: Any,
    ) -> PrometheusServer:
        server = PrometheusServer(
            prometheus_binary,
            tmp_path_factory.mktemp("prometheus"),
            targets=[*targets, *(exporter.target for exporter in exporters)],
            history=history,
            **options,
        )
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
            print(f"--- {server.log_path} (last 2000 chars) ---\n{server.log()[-2000:]}")


@pytest.fixture
def dcgm_exporter() -> Iterator[DcgmExporter]:
    """A running simulated-GPU exporter (no GPU involved); set pods with ``set_utilization``."""
    with DcgmExporter() as exporter:
        yield exporter


@pytest.fixture
def gpu_prometheus(make_prometheus: MakePrometheus, dcgm_exporter: DcgmExporter) -> PrometheusServer:
    """A real Prometheus scraping ``dcgm_exporter`` every second; point the operator at ``.url``."""
    return make_prometheus(exporters=[dcgm_exporter])
