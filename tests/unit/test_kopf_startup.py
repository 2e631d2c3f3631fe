"""The start-up readiness patch: waiters on a ToggleSet wake when its state changes, and only then."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from finops_operator.kopf_startup import patch_toggle_sets


def test_waiters_wake_once_the_last_off_toggle_is_dropped_and_not_for_each_toggle() -> None:
    patch_toggle_sets()

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
    patch_toggle_sets()

    async def scenario() -> bool:
        ready = aiotoggles.ToggleSet(all)
        only = await ready.make_toggle()
        waiter = asyncio.create_task(ready.wait_for(True))
        await asyncio.sleep(0)
        await only.turn_to(True)
        await asyncio.wait_for(waiter, timeout=1)
        return ready.is_on()

    assert asyncio.run(scenario())
