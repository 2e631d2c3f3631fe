"""A real Argo CD (v2.14 application-controller and repo-server, built from source and cached) against
the test cluster, with Debian's redis-server and a Git repository served by ``git daemon``, all on
127.0.0.1 (recipe: shared/notes/argocd.md). No API server, UI, Docker or GitHub is involved."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finops_operator.devcluster.argocd import ARGOCD, ARGOCD_MODULE, ARGOCD_VERSION
from finops_operator.devcluster.binaries import go_env
from finops_operator.devcluster.gotools import ensure_tool
from tests.argocd_lua import ARGOCD_CM
from tests.kube import REPO, Kube, eventually
from tests.operator_process import free_port

NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
APPLICATIONSET = REPO / "deploy" / "argocd" / "applicationset.yaml"
"""The documented ApplicationSet: its template's syncPolicy and ignoreDifferences are the ones tested."""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class GitRepo:
    """A working copy whose pushes go to a bare repository that ``git daemon`` serves."""

    work: Path
    url: str

    def commit(self, message: str) -> str:
        _git(self.work, "add", "-A")
        _git(self.work, "commit", "-q", "-m", message)
        _git(self.work, "push", "-q", "origin", "HEAD:main")
        return _git(self.work, "rev-parse", "HEAD").strip()


@dataclass
class ArgoCD:
    kube: Kube
    logs: Path

    def log(self, component: str) -> str:
        return (self.logs / f"{component}.log").read_text(errors="replace")

    def application(self, name: str) -> dict[str, Any]:
        return dict(self.kube.get_json("application.argoproj.io", "-n", NAMESPACE, name))

    def refresh(self, name: str) -> None:
        self.kube.kubectl(
            "annotate",
            "application.argoproj.io",
            "-n",
            NAMESPACE,
            name,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        )


def argocd_binary() -> Path:
    """Built on first use (about 13 min on 2 cores), cached afterwards; a missing Go fails loudly."""
    return ensure_tool(ARGOCD)


def _argocd_crds() -> list[Path]:
    info = json.loads(
        subprocess.run(
            ["go", "mod", "download", "-json", f"{ARGOCD_MODULE}@{ARGOCD_VERSION}"],
            env=go_env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    crds = Path(info["Dir"]) / "manifests" / "crds"
    return [crds / f"{name}-crd.yaml" for name in ("application", "applicationset", "appproject")]


def _settings() -> list[dict[str, Any]]:
    ours = yaml.safe_load(ARGOCD_CM.read_text())
    labels = {"app.kubernetes.io/part-of": "argocd"}
    meta = lambda name: {"name": name, "namespace": NAMESPACE, "labels": labels}  # noqa: E731
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("argocd-cm"), "data": ours["data"]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("argocd-rbac-cm")},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("argocd-cmd-params-cm")},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("argocd-secret"),
            "stringData": {"server.secretkey": "finops-test-only"},
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": NAMESPACE},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        },
    ]


@contextmanager
def _process(logs: Path, name: str, cmd: list[str], env: dict[str, str]) -> Iterator[None]:
    log = (logs / f"{name}.log").open("wb")
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=logs)
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextmanager
def git_server(root: Path, content: Path) -> Iterator[GitRepo]:
    """``content`` committed to ``policies.git``, served read-only on 127.0.0.1 by git daemon."""
    bare, work = root / "srv" / "policies.git", root / "work"
    bare.parent.mkdir(parents=True)
    _git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    shutil.copytree(content, work / content.name)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "remote", "add", "origin", str(bare))
    port = free_port()
    with ExitStack() as stack:
        cmd = [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={bare.parent}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(bare.parent),
        ]
        stack.enter_context(_process(root, "git-daemon", cmd, dict(os.environ)))
        repo = GitRepo(work, f"git://127.0.0.1:{port}/policies.git")
        repo.commit("policies")
        eventually(
            lambda: subprocess.run(["git", "ls-remote", repo.url], capture_output=True).returncode == 0,
            timeout=20,
            what="git daemon",
        )
        yield repo


def install_argocd(kube: Kube, logs: Path) -> dict[str, str]:
    """Argo CD's CRDs, settings and default project in the cluster; the environment its processes need
    (as in Argo CD's own local-development Procfile)."""
    for crd in _argocd_crds():
        kube.kubectl("apply", "--server-side", "-f", str(crd))
    names = [f"crd/{kind}.argoproj.io" for kind in ("applications", "applicationsets", "appprojects")]
    eventually(  # a CRD that has no status yet makes kubectl wait fail instead of waiting
        lambda: kube.kubectl("wait", "--for=condition=Established", *names, "--timeout=30s"),
        timeout=60,
        what="Argo CD's CRDs established",
    )
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(_settings()))
    for empty in ("tls", "ssh", "gnupg"):
        (logs / empty).mkdir(exist_ok=True)
    return {
        **kube.env,
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_TLS_DATA_PATH": str(logs / "tls"),
        "ARGOCD_SSH_DATA_PATH": str(logs / "ssh"),
        "ARGOCD_GNUPGHOME": str(logs / "gnupg"),
    }


@contextmanager
def running_applicationset_controller(kube: Kube, logs: Path) -> Iterator[None]:
    """Argo CD's applicationset-controller alone: generators render Applications into ``argocd``."""
    binary = argocd_binary()
    env = install_argocd(kube, logs)
    cmd = [
        str(binary),
        "--namespace",
        NAMESPACE,
        "--metrics-addr",
        f"127.0.0.1:{free_port()}",
        "--probe-addr",
        f"127.0.0.1:{free_port()}",
        "--webhook-addr",
        f"127.0.0.1:{free_port()}",
        "--enable-leader-election=false",
    ]
    with _process(
        logs,
        "applicationset-controller",
        cmd,
        {**env, "ARGOCD_BINARY_NAME": "argocd-applicationset-controller"},
    ):
        yield


@contextmanager
def running_argocd(kube: Kube, logs: Path) -> Iterator[ArgoCD]:
    """repo-server and application-controller (with redis) watching every Application in ``argocd``."""
    binary = argocd_binary()
    if not shutil.which("redis-server"):
        raise AssertionError("redis-server is not installed: apt-get install redis-server (.ci/run does)")
    env = install_argocd(kube, logs)
    redis, repo_server = free_port(), free_port()
    with ExitStack() as stack:
        stack.enter_context(
            _process(
                logs,
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(redis),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                env,
            )
        )
        stack.enter_context(
            _process(
                logs,
                "repo-server",
                [
                    str(binary),
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(repo_server),
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-port",
                    str(free_port()),
                    "--redis",
                    f"127.0.0.1:{redis}",
                    "--disable-tls",
                    "--revision-cache-expiration",
                    "5s",
                ],
                {**env, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
            )
        )
        stack.enter_context(
            _process(
                logs,
                "application-controller",
                [
                    str(binary),
                    "--namespace",
                    NAMESPACE,
                    "--redis",
                    f"127.0.0.1:{redis}",
                    "--repo-server",
                    f"127.0.0.1:{repo_server}",
                    "--repo-server-plaintext",
                    "--metrics-port",
                    str(free_port()),
                    "--status-processors",
                    "2",
                    "--operation-processors",
                    "2",
                    "--app-resync",
                    "10",
                    "--app-resync-jitter",
                    "0",
                ],
                {**env, "ARGOCD_BINARY_NAME": "argocd-application-controller"},
            )
        )
        yield ArgoCD(kube, logs)
