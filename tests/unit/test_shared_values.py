import gc
import weakref

from finops_operator.handlers.shared_values import shared


def test_equal_values_are_one_object_whatever_their_key_order() -> None:
    first = shared({"nodeSelector": {"region": "eu"}, "containers": [{"gpu": "1"}]})
    second = shared({"containers": [{"gpu": "1"}], "nodeSelector": {"region": "eu"}})
    assert first is second
    assert first == {"nodeSelector": {"region": "eu"}, "containers": [{"gpu": "1"}]}
    assert shared({"nodeSelector": {"region": "us"}}) is not first


def test_a_value_no_index_entry_holds_any_more_is_let_go() -> None:
    held = shared({"nodeName": "gpu-1"})
    ref = weakref.ref(held)  # type: ignore[arg-type]
    del held
    gc.collect()
    assert ref() is None
