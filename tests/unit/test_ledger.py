"""The GPU-hour ledger: overlap arithmetic, pricing, windows, idempotence, restarts and finalizer release,
and its error against the exact integral of a random pod timeline sampled like the operator does."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from finops_operator.api.finopspolicy import Pricing
from finops_operator.planners.policy.ledger import (
    Ledger,
    LedgerAdvance,
    LedgerPod,
    advance_ledger,
    gpu_hours_between,
    hourly_rate,
)

WINDOW_START = datetime(2026, 11, 22, tzinfo=UTC)
NOW = WINDOW_START + timedelta(hours=10)
H = timedelta(hours=1)
M = timedelta(minutes=1)
PRICING = Pricing.model_validate({"gpuHourlyRate": 2.0, "gpuProductRates": {"NVIDIA-H100": 10.0}})
NODES = {"h100-node": "NVIDIA-H100", "a100-node": "NVIDIA-A100"}


def pod(
    name: str,
    gpus: int = 1,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    node_name: str | None = None,
    has_finalizer: bool = False,
) -> LedgerPod:
    return LedgerPod(
        "ns",
        name,
        gpus=gpus,
        node_name=node_name,
        running_since=start,
        ended_at=end,
        has_finalizer=has_finalizer,
    )


def advance(
    pods: Mapping[str, Sequence[LedgerPod]],
    now: datetime = NOW,
    previous: Ledger | None = None,
    window_start: datetime = WINDOW_START,
    pricing: Pricing | None = None,
) -> LedgerAdvance:
    return advance_ledger(
        previous=previous,
        window_start=window_start,
        pods_by_workload=pods,
        gpu_product_of_node=NODES,
        pricing=pricing,
        now=now,
    )


# --- overlap arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param(
            pod("p", 2, WINDOW_START - 2 * H, WINDOW_START + 3 * H), 6.0, id="started-before-window"
        ),
        pytest.param(pod("p", 4, WINDOW_START + H, WINDOW_START + 90 * M), 2.0, id="inside-window"),
        pytest.param(pod("p", 2, NOW - 2 * H), 4.0, id="running-across-now"),
        pytest.param(pod("p", 1, WINDOW_START - 5 * H), 10.0, id="running-whole-window"),
        pytest.param(pod("p", 1, NOW - H, NOW + 30 * M), 1.0, id="deletion-timestamp-in-grace-period"),
        pytest.param(pod("p", 3), 0.0, id="pending"),
        pytest.param(pod("p", 3, end=NOW - H), 0.0, id="deleted-while-pending"),
        pytest.param(pod("p", 0, WINDOW_START), 0.0, id="zero-gpus"),
        pytest.param(pod("p", -1, WINDOW_START), 0.0, id="negative-gpus"),
        pytest.param(pod("p", 8, WINDOW_START - 3 * H, WINDOW_START - H), 0.0, id="ended-before-window"),
        pytest.param(pod("p", 8, WINDOW_START - H, WINDOW_START), 0.0, id="ended-exactly-at-window-start"),
        pytest.param(pod("p", 8, NOW + H), 0.0, id="starts-after-now"),
        pytest.param(pod("p", 8, NOW - H, NOW - 2 * H), 0.0, id="end-before-start"),
    ],
)
def test_gpu_hours_between_is_the_overlap_with_the_interval(facts: LedgerPod, expected: float) -> None:
    assert gpu_hours_between(facts, WINDOW_START, NOW) == pytest.approx(expected)
    ledger = advance({"w": [facts]}).ledger
    assert ledger.gpu_hours == pytest.approx(expected)
    assert ledger.accounted_until == NOW
    assert ledger.by_workload.get("w", 0.0) == pytest.approx(expected)


def test_sums_workloads_and_reports_the_running_burn_rate() -> None:
    pods = {
        "llm-a": [pod("a-1", 2, WINDOW_START - H), pod("a-2", 2, NOW - H, NOW - 30 * M), pod("a-3", 2)],
        "llm-b": [pod("b-1", 1, NOW - 3 * H), pod("b-2", 0, NOW - 3 * H)],
        "empty": [],
    }
    result = advance(pods)
    assert result.ledger.by_workload == pytest.approx({"llm-a": 20.0 + 1.0, "llm-b": 3.0})
    assert result.ledger.gpu_hours == pytest.approx(24.0)
    assert "empty" not in result.ledger.by_workload
    # Running now: a-1 (2) and b-1 (1); pending a-3, ended a-2 and 0-GPU b-2 do not burn.
    assert result.running_gpus == 3
    assert result.cost_per_hour == 0.0
    assert result.ledger.cost == 0.0


# --- pricing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pricing", "product", "rate"),
    [
        pytest.param(None, "NVIDIA-H100", 0.0, id="no-pricing"),
        pytest.param(PRICING, "NVIDIA-H100", 10.0, id="priced-product"),
        pytest.param(PRICING, "NVIDIA-A100", 2.0, id="unpriced-product-default"),
        pytest.param(PRICING, None, 2.0, id="unknown-node-default"),
        pytest.param(
            Pricing.model_validate({"gpuHourlyRate": 2.0, "gpuProductRates": {"T4": 0.0}}),
            "T4",
            0.0,
            id="free-product-is-not-default",
        ),
    ],
)
def test_hourly_rate(pricing: Pricing | None, product: str | None, rate: float) -> None:
    assert hourly_rate(pricing, product) == rate


@pytest.mark.parametrize(
    ("node", "cost", "per_hour"),
    [
        pytest.param("h100-node", 2 * 3 * 10.0, 2 * 10.0, id="product-rate"),
        pytest.param("a100-node", 2 * 3 * 2.0, 2 * 2.0, id="default-rate-for-unpriced-product"),
        pytest.param("cpu-node", 2 * 3 * 2.0, 2 * 2.0, id="default-rate-for-unlabelled-node"),
        pytest.param(None, 2 * 3 * 2.0, 2 * 2.0, id="default-rate-without-node"),
    ],
)
def test_cost_uses_the_rate_of_the_pods_node(node: str | None, cost: float, per_hour: float) -> None:
    result = advance({"w": [pod("p", 2, NOW - 3 * H, node_name=node)]}, pricing=PRICING)
    assert result.ledger.gpu_hours == pytest.approx(6.0)
    assert result.ledger.cost == pytest.approx(cost)
    assert result.cost_per_hour == pytest.approx(per_hour)


def test_mixed_products_are_priced_per_pod() -> None:
    pods = {
        "w": [
            pod("h", 1, NOW - 2 * H, node_name="h100-node"),
            pod("a", 4, NOW - H, NOW - 30 * M, node_name="a100-node"),
        ]
    }
    result = advance(pods, pricing=PRICING)
    assert result.ledger.gpu_hours == pytest.approx(2.0 + 2.0)
    assert result.ledger.cost == pytest.approx(2.0 * 10.0 + 2.0 * 2.0)
    assert result.cost_per_hour == pytest.approx(10.0)  # the ended A100 pod no longer costs


# --- windows, idempotence, restarts ---------------------------------------------------------------


def test_a_new_window_drops_the_old_ledger_and_counts_from_its_start() -> None:
    yesterday = Ledger(
        window_start=WINDOW_START - timedelta(days=1),
        accounted_until=WINDOW_START - 2 * H,
        gpu_hours=50.0,
        cost=500.0,
        by_workload={"w": 40.0, "gone": 10.0},
    )
    result = advance({"w": [pod("p", 2, WINDOW_START - 5 * H)]}, now=WINDOW_START + 3 * H, previous=yesterday)
    assert result.ledger.window_start == WINDOW_START
    assert result.ledger.accounted_until == WINDOW_START + 3 * H
    assert result.ledger.gpu_hours == pytest.approx(6.0)  # only from the window start, not from 22:00
    assert result.ledger.by_workload == pytest.approx({"w": 6.0})
    assert result.ledger.cost == 0.0


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param({"w": [pod("p", 2, WINDOW_START + H)]}, id="running"),
        pytest.param({"w": [pod("p", 2, WINDOW_START + H, NOW - H)]}, id="ended"),
        pytest.param({"w": [pod("p", 2, NOW - H, NOW + H)]}, id="terminating"),
        pytest.param({"w": [pod("p", 2)]}, id="pending"),
    ],
)
def test_advancing_twice_to_the_same_instant_adds_nothing(pods: Mapping[str, Sequence[LedgerPod]]) -> None:
    first = advance(pods, pricing=PRICING)
    second = advance(pods, previous=first.ledger, pricing=PRICING)
    assert second.ledger == first.ledger
    third = advance(pods, previous=second.ledger, pricing=PRICING)
    assert third.ledger == first.ledger


def test_a_clock_going_back_adds_nothing_and_keeps_accounted_until() -> None:
    pods = {"w": [pod("p", 2, WINDOW_START)]}
    first = advance(pods)
    back = advance(pods, now=NOW - H, previous=first.ledger)
    assert back.ledger.gpu_hours == pytest.approx(first.ledger.gpu_hours)
    assert back.ledger.accounted_until == NOW
    forward = advance(pods, now=NOW + H, previous=back.ledger)
    assert forward.ledger.gpu_hours == pytest.approx(first.ledger.gpu_hours + 2.0)


@pytest.mark.parametrize("steps", [1, 2, 7, 60], ids=lambda n: f"{n}-steps")
def test_many_small_advances_equal_one_big_one(steps: int) -> None:
    pods = {
        "a": [pod("a-1", 2, WINDOW_START - H, WINDOW_START + 37 * M), pod("a-2", 1, WINDOW_START + 2 * H)],
        "b": [pod("b-1", 3, WINDOW_START + 13 * M, WINDOW_START + 4 * H + 11 * M, node_name="h100-node")],
    }
    ledger: Ledger | None = None
    for i in range(1, steps + 1):
        ledger = advance(
            pods, now=WINDOW_START + (NOW - WINDOW_START) * i / steps, previous=ledger, pricing=PRICING
        ).ledger
    once = advance(pods, pricing=PRICING).ledger
    assert ledger is not None
    assert ledger.accounted_until == once.accounted_until == NOW
    assert ledger.gpu_hours == pytest.approx(once.gpu_hours)
    assert ledger.cost == pytest.approx(once.cost)
    assert ledger.by_workload == pytest.approx(dict(once.by_workload))


def test_restart_counts_exactly_the_share_of_a_pod_deleted_while_down_and_releases_it_one_sample_later() -> (
    None
):
    t1 = WINDOW_START + 4 * H
    t15 = t1 + 30 * M
    t2 = t1 + H
    t3 = t2 + M
    running = pod("p", 2, WINDOW_START + H, has_finalizer=True)
    other = pod("q", 1, WINDOW_START + H, has_finalizer=True)
    persisted = advance({"w": [running, other]}, now=t1).ledger
    assert persisted.gpu_hours == pytest.approx(2 * 3.0 + 1 * 3.0)

    # Operator down from t1 to t2; p deleted at t1.5, still present thanks to its finalizer.
    deleted = replace(running, ended_at=t15)
    back = advance({"w": [deleted, other]}, now=t2, previous=persisted)
    assert back.ledger.gpu_hours - persisted.gpu_hours == pytest.approx(2 * 0.5 + 1 * 1.0)
    assert back.ledger.by_workload["w"] == pytest.approx(persisted.by_workload["w"] + 2.0)
    assert back.running_gpus == 1
    assert back.releasable == ()  # the ledger counting it is not persisted yet

    nxt = advance({"w": [deleted, other]}, now=t3, previous=back.ledger)
    assert nxt.releasable == (deleted,)
    assert nxt.ledger.gpu_hours - back.ledger.gpu_hours == pytest.approx(1 / 60)  # only q still runs


@pytest.mark.parametrize(
    ("ended_at", "releasable"),
    [
        pytest.param(NOW - 2 * H, True, id="ended-before-persisted-ledger"),
        pytest.param(NOW - H, True, id="ended-exactly-at-persisted-ledger"),
        pytest.param(NOW - 30 * M, False, id="ended-after-persisted-ledger"),
        pytest.param(NOW + M, False, id="terminating"),
        pytest.param(None, False, id="running"),
    ],
)
def test_only_pods_the_persisted_ledger_covers_are_releasable(
    ended_at: datetime | None, releasable: bool
) -> None:
    persisted = Ledger(window_start=WINDOW_START, accounted_until=NOW - H)
    facts = pod("p", 1, WINDOW_START, ended_at, has_finalizer=True)
    assert advance({"w": [facts]}, previous=persisted).releasable == ((facts,) if releasable else ())


def test_first_sample_of_a_window_releases_pods_ended_before_it() -> None:
    old = pod("old", 1, WINDOW_START - 3 * H, WINDOW_START - H, has_finalizer=True)
    fresh = pod("fresh", 1, WINDOW_START - 3 * H, WINDOW_START + H, has_finalizer=True)
    result = advance({"w": [old, fresh]}, now=WINDOW_START + 2 * H)
    assert result.releasable == (old,)
    assert result.ledger.gpu_hours == pytest.approx(1.0)


# --- error bound against a ground truth -----------------------------------------------------------

SAMPLE = timedelta(seconds=60)


@dataclass(frozen=True)
class _Life:
    workload: str
    name: str
    gpus: int
    node: str
    created: datetime
    started: datetime
    ended: datetime | None

    def seen_at(self, t: datetime) -> LedgerPod:
        return LedgerPod(
            "ns",
            self.name,
            gpus=self.gpus,
            node_name=self.node,
            running_since=self.started if self.started <= t else None,
            ended_at=self.ended if self.ended is not None and self.ended <= t else None,
            has_finalizer=True,
        )

    def exact_gpu_hours(self, since: datetime, until: datetime) -> float:
        start, end = max(self.started, since), min(self.ended or until, until)
        return self.gpus * max((end - start).total_seconds(), 0.0) / 3600


def _timeline(rng: random.Random, count: int) -> list[_Life]:
    lives = []
    for i in range(count):
        created = WINDOW_START + timedelta(seconds=rng.uniform(-3 * 3600, 11 * 3600))
        started = created + timedelta(seconds=rng.uniform(0, 600))
        duration = timedelta(seconds=rng.uniform(30, 6 * 3600))
        ended = started + duration if rng.random() < 0.8 else None
        lives.append(
            _Life(
                workload=f"w{i % 4}",
                name=f"pod-{i}",
                gpus=rng.choice([0, 1, 1, 2, 4, 8]),
                node=rng.choice([*NODES, "cpu-node"]),
                created=created,
                started=started,
                ended=ended,
            )
        )
    return lives


@pytest.mark.parametrize(
    ("seed", "downtime"),
    [
        pytest.param(1, None, id="seed1-always-up"),
        pytest.param(2, None, id="seed2-always-up"),
        pytest.param(3, (3 * H, 5 * H), id="seed3-down-2h"),
        pytest.param(4, (7 * H + 17 * M, 7 * H + 19 * M), id="seed4-down-2min"),
    ],
)
def test_ledger_matches_the_exact_integral_of_a_random_timeline(
    seed: int, downtime: tuple[timedelta, timedelta] | None
) -> None:
    rng = random.Random(seed)
    lives = _timeline(rng, 40)
    released: set[str] = set()
    ledger: Ledger | None = None
    t = WINDOW_START + timedelta(seconds=rng.uniform(0, 60))
    end = WINDOW_START + 12 * H
    max_gpus = 0
    samples: list[datetime] = []
    while t <= end:
        if downtime is None or not (WINDOW_START + downtime[0] <= t < WINDOW_START + downtime[1]):
            visible: dict[str, list[LedgerPod]] = {}
            for life in lives:
                if life.created <= t and life.name not in released:
                    visible.setdefault(life.workload, []).append(life.seen_at(t))
            result = advance(visible, now=t, previous=ledger, pricing=PRICING)
            max_gpus = max(max_gpus, result.running_gpus)
            released.update(p.name for p in result.releasable)
            ledger = result.ledger
            samples.append(t)
        t += SAMPLE
    assert ledger is not None
    last = samples[-1]

    truth = sum(life.exact_gpu_hours(WINDOW_START, last) for life in lives)
    truth_cost = sum(
        life.exact_gpu_hours(WINDOW_START, last) * hourly_rate(PRICING, NODES.get(life.node))
        for life in lives
    )
    one_sample = max_gpus * SAMPLE.total_seconds() / 3600
    assert truth > one_sample > 0  # the timeline is not trivial
    assert abs(ledger.gpu_hours - truth) <= one_sample
    assert ledger.gpu_hours == pytest.approx(truth, rel=1e-9)  # in fact exact, up to rounding
    assert ledger.cost == pytest.approx(truth_cost, rel=1e-9)
    for workload in {life.workload for life in lives}:
        expected = sum(
            life.exact_gpu_hours(WINDOW_START, last) for life in lives if life.workload == workload
        )
        assert ledger.by_workload.get(workload, 0.0) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # A pod is released at the first sample after the one whose ledger covers its end, and not before.
    for life in lives:
        covered = life.ended is not None and life.ended <= samples[-2]
        assert (life.name in released) == covered, life.name
