"""The start-up readiness patches: waiters on a ToggleSet wake when its state changes, and only then;
workers of index-only kinds do not wait at all."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import ephemera, references
from kopf._core.engines import indexing
from kopf._core.reactor import inventory, processing

from finops_operator import kopf_startup, main
from finops_operator.kopf_startup import indexes_only, patch_kopf_startup
from finops_operator.settings import Settings


def test_waiters_wake_once_the_last_off_toggle_is_dropped_and_not_for_each_toggle() -> None:
    patch_kopf_startup()

    async def scenario() -> tuple[bool, int]:
        ready = aiotoggles.ToggleSet(all)
        toggles = [await ready.make_toggle(name=str(i)) for i in range(50)]
        wakes = 0
        condition = ready._condition
        original = condition.notify_all

        def counting() -> None:
            nonlocal wakes
            wakes += 1
            original()

        condition.notify_all = counting  # type: ignore[method-assign]
        waiter = asyncio.create_task(ready.wait_for(True))
        await asyncio.sleep(0)
        for toggle in toggles[:-1]:
            await ready.drop_toggle(toggle)
        await ready.make_toggle(name="late")  # off into an off set: nothing to wake for
        await asyncio.sleep(0)
        assert not waiter.done()
        await ready.drop_toggles(list(ready))
        await asyncio.wait_for(waiter, timeout=1)
        return ready.is_on(), wakes

    on, wakes = asyncio.run(scenario())
    assert on and wakes == 1


def test_a_toggle_turned_on_still_wakes_the_waiters_of_its_set() -> None:
    patch_kopf_startup()

    async def scenario() -> bool:
        ready = aiotoggles.ToggleSet(all)
        only = await ready.make_toggle()
        waiter = asyncio.create_task(ready.wait_for(True))
        await asyncio.sleep(0)
        await only.turn_to(True)
        await asyncio.wait_for(waiter, timeout=1)
        return ready.is_on()

    assert asyncio.run(scenario())


def _registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.index("", "v1", "pods", id="pods", registry=registry)
    def pods(*, name: str, **_: object) -> str:
        return name

    @kopf.index("apps", "v1", "deployments", id="deployments", registry=registry)
    def deployments(*, name: str, **_: object) -> str:
        return name

    @kopf.on.event("apps", "v1", "deployments", id="deployment_events", registry=registry)
    def on_deployment(**_: object) -> None:
        return None

    return registry


PODS = references.Resource("", "v1", "pods", namespaced=True)
DEPLOYMENTS = references.Resource("apps", "v1", "deployments", namespaced=True)


def test_a_kind_with_index_handlers_only_is_told_apart_from_one_with_other_handlers() -> None:
    registry = _registry()
    assert indexes_only(registry, PODS)
    assert not indexes_only(registry, DEPLOYMENTS)


def test_an_index_only_object_is_indexed_and_released_while_other_indexes_still_fill() -> None:
    """The worker no longer holds the object's event until every index is ready; it drops its toggle."""
    patch_kopf_startup()
    registry = _registry()

    async def scenario() -> tuple[bool, bool, list[str], bool]:
        indexers = indexing.OperatorIndexers()
        indexers.ensure(registry._indexing.get_all_handlers())
        ready = aiotoggles.ToggleSet(all)
        still_listing = await ready.make_toggle(name="deployments listing")
        pod_indexed = await ready.make_toggle(name="the pod")
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n", "uid": "u"}}
        await asyncio.wait_for(
            processing.process_resource_event(
                lifecycle=kopf.lifecycles.all_at_once,
                indexers=indexers,
                registry=registry,
                settings=kopf.OperatorSettings(),
                memories=inventory.ResourceMemories(),
                memobase=ephemera.AnyMemo(kopf.Memo()),
                resource=PODS,
                raw_event={"type": None, "object": body},
                event_queue=asyncio.Queue(),
                resource_indexed=pod_indexed,
                operator_indexed=ready,
                no_throttling=True,
            ),
            timeout=5,
        )
        pods = list(indexers.indices["pods"].get(None, []))
        return ready.is_on(), pod_indexed in ready, pods, still_listing in ready

    on, pod_toggle_left, pods, listing_left = asyncio.run(scenario())
    assert not on and listing_left  # the operator is not ready yet: another kind is still listing
    assert not pod_toggle_left and pods == ["p"]


def test_the_operator_installs_the_patches_before_kopf_binds_its_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kopf binds ``process_resource_event`` when the operator starts, before any startup handler."""
    monkeypatch.setattr(processing, "process_resource_event", kopf_startup._process_resource_event)
    bound: list[object] = []

    async def operator(**_: object) -> None:
        bound.append(processing.process_resource_event)

    monkeypatch.setattr(kopf, "operator", operator)
    asyncio.run(main._run_kopf(Settings(), kopf.OperatorRegistry(), None, None))
    assert bound == [kopf_startup._process_without_waiting_for_indexes]
