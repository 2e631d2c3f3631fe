"""Kopf's start-up wait for its indexes, made linear.

Before any handler runs, Kopf lists every watched kind and holds each object's worker until all
indexes are filled: one toggle per listed object in a ``ToggleSet``. Kopf 1.45 wakes every waiting
worker (``notify_all``) each time a toggle is added or dropped, although adding an "off" toggle to a
set that is already off, or dropping one while others stay off, changes nothing they wait for. With
N objects that is N wake-ups of up to N workers: at 5,000 Deployments and 5,000 pods the event loop
spent two thirds of its time scheduling them (py-spy), and the first sweep had not come after ten
minutes (docs/BENCHMARKS.md, "Scale").

The patch wakes the waiters only when the set's own state (what ``ToggleSet.wait_for`` waits on)
changes. A toggle of the set that is turned on or off still wakes them, as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from kopf._cogs.aiokits import aiotoggles


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    await _drop_toggles(self, [toggle])


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def patch_toggle_sets() -> None:
    """Install the patch (idempotent)."""
    aiotoggles.ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggles = _drop_toggles  # type: ignore[method-assign]
