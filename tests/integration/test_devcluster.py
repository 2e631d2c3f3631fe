"""`finops dev cluster up|status|env|down` on its own small cluster: nothing is left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.kube import REPO

PYTHONPATH = {"PYTHONPATH": f"{REPO / 'operator'}:{REPO}"}


def finops(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "finops_operator", "dev", "cluster", *args, "--dir", str(directory)],
        env={**os.environ, **PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=600,
    )


def processes_using(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(directory) in line]


def test_cluster_lifecycle_leaves_no_processes(tmp_path: Path) -> None:
    directory = tmp_path / "lifecycle"
    try:
        _lifecycle(directory)
    finally:  # even when an assertion fails, nothing may stay running
        finops("down", directory=directory)
    assert processes_using(directory) == []


def _lifecycle(directory: Path) -> None:
    up = finops("up", directory=directory)
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={directory / 'kubeconfig'}" in up.stdout
    assert len(processes_using(directory)) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    assert finops("status", directory=directory).stdout.strip() == "running"
    again = finops("up", directory=directory)  # idempotent
    assert "already running" in again.stderr
    assert (
        finops("env", directory=directory).stdout.strip() == f"export KUBECONFIG={directory / 'kubeconfig'}"
    )
    down = finops("down", directory=directory)
    assert down.returncode == 0, down.stderr
    assert processes_using(directory) == []
    assert not directory.exists()
    assert finops("status", directory=directory).returncode == 1
