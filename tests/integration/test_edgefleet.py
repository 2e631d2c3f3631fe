"""EdgeFleet against the real control plane with the real operator process and dozens of kwok edge
sites: per-site Deployments, waves with soak, offline tolerance, automatic rollback, pause/resume.

Each test creates its own single-node sites labeled ``finops.dev/fleet-test=<group>`` (no other test
selects them) and deletes its fleet and nodes at the end. A site goes offline the way a real one
does: kwok stops managing its node, and the node and its pods go NotReady (``tests/outages.py``).
A pod that lived through an outage is Ready again when its node is back. A "bad model version" carries
``finops.dev/simulate=unready`` on its pod template, which kwok's pod-unready stage keeps unready.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from finops_operator.devcluster.nodes import NodeSpec, node_manifest
from tests.kube import Kube, eventually
from tests.operator_process import OperatorProcess, running_operator
from tests.outages import bring_online, node_ready, take_offline

SAMPLE = 1.0  # seconds between reconciles of a fleet in these tests
GROUP_LABEL = "finops.dev/fleet-test"
FLEET_LABEL = "finops.dev/edgefleet"
REVISION_LABEL = "finops.dev/revision"
SIMULATE_LABEL = "finops.dev/simulate"


@pytest.fixture(scope="module")
def operator(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(kube, tmp_path_factory.mktemp("edgefleet"), "--sample-interval", str(SAMPLE)) as op:
        yield op
        assert "Traceback" not in op.log(), op.log()[-5000:]


# --- helpers ------------------------------------------------------------------------------------------


def apply(kube: Kube, *objects: dict[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def site_nodes(group: str, count: int, first: int = 0) -> list[NodeSpec]:
    return [
        NodeSpec(
            f"ef-{group}-{i:02d}",
            "eu-west-1",
            site=f"s{i:02d}",
            gpus=1,  # one accelerator per site, as at the edge: no room for a surge pod
            gpu_product="NVIDIA-L4",
            cpu="8",
            memory="32Gi",
            labels={GROUP_LABEL: group},
        )
        for i in range(first, first + count)
    ]


@contextmanager
def fleet_sites(kube: Kube, namespace: str, group: str, count: int) -> Iterator[list[str]]:
    """``count`` single-node sites for one test; the namespace stays, the fleet and nodes go."""
    kube.kubectl("create", "namespace", namespace, check=False)
    nodes = site_nodes(group, count)
    apply(kube, *(node_manifest(n) for n in nodes))
    try:
        eventually(
            lambda: sum(node_ready(kube, n.name) for n in nodes) == count, timeout=60, what="edge nodes Ready"
        )
        yield [n.name for n in nodes]
    finally:
        kube.kubectl("delete", "fop", "--all", "-n", namespace, "--timeout=60s")
        kube.kubectl("delete", "edgefleet", "--all", "-n", namespace, "--cascade=foreground", "--timeout=60s")
        eventually(
            lambda: not kube.get_json("pods", "-n", namespace)["items"], timeout=60, what="site pods gone"
        )
        kube.kubectl("delete", "node", "-l", f"{GROUP_LABEL}={group}", "--wait=false")


def fleet(namespace: str, name: str, group: str, model: str, **rollout: Any) -> dict[str, Any]:
    unready = rollout.pop("unready", False)
    labels = {"app": name, **({SIMULATE_LABEL: "unready"} if unready else {})}
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "EdgeFleet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeSelector": {"matchLabels": {GROUP_LABEL: group}},
            "modelVersion": model,
            "replicasPerSite": 1,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": f"example/llm:{model}",
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"nvidia.com/gpu": "1"},
                            },
                        }
                    ]
                },
            },
            "rollout": {
                "wavePercents": [10, 50, 100],
                "soakSeconds": 3,
                "waveTimeoutSeconds": 30,
                "maxFailedSitesPercent": 20,
                **rollout,
            },
            "offlineTolerance": {"maxOfflineSitesPercent": 30},
            "revisionHistoryLimit": 3,
        },
    }


def status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get_json("edgefleet", "-n", namespace, name).get("status") or {})


def condition(st: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions", []) if c["type"] == kind), {})


def site_deployments(kube: Kube, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    items = kube.get_json("deploy", "-n", namespace, "-l", f"{FLEET_LABEL}={name}")["items"]
    return {d["metadata"]["labels"]["finops.dev/site"]: d for d in items}


def revisions(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    return {
        s: d["metadata"]["labels"][REVISION_LABEL] for s, d in site_deployments(kube, namespace, name).items()
    }


def reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    items = kube.get_json(
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind=EdgeFleet,involvedObject.name={name}",
    )["items"]
    return [e["reason"] for e in sorted(items, key=lambda e: e.get("lastTimestamp") or "")]


def settled(kube: Kube, namespace: str, name: str, sites: int) -> dict[str, Any]:
    """Status once the fleet runs one revision everywhere and every online site is Ready."""

    def check() -> dict[str, Any] | None:
        st = status(kube, namespace, name)
        done = (
            st.get("stableRevision") is not None
            and st.get("stableRevision") == st.get("currentRevision")
            and st.get("sitesTotal") == sites
            and condition(st, "Ready").get("status") == "True"
            and condition(st, "Progressing").get("status") == "False"
        )
        return st if done else None

    result: dict[str, Any] = eventually(check, timeout=90, interval=0.5, what=f"{name} settled")
    return result


def watch_rollout(
    kube: Kube, namespace: str, name: str, until: str, timeout: float = 120
) -> list[dict[str, Any]]:
    """Status samples (with the monotonic time they were read) until Progressing has reason ``until``."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(kube, namespace, name)
        samples.append({"t": time.monotonic(), **st})
        if condition(st, "Progressing").get("reason") == until and len(samples) > 1:
            return samples
        time.sleep(0.3)
    raise AssertionError(f"{name}: Progressing never became {until}; last status {samples[-1]}")


def quiet(kube: Kube, namespace: str, name: str) -> None:
    """Reconciling again changes nothing: no write to the fleet or any of its Deployments."""

    def versions() -> dict[str, str]:
        fleet_rv = kube.get_json("edgefleet", "-n", namespace, name)["metadata"]["resourceVersion"]
        deploy = {
            s: d["metadata"]["resourceVersion"] for s, d in site_deployments(kube, namespace, name).items()
        }
        return {"fleet": fleet_rv, **deploy}

    before = versions()
    time.sleep(4 * SAMPLE)
    assert versions() == before


# --- tests --------------------------------------------------------------------------------------------


def test_rollout_in_waves_with_soak_and_offline_sites_that_catch_up(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace, name, group, count = "edgefleet-waves", "assistant", "waves", 20
    with fleet_sites(kube, namespace, group, count) as nodes:
        apply(
            kube,
            {
                "apiVersion": "finops.dev/v1alpha1",
                "kind": "FinOpsPolicy",
                "metadata": {"name": "edge-cost", "namespace": namespace},
                "spec": {"targetWorkloadSelector": {"matchLabels": {"tier": "edge-inference"}}},
            },
        )
        manifest = fleet(namespace, name, group, "v1")
        manifest["spec"]["finOpsPolicyRef"] = {"name": "edge-cost"}
        apply(kube, manifest)
        first = settled(kube, namespace, name, count)
        v1 = first["stableRevision"]

        # One Deployment per site: owned by the fleet, pinned to the site, labeled for the policy.
        deployments = site_deployments(kube, namespace, name)
        assert sorted(deployments) == [f"s{i:02d}" for i in range(count)]
        owner = kube.get_json("edgefleet", "-n", namespace, name)["metadata"]["uid"]
        for site, deployment in deployments.items():
            assert deployment["metadata"]["name"] == f"{name}-{site}"
            assert [o["uid"] for o in deployment["metadata"]["ownerReferences"]] == [owner]
            assert deployment["metadata"]["labels"]["tier"] == "edge-inference"
            assert deployment["spec"]["template"]["spec"]["nodeSelector"]["finops.dev/site"] == site
        pods = kube.get_json("pods", "-n", namespace, "-l", f"{FLEET_LABEL}={name}")["items"]
        assert {p["spec"]["nodeName"] for p in pods} == set(nodes)
        assert all(
            p["spec"]["nodeName"] == f"ef-{group}-{p['metadata']['labels']['finops.dev/site'][1:]}"
            for p in pods
        )
        quiet(kube, namespace, name)

        # Two sites lose power; a new model version starts a rollout.
        offline = [nodes[3], nodes[4]]
        take_offline(kube, *offline)
        eventually(
            lambda: status(kube, namespace, name).get("sitesOffline") == 2, timeout=20, what="2 offline"
        )
        kube.kubectl(
            "patch",
            "edgefleet",
            "-n",
            namespace,
            name,
            "--type=merge",
            "-p",
            '{"spec":{"modelVersion":"v2"}}',
        )
        samples = watch_rollout(kube, namespace, name, until="RolloutComplete")
        v2 = samples[-1]["stableRevision"]
        assert v2 != v1

        # Waves 1, 2, 3 in order: 2, 10, then 20 sites; each wave soaked before the next started.
        waves = [s["currentWave"] for s in samples if s.get("currentRevision") == v2 and s.get("currentWave")]
        assert sorted(set(waves)) == [1, 2, 3] and waves == sorted(waves)
        limits = {1: 2, 2: 10, 3: 20}
        assert all(s["sitesUpdated"] <= limits[s["currentWave"]] for s in samples if s.get("currentWave"))
        started = {w: min(s["t"] for s in samples if s.get("currentWave") == w) for w in (1, 2, 3)}
        assert started[2] - started[1] >= 3 - 0.5 and started[3] - started[2] >= 3 - 0.5
        # The offline sites were deferred to the last wave and tolerated (2 of 20 <= 30%).
        final = samples[-1]
        assert final["sitesOffline"] == 2 and final["sitesTotal"] == count
        assert condition(final, "Ready")["status"] == "True", final
        assert condition(final, "Degraded")["status"] == "False", final
        assert set(revisions(kube, namespace, name).values()) == {v2}  # offline ones keep their desired one
        history = reasons(kube, namespace, name)
        assert (
            "RolloutStarted" in history and history.count("WaveStarted") == 2 and "RolloutComplete" in history
        )

        # Back online: they run v2 and are Ready.
        bring_online(kube, *offline)
        eventually(
            lambda: (st := status(kube, namespace, name))["sitesOffline"] == 0 and st["sitesReady"] == count,
            timeout=60,
            what="returned sites Ready on v2",
        )

        # An outage with nothing to roll out: the site's pod lives through it and is Ready again after.
        def site_pods() -> list[str]:
            pods = kube.get_json("pods", "-n", namespace, "--field-selector", f"spec.nodeName={nodes[5]}")
            return [p["metadata"]["uid"] for p in pods["items"]]

        before = site_pods()
        take_offline(kube, nodes[5])
        eventually(lambda: status(kube, namespace, name)["sitesOffline"] == 1, timeout=20, what="1 offline")
        bring_online(kube, nodes[5])
        eventually(
            lambda: (st := status(kube, namespace, name))["sitesOffline"] == 0 and st["sitesReady"] == count,
            timeout=60,
            what="the returned site Ready with the pod it had",
        )
        assert site_pods() == before and len(before) == 1

        # Sites follow node labels: a new site gets a workload, an unlabeled one loses it.
        apply(kube, node_manifest(site_nodes(group, 1, first=count)[0]))
        eventually(
            lambda: f"s{count:02d}" in site_deployments(kube, namespace, name), timeout=30, what="new site"
        )
        assert revisions(kube, namespace, name)[f"s{count:02d}"] == v2
        kube.kubectl("label", "node", nodes[0], "finops.dev/site-")
        eventually(
            lambda: "s00" not in site_deployments(kube, namespace, name), timeout=30, what="site removed"
        )
        settled(kube, namespace, name, count)
        quiet(kube, namespace, name)


def test_failing_version_is_rolled_back_automatically_and_not_retried(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace, name, group, count = "edgefleet-rollback", "detector", "rollback", 10
    with fleet_sites(kube, namespace, group, count):
        apply(kube, fleet(namespace, name, group, "v1", wavePercents=[20, 100], soakSeconds=1))
        v1 = settled(kube, namespace, name, count)["stableRevision"]

        # v2's server never becomes Ready: wave 1 (2 sites) times out after 30 s and is rolled back.
        apply(kube, fleet(namespace, name, group, "v2", wavePercents=[20, 100], soakSeconds=1, unready=True))
        samples = watch_rollout(kube, namespace, name, until="RolledBack", timeout=90)
        assert max(s.get("sitesUpdated", 0) for s in samples if s.get("currentRevision") != v1) <= 2
        final = samples[-1]
        v2 = next(s["currentRevision"] for s in samples if s.get("currentRevision") not in (None, v1))
        assert final["stableRevision"] == v1 and final["currentRevision"] == v1
        degraded = condition(final, "Degraded")
        assert degraded["status"] == "True" and degraded["reason"] == "RolledBack"
        assert "2 of 2 site(s) failed" in final["lastRollbackReason"] and v2 in final["lastRollbackReason"]
        assert "RolledBack" in reasons(kube, namespace, name)
        assert final["failedRevision"] == v2

        # Every site is back on v1 and Ready; the rolled-back revision is not retried.
        eventually(
            lambda: set(revisions(kube, namespace, name).values()) == {v1}, timeout=30, what="all on v1"
        )
        eventually(lambda: status(kube, namespace, name)["sitesReady"] == count, timeout=30, what="all Ready")
        quiet(kube, namespace, name)
        assert set(revisions(kube, namespace, name).values()) == {v1}

        # A fixed version rolls out and clears Degraded.
        apply(kube, fleet(namespace, name, group, "v3", wavePercents=[20, 100], soakSeconds=1))
        v3 = watch_rollout(kube, namespace, name, until="RolloutComplete", timeout=90)[-1]["stableRevision"]
        assert v3 not in (v1, v2)
        st = settled(kube, namespace, name, count)
        assert condition(st, "Degraded")["status"] == "False"
        assert "failedRevision" not in st


def test_pause_holds_the_rollout_and_resume_continues(kube: Kube, operator: OperatorProcess) -> None:
    namespace, name, group, count = "edgefleet-pause", "translator", "pause", 10
    with fleet_sites(kube, namespace, group, count):
        waves = {"wavePercents": [30, 60, 100], "soakSeconds": 4}
        apply(kube, fleet(namespace, name, group, "v1", **waves))
        v1 = settled(kube, namespace, name, count)["stableRevision"]

        # Paused before it starts: the new revision is recorded, no site moves.
        apply(kube, fleet(namespace, name, group, "v2", paused=True, **waves))
        eventually(
            lambda: condition(status(kube, namespace, name), "Progressing").get("reason") == "Paused",
            timeout=20,
            what="Paused",
        )
        time.sleep(3 * SAMPLE)
        assert set(revisions(kube, namespace, name).values()) == {v1}

        # Resumed: wave 1 updates 3 sites; paused again during its soak, nothing more moves.
        apply(kube, fleet(namespace, name, group, "v2", paused=False, **waves))
        eventually(
            lambda: sum(r != v1 for r in revisions(kube, namespace, name).values()) == 3,
            timeout=20,
            what="wave 1",
        )
        apply(kube, fleet(namespace, name, group, "v2", paused=True, **waves))
        time.sleep(waves["soakSeconds"] + 3 * SAMPLE)
        st = status(kube, namespace, name)
        assert st["currentWave"] == 1 and st["sitesUpdated"] == 3, st
        assert condition(st, "Progressing")["reason"] == "Paused"

        apply(kube, fleet(namespace, name, group, "v2", paused=False, **waves))
        final = watch_rollout(kube, namespace, name, until="RolloutComplete")[-1]
        assert final["stableRevision"] != v1 and final["sitesUpdated"] == count
        assert len(final["revisions"]) == 2
