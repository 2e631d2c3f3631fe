"""Write status only when it changed, as a JSON merge patch that also clears removed fields."""

from __future__ import annotations

from collections.abc import Mapping
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
