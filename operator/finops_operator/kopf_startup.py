"""Kopf's start-up wait for its indexes, made linear and light.

Before any handler runs, Kopf lists every watched kind and holds each object's worker until all
indexes are filled: one toggle per listed object in a ``ToggleSet``. Kopf 1.45 wakes every waiting
worker (``notify_all``) each time a toggle is added or dropped, although adding an "off" toggle to a
set that is already off, or dropping one while others stay off, changes nothing they wait for. With
N objects that is N wake-ups of up to N workers: at 5,000 Deployments and 5,000 pods the event loop
spent two thirds of its time scheduling them (py-spy), and the first sweep had not come after ten
minutes (docs/BENCHMARKS.md, "Scale").

The patch wakes the waiters only when the set's own state (what ``ToggleSet.wait_for`` waits on)
changes. A toggle of the set that is turned on or off still wakes them, as before.

The wait itself held the memory peak: each waiting worker keeps its object's whole event, and at
5,000 Deployments and 5,000 pods those 10,000 bodies took the RSS from 157 to 437 MB before the first
handler ran (the process keeps a peak). The wait is there so that handlers see full indexes; a kind
with index handlers only (pods, Deployments, nodes here) has nothing that reads them, so its workers
index the object, drop their toggle as before, and finish without waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import references
from kopf._core.intents import registries
from kopf._core.reactor import processing

_process_resource_event = processing.process_resource_event


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


class _DropWithoutWaiting:
    """The readiness set as a worker of an index-only kind sees it: it drops its toggle, never waits."""

    def __init__(self, toggles: aiotoggles.ToggleSet) -> None:
        self._toggles = toggles

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self._toggles.drop_toggle(toggle)

    async def wait_for(self, value: bool) -> None:
        return None


def indexes_only(registry: registries.OperatorRegistry, resource: references.Resource) -> bool:
    """Whether every handler Kopf would run for ``resource`` is an index handler."""
    return not any(
        handlers.has_handlers(resource=resource)
        for handlers in (registry._watching, registry._spawning, registry._changing)
    )


async def _process_without_waiting_for_indexes(
    *,
    registry: registries.OperatorRegistry,
    resource: references.Resource,
    operator_indexed: aiotoggles.ToggleSet | None = None,
    **kwargs: Any,
) -> str | None:
    if operator_indexed is not None and indexes_only(registry, resource):
        operator_indexed = _DropWithoutWaiting(operator_indexed)  # type: ignore[assignment]
    return await _process_resource_event(
        registry=registry, resource=resource, operator_indexed=operator_indexed, **kwargs
    )


def patch_kopf_startup() -> None:
    """Install the patches (idempotent); before the operator starts, which binds the processor."""
    aiotoggles.ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    processing.process_resource_event = _process_without_waiting_for_indexes  # type: ignore[assignment]
