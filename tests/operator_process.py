"""Run the real operator (``python -m finops_operator run``) as a child process against a test cluster."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.kube import REPO, Kube, eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    health_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as rsp:
            return str(rsp.read().decode())

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def running_operator(
    kube: Kube, log_dir: Path, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    metrics_port, health_port = free_port(), free_port()
    log_path = log_dir / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "finops_operator",
                "run",
                "--metrics-port",
                str(metrics_port),
                "--health-port",
                str(health_port),
                *extra_args,
            ],
            env={**kube.env, "PYTHONPATH": f"{REPO / 'operator'}:{REPO}", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    operator = OperatorProcess(process, log_path, metrics_port, health_port)
    try:
        eventually(
            lambda: operator.process.poll() is None and operator.healthy(),
            timeout=60,
            what="operator /healthz",
        )
        yield operator
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
