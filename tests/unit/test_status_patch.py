from finops_operator.handlers.status import RecentWrites, merge_patch


def test_merge_patch_sets_changes_and_clears_removed_fields() -> None:
    current = {"a": 1, "b": 2, "gone": 3}
    desired = {"a": 1, "b": 5, "new": 4}
    assert merge_patch(current, desired) == {"b": 5, "new": 4, "gone": None}


def test_merge_patch_is_empty_when_nothing_changed() -> None:
    assert merge_patch({"a": [1, {"x": 2}]}, {"a": [1, {"x": 2}]}) == {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_identical_write_is_dropped_within_the_ttl_and_made_again_after_it() -> None:
    clock = Clock()
    recent = RecentWrites(ttl=30, clock=clock)
    assert recent.first(("Deployment", "a"), {"replicas": 0})
    clock.now += 29
    assert not recent.first(("Deployment", "a"), {"replicas": 0})
    assert recent.first(("Deployment", "a"), {"replicas": 1})
    clock.now += 30
    assert recent.first(("Deployment", "a"), {"replicas": 1})


def test_a_burst_of_writes_is_forgotten_once_the_ttl_has_passed() -> None:
    clock = Clock()
    recent = RecentWrites(ttl=30, clock=clock)
    for i in range(5000):
        recent.first(("Deployment", f"d{i}"), {"replicas": 0})
    assert recent.remembered == 5000
    clock.now += 31
    recent.first(("Deployment", "later"), {"replicas": 0})
    assert recent.remembered == 1
