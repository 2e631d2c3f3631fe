from finops_operator.handlers.status import merge_patch


def test_merge_patch_sets_changes_and_clears_removed_fields() -> None:
    current = {"a": 1, "b": 2, "gone": 3}
    desired = {"a": 1, "b": 5, "new": 4}
    assert merge_patch(current, desired) == {"b": 5, "new": 4, "gone": None}


def test_merge_patch_is_empty_when_nothing_changed() -> None:
    assert merge_patch({"a": [1, {"x": 2}]}, {"a": [1, {"x": 2}]}) == {}
