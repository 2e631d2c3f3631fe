"""The one way handlers run blocking work: copy what they need from Kopf's indexes on the event loop
(indexes change only there, so iterating them from a thread races the watch streams), then run the
reconcile in a thread, one run per object at a time (a timer tick and a spec change must not plan
twice from the same stale view)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from finops_operator import metrics

StatusT = TypeVar("StatusT", bound=BaseModel)
ResultT = TypeVar("ResultT")


async def reconcile_in_thread(
    kind: str, fn: Callable[..., ResultT], kwargs: Mapping[str, Any], snapshot: Callable[[], object]
) -> ResultT:
    """Run ``fn(**kwargs, namespace=..., snapshot=snapshot())`` in a thread, serialised per object."""
    namespace, name = kwargs.get("namespace") or "", kwargs["name"]
    locks: dict[tuple[str, str, str], asyncio.Lock] = kwargs["memo"].locks
    async with locks.setdefault((kind, namespace, name), asyncio.Lock()):
        taken = snapshot()
        try:
            return await asyncio.to_thread(fn, **{**kwargs, "namespace": namespace, "snapshot": taken})
        except Exception as error:  # counted, then Kopf logs it and retries
            metrics.record_reconcile_error(kind, namespace, type(error).__name__)
            raise


def read_status(model: type[StatusT], raw: Mapping[str, Any]) -> StatusT:
    """The stored status, or a fresh one: an unreadable status is rebuilt, never trusted."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError:
        return model()
