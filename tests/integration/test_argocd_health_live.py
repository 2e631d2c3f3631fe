"""Every kind in every state it can be in, produced by the real operator on the real control plane, read
by our Argo CD health scripts with Argo CD's own Lua evaluator: the live check that the mapping in
docs/GITOPS.md holds for what the operator really writes.

The same objects are the testdata of the health and action tests in Argo CD's layout
(deploy/argocd/resource_customizations): ``FINOPS_ARGO_CAPTURE=1`` writes them there, so the testdata
are captured, never hand-written. GPU utilisation comes from the simulated DCGM exporter (no GPU here)
through a real Prometheus.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.devcluster.nodes import NodeSpec, node_manifest
from tests.argocd_lua import CUSTOMIZATIONS, KINDS, health_of, kind_dir
from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import policy
from tests.kube import REPO, Kube, drop_namespaces, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import PrometheusServer

# The first run builds argo-lua from source (about 6 min cold), then it is cached.
pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(1200)]

CAPTURE = os.environ.get("FINOPS_ARGO_CAPTURE") == "1"
GROUP_LABEL = "finops.dev/fleet-test"
REGION_KEY = "finops.dev/argo-region"
GPU = {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}}


def deployment(namespace: str, name: str, replicas: int, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, "tier": "inference"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "server", "image": "example/llm:1", "resources": GPU}],
                    **extra,
                },
            },
        },
    }


def region(name: str, node_region: str, binds: str) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "metadata": {"name": name},
        "spec": {
            "region": node_region,
            "nodeSelector": {"matchLabels": {"topology.kubernetes.io/region": node_region}},
            "namespaceSelector": {"matchLabels": {REGION_KEY: binds}},
            "enforcementMode": "Warn",
        },
    }


def namespace(name: str, binds: str | None = None) -> dict[str, Any]:
    labels = {REGION_KEY: binds} if binds else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def fleet(name: str, group: str, model: str, unready: bool = False, **rollout: Any) -> dict[str, Any]:
    labels = {"app": name, **({"finops.dev/simulate": "unready"} if unready else {})}
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "EdgeFleet",
        "metadata": {"name": name, "namespace": "argo-edge"},
        "spec": {
            "nodeSelector": {"matchLabels": {GROUP_LABEL: group}},
            "modelVersion": model,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "server", "image": f"example/llm:{model}", "resources": GPU}]
                },
            },
            "rollout": {"wavePercents": [25, 50, 100], "soakSeconds": 2, "waveTimeoutSeconds": 30, **rollout},
            "revisionHistoryLimit": 3,
        },
    }


def sites(group: str, count: int) -> list[dict[str, Any]]:
    return [
        node_manifest(
            NodeSpec(
                f"argo-{group}-{i}",
                "eu-west-1",
                site=f"{group}-{i}",
                gpus=1,
                gpu_product="NVIDIA-L4",
                cpu="8",
                memory="32Gi",
                labels={GROUP_LABEL: f"argo-{group}"},
            )
        )
        for i in range(count)
    ]


class Capture:
    """Reads objects as Argo CD would see them and, with FINOPS_ARGO_CAPTURE=1, keeps them as testdata."""

    def __init__(self, kube: Kube, scratch: Path) -> None:
        self.kube, self.scratch = kube, scratch
        self.health_tests: dict[str, list[dict[str, Any]]] = {}
        if CAPTURE:
            for kind in KINDS:
                shutil.rmtree(kind_dir(kind) / "testdata", ignore_errors=True)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        args = [resource, name, *(["-n", namespace] if namespace else [])]
        obj = dict(self.kube.get_json(*args))
        obj["metadata"].pop("managedFields", None)
        return obj

    def keep(self, obj: dict[str, Any], directory: Path, state: str) -> None:
        if CAPTURE:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{state}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))

    def keep_for_action(
        self,
        obj: dict[str, Any],
        directory: Path,
        state: str,
        acted: str,
        change: Callable[[dict[str, Any]], None],
    ) -> None:
        """Keep ``obj`` as an action's input and, as its expected output, ``obj`` with ``change`` made."""
        self.keep(obj, directory, state)
        expected = copy.deepcopy(obj)
        change(expected)
        self.keep(expected, directory, acted)

    def write_health_tests(self) -> None:
        """health_test.yaml: the status each state must have (asserted live) and the operator's message."""
        if not CAPTURE:
            return
        source = Path(__file__).relative_to(REPO)
        header = f"# Objects in testdata/ are captured from the real operator ({source}).\n"
        for kind, tests in self.health_tests.items():
            text = yaml.safe_dump({"tests": tests}, sort_keys=False, width=200)
            (kind_dir(kind) / "health_test.yaml").write_text(header + text)

    def health(self, kind: str, resource: str, name: str, namespace: str | None = None) -> dict[str, str]:
        return health_of(kind, self.get(resource, name, namespace), self.scratch)

    def state(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        state: str,
        expected: str,
        *,
        until: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 90,
    ) -> dict[str, Any]:
        """Wait until the object is in ``state`` with Argo CD health ``expected``, keep and return it."""
        resource = f"{kind.lower()}.finops.dev"

        def reached() -> dict[str, Any] | None:
            obj = self.get(resource, name, namespace)
            seen = health_of(kind, obj, self.scratch)
            return obj if seen["status"] == expected and until(obj) else None

        obj = eventually(reached, timeout=timeout, what=f"{kind} {name}: {state} ({expected})")
        self.keep(obj, kind_dir(kind) / "testdata", state)
        self.health_tests.setdefault(kind, []).append(
            {"healthStatus": health_of(kind, obj, self.scratch), "inputPath": f"testdata/{state}.yaml"}
        )
        return obj


def set_paused(paused: bool) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["spec"]["rollout"].__setitem__("paused", paused)


def woken(obj: dict[str, Any]) -> None:
    obj["metadata"]["annotations"]["finops.dev/wake"] = "argocd"


def patch_fleet(kube: Kube, name: str, patch: str) -> None:
    kube.kubectl("patch", "edgefleet", "-n", "argo-edge", name, "--type=merge", "-p", patch)


def reason(obj: dict[str, Any], condition_type: str) -> str:
    return next((c["reason"] for c in obj["status"]["conditions"] if c["type"] == condition_type), "")


def test_each_kind_in_each_state_gets_the_health_docs_gitops_promises(
    kube: Kube, tmp_path: Path, dcgm_exporter: DcgmExporter, gpu_prometheus: PrometheusServer
) -> None:
    objects: list[dict[str, Any]] = [
        *(namespace(n) for n in ("argo-ok", "argo-budget", "argo-conflict", "argo-invalid", "argo-idle")),
        namespace("argo-edge"),
        namespace("argo-sov-ok", "eu"),
        namespace("argo-sov-bad", "eu-strict"),
        namespace("argo-sov-none", "nowhere"),
        namespace("argo-sov-contested", "contested"),
        deployment("argo-ok", "chat", 1),
        deployment("argo-budget", "chat", 1),
        deployment("argo-conflict", "chat", 1),
        deployment("argo-idle", "sleepy", 2),
        deployment("argo-sov-ok", "eu-model", 1, nodeSelector={"topology.kubernetes.io/region": "eu-west-1"}),
        deployment(
            "argo-sov-bad", "us-model", 1, nodeSelector={"topology.kubernetes.io/region": "us-east-1"}
        ),
        *sites("fleet", 4),
        *sites("rollback", 2),
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    eventually(
        lambda: len(kube.get_json("pods", "-n", "argo-idle", "-l", "app=sleepy")["items"]) == 2,
        timeout=60,
        what="sleepy pods",
    )
    for pod in kube.get_json("pods", "-n", "argo-idle", "-l", "app=sleepy")["items"]:
        dcgm_exporter.set_utilization("argo-idle", pod["metadata"]["name"], 2)
    gpu_prometheus.wait_for_scrape()

    custom: list[dict[str, Any]] = [
        policy("argo-ok", "governed", costLimits={"dailyGPUHours": 100}),
        policy("argo-budget", "spent", costLimits={"dailyGPUHours": 0.0005, "budgetAction": "BlockScaleUp"}),
        policy("argo-conflict", "team-a"),
        policy("argo-conflict", "team-b"),
        policy("argo-invalid", "bad-zone", budgetWindow={"timeZone": "Mars/Olympus_Mons"}),
        policy(
            "argo-idle",
            "idle-rules",
            optimizationRules={"idleShutdownThresholdMinutes": 1, "idleGPUUtilizationPercent": 5},
        ),
        region("argo-eu", "eu-west-1", "eu"),
        region("argo-eu-strict", "eu-west-1", "eu-strict"),
        region("argo-nowhere", "ap-south-1", "nowhere"),
        region("argo-rival-a", "eu-west-1", "contested"),
        region("argo-rival-b", "eu-west-1", "contested"),
        fleet("assistant", "argo-fleet", "v1"),
        fleet("flaky", "argo-rollback", "v1"),
    ]
    capture = Capture(kube, tmp_path)
    fop, sov, fleets = "FinOpsPolicy", "SovereignRegion", "EdgeFleet"
    args = ("--sample-interval", "1", "--prometheus-url", gpu_prometheus.url)
    with running_operator(kube, tmp_path, *args) as operator:
        kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(custom))
        capture.state(fop, "governed", "argo-ok", "healthy", "Healthy")
        capture.state(fop, "bad-zone", "argo-invalid", "invalid_time_zone", "Degraded")
        capture.state(fop, "team-a", "argo-conflict", "conflict", "Degraded")
        budget = capture.state(
            fop,
            "spent",
            "argo-budget",
            "budget_exhausted",
            "Healthy",
            until=lambda o: reason(o, "BudgetExceeded") == "BudgetExhausted",
        )
        assert "BudgetExhausted" in health_of(fop, budget, tmp_path)["message"]
        capture.state(
            sov,
            "argo-eu",
            None,
            "healthy",
            "Healthy",
            until=lambda o: reason(o, "Compliant") == "NoViolations",
        )
        capture.state(sov, "argo-eu-strict", None, "violations", "Degraded")
        capture.state(sov, "argo-nowhere", None, "no_matching_nodes", "Degraded")
        capture.state(sov, "argo-rival-a", None, "namespace_conflict", "Degraded")
        running = capture.state(fleets, "assistant", "argo-edge", "healthy", "Healthy")
        fleet_actions = kind_dir(fleets) / "actions" / "testdata"
        capture.keep_for_action(running, fleet_actions, "running", "running_paused", set_paused(True))
        capture.state(fleets, "flaky", "argo-edge", "healthy_before_rollback", "Healthy")

        # A new model version rolls out in waves (long soak so the wave is seen), then is paused.
        patch_fleet(kube, "assistant", '{"spec": {"modelVersion": "v2", "rollout": {"soakSeconds": 60}}}')
        capture.state(
            fleets,
            "assistant",
            "argo-edge",
            "wave_in_progress",
            "Progressing",
            until=lambda o: reason(o, "Progressing") == "WaveInProgress",
        )
        patch_fleet(kube, "assistant", '{"spec": {"rollout": {"paused": true}}}')
        paused = capture.state(fleets, "assistant", "argo-edge", "paused", "Suspended")
        capture.keep_for_action(paused, fleet_actions, "paused", "paused_resumed", set_paused(False))
        # A version whose server never becomes Ready fails its first wave and is rolled back.
        kube.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump(fleet("flaky", "argo-rollback", "v2", unready=True))
        )
        capture.state(
            fleets,
            "flaky",
            "argo-edge",
            "rolled_back",
            "Degraded",
            timeout=120,
            until=lambda o: reason(o, "Degraded") == "RolledBack",
        )

        # Idle shutdown: the Deployment the `wake` action applies to, and the policy reporting it.
        capture.state(
            fop,
            "idle-rules",
            "argo-idle",
            "idle",
            "Healthy",
            timeout=150,
            until=lambda o: reason(o, "Idle") == "WorkloadsIdle",
        )
        asleep = eventually(
            lambda: (d := capture.get("deployment", "sleepy", "argo-idle"))["spec"]["replicas"] == 0 and d,
            timeout=120,
            what="idle shutdown of sleepy",
        )
        wake_data = CUSTOMIZATIONS / "apps" / "Deployment" / "actions" / "testdata"
        capture.keep_for_action(asleep, wake_data, "idle_shutdown", "idle_shutdown_woken", woken)
        capture.keep(capture.get("deployment", "chat", "argo-ok"), wake_data, "running")
        assert "Traceback" not in operator.log(), operator.log()[-5000:]

    # With the operator stopped, a spec edit leaves observedGeneration behind: Argo CD must not say
    # Healthy for a generation nobody has reconciled.
    for kind, resource, name, ns, patch in (
        (fop, "fop", "governed", "argo-ok", '{"spec": {"costLimits": {"dailyGPUHours": 50}}}'),
        (sov, "sovereignregion", "argo-eu", None, '{"spec": {"allowedDataClassifications": ["public"]}}'),
        (fleets, "edgefleet", "assistant", "argo-edge", '{"spec": {"replicasPerSite": 2}}'),
    ):
        kube.kubectl("patch", resource, name, *(["-n", ns] if ns else []), "--type=merge", "-p", patch)
        behind = capture.state(kind, name, ns, "generation_behind", "Progressing")
        assert behind["status"]["observedGeneration"] < behind["metadata"]["generation"]
    capture.write_health_tests()

    with running_operator(kube, tmp_path, *args) as operator:  # the operator's finalizers go with it
        regions = [r["metadata"]["name"] for r in custom if r["kind"] == "SovereignRegion"]
        policies = ("argo-ok", "argo-budget", "argo-conflict", "argo-invalid", "argo-idle")
        kube.kubectl("delete", "sovereignregion", *regions, "--wait=false")
        kube.kubectl("delete", "edgefleet", "--all", "-n", "argo-edge", "--wait=false")
        for ns in policies:
            kube.kubectl("delete", "fop", "--all", "-n", ns, "--wait=false")

        def leftovers() -> list[str]:
            names = kube.kubectl("get", "sovereignregion", "-o", "name").split()
            names = [n for n in names if n.split("/")[1] in regions]
            names += kube.kubectl("get", "edgefleet", "-n", "argo-edge", "-o", "name").split()
            for ns in policies:
                names += kube.kubectl("get", "fop", "-n", ns, "-o", "name").split()
            return names

        eventually(lambda: not leftovers(), timeout=180, what=f"our objects gone (log: {operator.log_path})")
    # The fleet's namespace before its nodes: pods on a deleted kwok node wait for the pod GC.
    drop_namespaces(kube, "argo-edge")
    kube.kubectl("delete", "node", "-l", f"{GROUP_LABEL} in (argo-fleet,argo-rollback)", "--wait=false")
