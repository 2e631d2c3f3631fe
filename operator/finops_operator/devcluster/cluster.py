"""Start and stop a real Kubernetes control plane on 127.0.0.1.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the genuine upstream
binaries; kwok plays the kubelets, so Deployments get ReplicaSets, pods are scheduled onto
simulated GPU nodes and become Ready. Everything listens on loopback only. The state of a cluster
(ports, process ids, kubeconfig) lives in one directory, so ``finops dev cluster down`` from another
shell, or a test session's tear-down, stops exactly what ``up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from finops_operator import certificates
from finops_operator.devcluster.binaries import Binaries, ensure_binaries, locate
from finops_operator.devcluster.nodes import (
    KWOK_ANNOTATION,
    KWOK_NODE_LABEL_SELECTOR,
    NodeSpec,
    default_nodes,
    node_manifest,
)

Progress = Callable[[str], None]
LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"
KWOK_STAGES = Path(__file__).with_name("kwok-stages.yaml")


def default_cluster_dir(name: str = "finops-dev") -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "finops-operator" / "clusters" / name


class ClusterError(RuntimeError):
    """The control plane did not come up; the message names the component and its log file."""


@dataclass
class ClusterState:
    """What ``up`` started; persisted as cluster.json so ``down`` can find it again."""

    directory: str
    api_port: int
    etcd_port: int
    pids: dict[str, int] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    """Each component's command line, so ``restart`` starts it again exactly as ``up`` did."""

    @property
    def kubeconfig(self) -> Path:
        return Path(self.directory) / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.api_port}"

    def save(self) -> None:
        (Path(self.directory) / "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        path = directory / "cluster.json"
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this very process) is not alive for our purposes.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _write_kubeconfig(path: Path, server: str, ca: Path, client: certificates.KeyPair) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "finops-dev", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(client.cert_path), "client-key": str(client.key_path)},
            }
        ],
        "contexts": [{"name": "finops-dev", "context": {"cluster": "finops-dev", "user": "admin"}}],
        "current-context": "finops-dev",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class LocalCluster:
    """One local control plane living in ``directory``."""

    def __init__(
        self, directory: Path, progress: Progress | None = None, controller_qps: int | None = None
    ) -> None:
        """``controller_qps``: the controller-manager's and scheduler's API rate (``--kube-api-qps``,
        burst twice that) instead of their defaults (20 and 50 per second), for benchmarks that
        create thousands of workloads and measure the operator, not how fast the cluster catches up."""
        self.directory = directory
        self.progress: Progress = progress or (lambda message: None)
        self.controller_qps = controller_qps
        self.state: ClusterState | None = ClusterState.load(directory)
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # started by this process: reaped on down

    # -- lifecycle ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        state = self.state
        if state is None or not state.pids:
            return False
        return all(self._alive(pid) for pid in state.pids.values()) and self._api_ready(state, timeout=2)

    def up(self, nodes: Sequence[NodeSpec] | None = None, binaries: Binaries | None = None) -> ClusterState:
        """Start every component (idempotent: an already-running cluster is returned as is)."""
        if self.is_running():
            assert self.state is not None
            self.progress(f"cluster already running at {self.state.server}")
            return self.state
        self.down(quiet=True)
        binaries = binaries or ensure_binaries(self.progress)
        self.directory.mkdir(parents=True, exist_ok=True)
        state = ClusterState(directory=str(self.directory), api_port=_free_port(), etcd_port=_free_port())
        self.state = state
        try:
            self._start(state, binaries)
            self._create_nodes(state, default_nodes() if nodes is None else nodes)
            self._wait_for_workload_readiness(state)
        except BaseException:
            self.down(quiet=True)
            raise
        self.progress(f"cluster ready: export KUBECONFIG={state.kubeconfig}")
        return state

    def down(self, quiet: bool = False) -> None:
        """Stop every component started by ``up`` and delete the cluster directory."""
        state = self.state or ClusterState.load(self.directory)
        if state:
            for name, pid in reversed(list(state.pids.items())):
                self._stop_process(name, pid)
        if (self.directory / "cluster.json").exists() or (self.directory / "pki").is_dir():
            shutil.rmtree(self.directory, ignore_errors=True)
        if not quiet:
            self.progress("cluster stopped")
        self.state = None

    def restart(self, component: str) -> None:
        """Stop one component (SIGTERM, as an upgrade or a node reboot does) and start it again with
        the same command line and data: etcd keeps its data directory, so the cluster's state
        survives. Returns once the API server is ready again (it is what every client reconnects to).
        """
        state = self.state
        if state is None:
            raise ClusterError("no local cluster to restart a component of")
        if component not in state.commands:
            known = ", ".join(state.commands) or "none recorded (started by an older version: recreate it)"
            raise ClusterError(f"no component {component!r} to restart; components: {known}")
        self._stop_process(component, state.pids[component])
        self.progress(f"restarting {component}")
        self._spawn(state, component, state.commands[component])
        if component == "etcd":
            self._wait("etcd", state, lambda: _http_ok(f"http://{LOOPBACK}:{state.etcd_port}/health"), 60)
        self._wait(component, state, lambda: self._api_ready(state, timeout=2), 120)

    # -- internals ---------------------------------------------------------------------------

    def _alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        return child.poll() is None if child else _alive(pid)

    def _stop_process(self, name: str, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(pid):
            self.progress(f"{name} ignored SIGTERM, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self._children.pop(pid, None)

    def _spawn(self, state: ClusterState, name: str, argv: list[str]) -> None:
        log = (Path(state.directory) / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self._children[process.pid] = process
        state.pids[name] = process.pid
        state.commands[name] = argv
        state.save()

    def _start(self, state: ClusterState, binaries: Binaries) -> None:
        root = Path(state.directory)
        pki_dir = root / "pki"
        for sub in (pki_dir, root / "logs", root / "etcd"):
            sub.mkdir(parents=True, exist_ok=True)
        self.progress("generating certificates")
        ca = certificates.make_ca(pki_dir, "cluster-ca")
        serving = certificates.issue(
            ca,
            pki_dir,
            "apiserver",
            common_name="kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(LOOPBACK, SERVICE_IP),
            server=True,
        )
        admin = certificates.issue(
            ca, pki_dir, "admin", common_name="admin", organization="system:masters", client=True
        )
        service_accounts = certificates.make_service_account_keys(pki_dir)
        _write_kubeconfig(state.kubeconfig, state.server, ca.cert_path, admin)

        self.progress(f"starting etcd on {LOOPBACK}:{state.etcd_port}")
        peer_port = _free_port()
        self._spawn(
            state,
            "etcd",
            [
                str(binaries.etcd),
                "--name=finops-dev",
                f"--data-dir={root / 'etcd'}",
                f"--listen-client-urls=http://{LOOPBACK}:{state.etcd_port}",
                f"--advertise-client-urls=http://{LOOPBACK}:{state.etcd_port}",
                f"--listen-peer-urls=http://{LOOPBACK}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer_port}",
                f"--initial-cluster=finops-dev=http://{LOOPBACK}:{peer_port}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", state, lambda: _http_ok(f"http://{LOOPBACK}:{state.etcd_port}/health"), 60)

        self.progress(f"starting kube-apiserver on {state.server}")
        self._spawn(
            state,
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://{LOOPBACK}:{state.etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={state.api_port}",
                f"--tls-cert-file={serving.cert_path}",
                f"--tls-private-key-file={serving.key_path}",
                f"--client-ca-file={ca.cert_path}",
                f"--service-account-key-file={service_accounts.cert_path}",
                f"--service-account-signing-key-file={service_accounts.key_path}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--event-ttl=2h",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", state, lambda: self._api_ready(state, timeout=2), 120)

        kubeconfig = str(state.kubeconfig)
        self.progress("starting kube-controller-manager and kube-scheduler")
        self._spawn(
            state,
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={_free_port()}",
                "--leader-elect=false",
                f"--service-account-private-key-file={service_accounts.key_path}",
                f"--root-ca-file={ca.cert_path}",
                "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle",
                "--node-monitor-grace-period=20s",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--horizontal-pod-autoscaler-sync-period=5s",
                *self._rate_flags(),
                "--v=1",
            ],
        )
        self._spawn(
            state,
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={_free_port()}",
                "--leader-elect=false",
                *self._rate_flags(),
                "--v=1",
            ],
        )
        self.progress("starting kwok (simulated kubelets)")
        self._spawn(
            state,
            "kwok",
            [
                str(binaries.kwok),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--manage-nodes-with-label-selector={KWOK_NODE_LABEL_SELECTOR}",
                "--node-lease-duration-seconds=40",
                f"--server-address={LOOPBACK}:{_free_port()}",
                "--cidr=10.244.0.0/16",
                f"--node-ip={LOOPBACK}",
                f"--config={KWOK_STAGES}",
            ],
        )
        for name, pid in state.pids.items():
            if not self._alive(pid):
                raise ClusterError(f"{name} exited at start-up; see {root / 'logs' / (name + '.log')}")

    def _rate_flags(self) -> list[str]:
        qps = self.controller_qps
        return [] if qps is None else [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"]

    def _api_ready(self, state: ClusterState, timeout: float) -> bool:
        context = ssl.create_default_context(cafile=str(Path(state.directory) / "pki" / "cluster-ca.crt"))
        pki_dir = Path(state.directory) / "pki"
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        return _http_ok(f"{state.server}/readyz", context=context, timeout=timeout)

    def _wait(self, name: str, state: ClusterState, check: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid = state.pids.get(name)
            if pid is not None and not self._alive(pid):
                raise ClusterError(f"{name} exited; see {Path(state.directory) / 'logs' / (name + '.log')}")
            if check():
                return
            time.sleep(0.25)
        raise ClusterError(
            f"{name} not ready after {seconds:.0f}s; see {Path(state.directory) / 'logs' / (name + '.log')}"
        )

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run the cluster's kubectl (used for node creation and by the CLI's status output)."""
        assert self.state is not None
        kubectl = locate("kubectl") or "kubectl"
        proc = subprocess.run(
            [str(kubectl), f"--kubeconfig={self.state.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _create_nodes(self, state: ClusterState, nodes: Sequence[NodeSpec]) -> None:
        if not nodes:
            return
        self.progress(f"creating {len(nodes)} kwok nodes")
        documents = yaml.safe_dump_all([node_manifest(node) for node in nodes])
        self.kubectl("apply", "-f", "-", stdin=documents)

    def add_nodes(self, nodes: Sequence[NodeSpec]) -> None:
        assert self.state is not None
        self._create_nodes(self.state, nodes)

    def _wait_for_workload_readiness(self, state: ClusterState) -> None:
        """Pods can only be created once the service-account controller made ``default`` accounts."""
        self._wait(
            "kube-controller-manager",
            state,
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False) != "",
            120,
        )
        self._wait(
            "kwok",
            state,
            lambda: (
                "True"
                in self.kubectl(
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
                    check=False,
                )
            ),
            60,
        )


def _http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False
