"""EdgeFleet rollout: time to roll a new model version out to 500 sites, and the API writes it costs,
with the wave planner vs. two baselines measured in the same run: one site at a time (safest, slowest)
and everything at once (fastest, no blast-radius control). Also: how many sites a bad version reaches
before it is rolled back.

Part 1 runs the pure planner on a simulated clock (a reconcile every ``--tick`` seconds, pods Ready one
tick after their Deployment changes) and counts the writes the handler would make: Deployment applies
that change something, status patches, ControllerRevision creates/deletes, Events. Part 2 (with
``--cluster-sites N``) does the same against the real local control plane with the real operator and
counts the API server's own request metrics.

    python benchmarks/fleet_rollout.py [--sites 500] [--tick 30] [--soak 300] [--cluster-sites 30]

Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus  # noqa: E402
from finops_operator.planners.fleet import (  # noqa: E402
    RevisionContent,
    RolloutObservation,
    SiteFacts,
    SiteNode,
    SiteWorkload,
    plan_rollout,
    revision_of,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "server", "image": "example/llm:1"}]}}


def make_spec(model: str, *, waves: list[int], soak: int, unready: bool = False) -> EdgeFleetSpec:
    labels = {"app": "assistant", **({"finops.dev/simulate": "unready"} if unready else {})}
    return EdgeFleetSpec.model_validate(
        {
            "nodeSelector": {"matchLabels": {"finops.dev/edge": "true"}},
            "modelVersion": model,
            "template": {**TEMPLATE, "metadata": {"labels": labels}},
            "rollout": {
                "wavePercents": waves,
                "soakSeconds": soak,
                "waveTimeoutSeconds": 1800,
                "maxFailedSitesPercent": 20,
            },
        }
    )


@dataclass
class Sim:
    """A simulated cluster applying plans as the handler does; writes counted by kind."""

    spec: EdgeFleetSpec
    sites: dict[str, SiteFacts]
    tick: timedelta
    now: datetime = T0
    status: EdgeFleetStatus = field(default_factory=EdgeFleetStatus)
    workloads: dict[str, SiteWorkload] = field(default_factory=dict)
    contents: dict[str, RevisionContent] = field(default_factory=dict)
    failed: str | None = None
    broken: set[str] = field(default_factory=set)
    writes: Counter[str] = field(default_factory=Counter)
    plan_seconds: list[float] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    """Sites that ever ran a broken revision (blast radius)."""

    def step(self) -> None:
        for name, workload in self.workloads.items():
            healthy = workload.revision not in self.broken
            if healthy and not workload.ready:
                self.workloads[name] = replace(workload, ready=True, ready_since=self.now)
        observation_status = self.status
        started = time.perf_counter()
        plan = plan_rollout(
            self.spec,
            RolloutObservation(
                generation=1,
                current_status=observation_status,
                sites=self.sites,
                site_workloads=dict(self.workloads),
                revision_contents=dict(self.contents),
                failed_revision=self.failed,
            ),
            self.now,
        )
        self.plan_seconds.append(time.perf_counter() - started)
        if plan.status.to_wire() != self.status.to_wire():
            self.writes["status patch"] += 1
        if plan.failed_revision != self.failed:
            self.writes["fleet annotation"] += 1
        self.status, self.failed = plan.status, plan.failed_revision
        self.writes["revision create"] += len(plan.revisions_to_store)
        self.contents.update(plan.revisions_to_store)
        pruned = [r for r in self.contents if r not in plan.revisions_to_keep]
        self.writes["revision delete"] += len(pruned)
        for revision in pruned:
            del self.contents[revision]
        for apply in plan.workloads_to_apply:
            old = self.workloads.get(apply.site)
            if old is None or old.revision != apply.revision:  # unchanged manifests are not written
                self.writes["deployment apply"] += 1
                self.workloads[apply.site] = SiteWorkload(apply.revision, False, None, apply.updated_at)
                if apply.revision in self.broken:
                    self.reached.add(apply.site)
        self.writes["event"] += len(plan.events)
        self.now += self.tick

    def run_until(self, done: Callable[[Sim], bool], max_steps: int = 100_000) -> timedelta:
        started = self.now
        for _ in range(max_steps):
            if done(self):
                return self.now - started
            self.step()
        raise RuntimeError(f"not done after {max_steps} steps")

    def settled(self) -> bool:
        """Every site Ready on the stable revision, and that is the spec's (or the spec's was rolled back)."""
        target = self.status.stable_revision
        return (
            target is not None
            and (target == revision_of(self.spec) or self.failed == revision_of(self.spec))
            and self.status.current_wave == 0
            and all(w.revision == target and w.ready for w in self.workloads.values())
            and len(self.workloads) == len(self.sites)
        )


def fleet_of(count: int) -> dict[str, SiteFacts]:
    sites = {}
    for i in range(count):
        name = f"store-{i:04d}"
        node = SiteNode(f"{name}-node", {"finops.dev/edge": "true", "finops.dev/site": name}, True, T0)
        sites[name] = SiteFacts(name, (node,), True, T0)
    return sites


def deployed(count: int, waves: list[int], soak: int, tick: float) -> Sim:
    sim = Sim(make_spec("v1", waves=waves, soak=soak), fleet_of(count), timedelta(seconds=tick))
    sim.run_until(Sim.settled)
    sim.writes.clear()
    sim.plan_seconds.clear()
    return sim


@dataclass(frozen=True)
class Result:
    name: str
    duration: timedelta
    writes: Counter[str]
    reached: int = 0

    @property
    def total(self) -> int:
        return sum(self.writes.values())


def planner_rollout(count: int, waves: list[int], soak: int, tick: float, name: str) -> tuple[Result, Sim]:
    sim = deployed(count, waves, soak, tick)
    sim.spec = make_spec("v2", waves=waves, soak=soak)
    duration = sim.run_until(Sim.settled)
    return Result(name, duration, Counter(sim.writes)), sim


def one_at_a_time(count: int, soak: int, tick: float) -> Result:
    """Baseline: update one site, wait for it to be Ready and soak, then the next; same tick model,
    one status patch per step that changes progress, one Deployment write per site."""
    step = timedelta(seconds=tick)
    now, writes = T0, Counter[str]()
    for _ in range(count):
        writes["deployment apply"] += 1
        writes["status patch"] += 2  # site updated, site soaked
        now += step  # Ready one tick after the update
        ticks_to_soak = -(-soak // int(tick)) if soak else 0
        now += step * ticks_to_soak
    writes["event"] += 2
    return Result("one site at a time", now - T0, writes)


def bad_version(count: int, waves: list[int], soak: int, tick: float, name: str) -> Result:
    """A version whose pods never become Ready: time until every site is back, sites it reached."""
    sim = deployed(count, waves, soak, tick)
    sim.spec = make_spec("v2-bad", waves=waves, soak=soak, unready=True)
    sim.broken = {revision_of(sim.spec)}
    duration = sim.run_until(lambda s: s.failed is not None and s.settled())
    return Result(name, duration, Counter(sim.writes), len(sim.reached))


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:7.2f} h"


def report_planner(args: argparse.Namespace) -> None:
    count, soak, tick = args.sites, args.soak, args.tick
    print(f"== planner, simulated clock: {count} sites, reconcile every {tick:g}s, soak {soak}s ==")
    waves, sim = planner_rollout(count, [10, 50, 100], soak, tick, "waves 10/50/100%")
    at_once, _ = planner_rollout(count, [100], 0, tick, "all at once")
    serial = one_at_a_time(count, soak, tick)
    for result in (waves, at_once, serial):
        detail = ", ".join(f"{k} {v}" for k, v in sorted(result.writes.items()))
        print(f"  {result.name:22s} {_hours(result.duration)}  {result.total:5d} writes ({detail})")
    print(
        f"  waves vs one-at-a-time: {serial.duration / waves.duration:6.1f}x faster, "
        f"{serial.total / max(waves.total, 1):4.2f}x fewer writes"
    )
    print(
        f"  waves vs all-at-once:   {waves.duration / at_once.duration:6.1f}x slower, "
        f"{waves.total / max(at_once.total, 1):4.2f}x the writes"
    )
    mean = sum(sim.plan_seconds) / max(len(sim.plan_seconds), 1)
    print(
        f"  planning cost: {mean * 1000:.1f} ms per reconcile of {count} sites "
        f"(mean of {len(sim.plan_seconds)})"
    )

    bad_waves = bad_version(count, [10, 50, 100], soak, tick, "waves 10/50/100%")
    bad_once = bad_version(count, [100], 0, tick, "all at once")
    print("== a version that never becomes Ready (wave timeout 1800s, rollback above 20% failed) ==")
    for result in (bad_waves, bad_once):
        print(
            f"  {result.name:22s} reached {result.reached:4d} sites, all back on the stable revision "
            f"after {_hours(result.duration)}, {result.total} writes"
        )
    print(
        f"  blast radius, waves vs all-at-once: {bad_once.reached / max(bad_waves.reached, 1):.1f}x smaller"
    )


# --- part 2: the real local control plane ------------------------------------------------------------


@contextmanager
def local_cluster(sites: int) -> Iterator[dict[str, str]]:
    from finops_operator.devcluster.cluster import LocalCluster  # noqa: PLC0415
    from finops_operator.devcluster.nodes import NodeSpec  # noqa: PLC0415

    cluster = LocalCluster(
        Path(tempfile.mkdtemp(prefix="fleet-bench-")), progress=lambda m: print(f"  [cluster] {m}")
    )
    state = cluster.up()
    try:
        cluster.add_nodes(
            [
                NodeSpec(
                    f"bench-{i:03d}",
                    "eu-west-1",
                    site=f"s{i:03d}",
                    cpu="8",
                    memory="32Gi",
                    labels={"finops.dev/fleet-bench": "true"},
                )
                for i in range(sites)
            ]
        )
        cluster.kubectl("apply", "-k", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield {**os.environ, "KUBECONFIG": str(state.kubeconfig)}
    finally:
        cluster.down(quiet=True)


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    from finops_operator.devcluster.binaries import locate  # noqa: PLC0415

    binary = str(locate("kubectl") or "kubectl")
    done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


WRITE_VERBS = {"APPLY", "PATCH", "POST", "DELETE"}
"""The operator's verbs; PUT is the controllers' (e.g. Deployment status), not the operator's."""
RESOURCES = {"deployments", "controllerrevisions", "edgefleets"}


def request_counts(env: dict[str, str]) -> Counter[str]:
    """Write requests the API server served, by verb/resource[/subresource], from its own metrics."""
    counts: Counter[str] = Counter()
    for line in kubectl(env, "get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in RESOURCES:
            key = f"{labels['verb']} {labels['resource']}" + (
                f"/{labels['subresource']}" if labels.get("subresource") else ""
            )
            counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def fleet_manifest(model: str, waves: list[int], soak: int) -> str:
    return json.dumps(
        {
            "apiVersion": "finops.dev/v1alpha1",
            "kind": "EdgeFleet",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "nodeSelector": {"matchLabels": {"finops.dev/fleet-bench": "true"}},
                "modelVersion": model,
                "template": {
                    "metadata": {"labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "server", "image": f"example/llm:{model}"}]},
                },
                "rollout": {"wavePercents": waves, "soakSeconds": soak, "waveTimeoutSeconds": 300},
            },
        }
    )


def wait_settled(
    env: dict[str, str], sites: int, previous: str | None, timeout: float = 600
) -> tuple[float, str]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        st = (
            json.loads(kubectl(env, "get", "edgefleet", "-n", "default", "bench", "-o", "json")).get("status")
            or {}
        )
        conditions = {c["type"]: c for c in st.get("conditions", [])}
        if (
            st.get("stableRevision") not in (None, previous)
            and st.get("stableRevision") == st.get("currentRevision")
            and st.get("sitesUpdated") == sites
            and st.get("sitesReady") == sites
            and conditions.get("Progressing", {}).get("status") == "False"
        ):
            return time.monotonic() - started, str(st["stableRevision"])
        time.sleep(0.25)
    raise RuntimeError("fleet did not settle")


def report_cluster(sites: int, soak: int) -> None:
    print(f"== real control plane: {sites} kwok sites, real operator (--sample-interval 1), soak {soak}s ==")
    with local_cluster(sites) as env:
        log = Path(tempfile.mkdtemp(prefix="fleet-bench-op-")) / "operator.log"
        with log.open("wb") as out:
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "finops_operator",
                    "run",
                    "--sample-interval",
                    "1",
                    "--metrics-port",
                    "0",
                    "--health-port",
                    "0",
                ],
                env={**env, "PYTHONPATH": f"{REPO / 'operator'}:{REPO}"},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        try:
            kubectl(env, "apply", "-f", "-", stdin=fleet_manifest("v1", [100], 0))
            first, stable = wait_settled(env, sites, None)
            print(f"  first deployment to {sites} sites: {first:.1f}s")
            rows = []
            for name, model, waves, wave_soak in (
                ("waves 10/50/100%", "v2", [10, 50, 100], soak),
                ("all at once", "v3", [100], 0),
            ):
                before = request_counts(env)
                kubectl(env, "apply", "-f", "-", stdin=fleet_manifest(model, waves, wave_soak))
                seconds, stable = wait_settled(env, sites, stable)
                delta = request_counts(env) - before
                rows.append((name, seconds, delta))
            for name, seconds, delta in rows:
                detail = ", ".join(f"{k} {v}" for k, v in sorted(delta.items()))
                print(f"  {name:22s} {seconds:6.1f}s  {sum(delta.values()):4d} writes ({detail})")
            (_, waves_s, waves_d), (_, once_s, once_d) = rows
            print(
                f"  waves vs all-at-once: {waves_s / once_s:.1f}x the time "
                f"({2 * soak}s of it is soak), "
                f"{sum(waves_d.values()) / max(sum(once_d.values()), 1):.2f}x the writes"
            )
        finally:
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--tick", type=float, default=30, help="simulated seconds between reconciles")
    parser.add_argument("--soak", type=int, default=300, help="soak seconds per wave (simulation)")
    parser.add_argument("--cluster-sites", type=int, default=0, help="also run on a local control plane")
    parser.add_argument("--cluster-soak", type=int, default=3)
    args = parser.parse_args()
    report_planner(args)
    if args.cluster_sites:
        report_cluster(args.cluster_sites, args.cluster_soak)


if __name__ == "__main__":
    main()
