"""The thin client's token bucket (client-go's QPS/burst) on a pinned clock, and the settings that
configure it."""

from __future__ import annotations

import threading

import pytest

from finops_operator.kube import DEFAULT_BURST, DEFAULT_QPS, TokenBucket
from finops_operator.settings import SettingsError, load_settings


class Clock:
    """A pinned clock whose sleep moves it: a test of rates takes no wall time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(qps: float, burst: int) -> tuple[TokenBucket, Clock]:
    clock = Clock()
    return TokenBucket(qps, burst, clock=clock, sleep=clock.sleep), clock


def test_burst_requests_go_at_once_then_qps_per_second() -> None:
    limiter, clock = bucket(qps=10, burst=5)
    assert [limiter.wait() for _ in range(5)] == [0.0] * 5
    waits = [limiter.wait() for _ in range(10)]
    assert waits == pytest.approx([0.1] * 10)
    assert clock.now == pytest.approx(1001.0)  # 15 requests: 5 at once, 10 more in one second


@pytest.mark.parametrize(("qps", "burst", "requests"), [(50, 100, 2100), (5, 10, 60), (0.5, 1, 4)])
def test_n_requests_take_n_minus_burst_over_qps_seconds(qps: float, burst: int, requests: int) -> None:
    limiter, clock = bucket(qps, burst)
    for _ in range(requests):
        limiter.wait()
    assert clock.now - 1000.0 == pytest.approx((requests - burst) / qps)


def test_idle_time_refills_up_to_the_burst_and_no_more() -> None:
    limiter, clock = bucket(qps=10, burst=3)
    for _ in range(3):
        limiter.wait()
    clock.now += 60  # a minute idle is worth 600 tokens, but the bucket holds 3
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_waiting_callers_reserve_successive_slots() -> None:
    """Callers arriving together while the bucket is empty are spread 1/qps apart, in arrival order,
    not all released at the next token."""
    limiter, _ = bucket(qps=4, burst=1)
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_threads_share_one_rate() -> None:
    clock, lock = Clock(), threading.Lock()

    def sleep(seconds: float) -> None:  # recorded; the pinned clock does not move while threads wait
        with lock:
            clock.slept.append(seconds)

    limiter = TokenBucket(100, 10, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=lambda: [limiter.wait() for _ in range(20)]) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 100 requests at once against a bucket of 10: 90 waited, the last one 0.9 s (90 / 100 qps).
    assert len(clock.slept) == 90
    assert max(clock.slept) == pytest.approx(0.9)
    assert sorted(clock.slept) == pytest.approx([(i + 1) / 100 for i in range(90)])


@pytest.mark.parametrize(("qps", "burst"), [(0, 10), (-1, 10), (10, 0)])
def test_a_bucket_that_could_never_give_a_token_is_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="qps > 0 and burst >= 1"):
        TokenBucket(qps, burst)


def test_settings_default_to_the_clients_defaults() -> None:
    settings = load_settings()
    assert (settings.client_qps, settings.client_burst) == (DEFAULT_QPS, DEFAULT_BURST)


def test_qps_and_burst_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_CLIENT_QPS", "200")
    monkeypatch.setenv("FINOPS_CLIENT_BURST", "400")
    settings = load_settings()
    assert (settings.client_qps, settings.client_burst) == (200, 400)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FINOPS_CLIENT_QPS", "0", "client_qps (FINOPS_CLIENT_QPS): Input should be greater than 0"),
        ("FINOPS_CLIENT_QPS", "fast", "client_qps (FINOPS_CLIENT_QPS): Input should be a valid number"),
        ("FINOPS_CLIENT_BURST", "0", "client_burst (FINOPS_CLIENT_BURST): Input should be greater than or"),
        ("FINOPS_CLIENT_BURST", "1.5", "client_burst (FINOPS_CLIENT_BURST): Input should be a valid integer"),
    ],
)
def test_bad_qps_or_burst_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)
