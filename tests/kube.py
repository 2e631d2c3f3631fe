"""Test access to a real Kubernetes API server: the local control plane, kind, or an existing cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finops_operator.devcluster.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]


class KubectlError(AssertionError):
    """kubectl failed; carries its stderr so assertions can quote what a user would see."""

    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed: {stderr}")
        self.stderr = stderr


@dataclass
class Kube:
    """A cluster the tests talk to with the same kubectl a user would type."""

    kubeconfig: Path
    provider: str
    control_plane: LocalCluster | None = None
    """The project's own control plane behind this cluster (provider ``local``): its components can
    be restarted. None for kind and existing clusters."""

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            [kubectl_binary(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(args, proc.stderr)
        return proc.stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


def kubectl_binary() -> str:
    from finops_operator.devcluster.binaries import locate

    found = locate("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found; install it or run `finops dev binaries`")
    return str(found)


def eventually(check: Callable[[], Any], timeout: float = 60, interval: float = 0.5, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (and return that), or fail with its last error."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check.__name__}: {last}")


NAMESPACE_CLEANUP_SECONDS = 120


def namespaces(kube: Kube) -> set[str]:
    return {item["metadata"]["name"] for item in kube.get_json("namespaces")["items"]}


def drop_namespaces(kube: Kube, *names: str) -> None:
    """Delete test namespaces and wait until they are gone. With the operator (and Argo CD) stopped
    nothing would release the finalizers of their objects (the GPU ledger's on pods, which hold their
    GPUs on the shared cluster's nodes; ours on policies; Argo CD's on Applications), so they are
    removed by hand, as the docs tell users to on uninstall."""
    kube.kubectl("delete", "namespace", "--wait=false", "--ignore-not-found", *sorted(names))
    kinds = ",".join(
        kube.kubectl("api-resources", "--verbs=list,patch", "--namespaced", "-o", "name").split()
    )
    unfinalized = json.dumps({"metadata": {"finalizers": None}})
    deadline = time.monotonic() + NAMESPACE_CLEANUP_SECONDS
    while remaining := set(names) & namespaces(kube):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"namespaces still terminating after {NAMESPACE_CLEANUP_SECONDS}s: {sorted(remaining)}"
            )
        for namespace in remaining:
            listed = kube.kubectl("get", kinds, "-n", namespace, "-o", "json", check=False)
            for item in json.loads(listed or "{}").get("items", []):
                if item["metadata"].get("finalizers"):
                    group = item["apiVersion"].rpartition("/")[0]
                    kind = f"{item['kind']}.{group}" if group else item["kind"]
                    name = item["metadata"]["name"]
                    kube.kubectl(
                        "patch", kind, name, "-n", namespace, "--type=merge", "-p", unfinalized, check=False
                    )
        time.sleep(1)


def docker_and_kind_work() -> bool:
    if not shutil.which("kind") or not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def install_crds(cluster: Kube) -> None:
    """The project's CRDs, established and discoverable."""
    cluster.kubectl("apply", "-k", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    # Discovery of the new kinds can lag Established by a moment.
    eventually(
        lambda: "finopspolicies" in cluster.kubectl("api-resources", "--api-group=finops.dev"),
        timeout=30,
        what="finops.dev discovery",
    )
