"""Write status only when it changed, as a JSON merge patch that also clears removed fields."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from finops_operator import metrics


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning ``current`` into ``desired`` (top-level keys; nulls delete)."""
    patch: dict[str, Any] = {key: value for key, value in desired.items() if current.get(key) != value}
    patch.update({key: None for key in current if key not in desired})
    return patch


def write_status(
    kind: str, current: Mapping[str, Any], desired: Mapping[str, Any], patch: kopf.Patch
) -> bool:
    """Stage a status patch if anything differs; returns whether a write will happen."""
    changes = merge_patch(current, desired)
    if not changes:
        return False
    patch.status.update(changes)
    metrics.record_status_write(kind)
    return True


class RecentWrites:
    """Identical writes seen within ``ttl`` seconds are dropped.

    Kopf's indexes and bodies are eventually consistent: a sample that starts before the watch
    delivered our previous patch plans the same change again. Dropping an identical repeat is always
    safe; a change that is still needed after ``ttl`` is made again by a later sample. Entries older
    than ``ttl`` are forgotten once per ``ttl``, so memory follows the recent write rate: a burst of
    thousands of writes (a budget breach at scale) is not kept for the life of the process.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._seen: dict[object, tuple[object, float]] = {}
        self._pruned = clock()
        self._lock = threading.Lock()

    def first(self, key: object, payload: object) -> bool:
        """True (and remembered) unless the same payload was written for ``key`` within ``ttl``."""
        now = self._clock()
        with self._lock:
            if now - self._pruned >= self.ttl:
                self._seen = {k: v for k, v in self._seen.items() if now - v[1] < self.ttl}
                self._pruned = now
            previous = self._seen.get(key)
            if previous is not None and previous[0] == payload and now - previous[1] < self.ttl:
                return False
            self._seen[key] = (payload, now)
            return True

    @property
    def remembered(self) -> int:
        """How many writes are remembered (what this costs in memory)."""
        return len(self._seen)
