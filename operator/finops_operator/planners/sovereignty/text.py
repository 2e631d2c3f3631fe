"""Hostile input made safe to read and to quote: sovereignty reads pod specs, affinities and labels
that may be missing, malformed or huge, and nothing here raises on them. Also the size limits of
everything the region reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_VIOLATIONS = 100
MAX_LISTED_NAMESPACES = 1000
MAX_NAMES_IN_MESSAGE = 20
MAX_WARNINGS = 16
MAX_MESSAGE = 4096
MAX_VIOLATION_MESSAGE = 1024
MAX_NOTES = 100


def mapping_of(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def list_of(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def label_value(labels: Mapping[str, Any] | None, key: str) -> str | None:
    """A label value as a string, or None when absent (a null value counts as absent)."""
    if not isinstance(labels, Mapping):
        return None
    value = labels.get(key)
    return None if value is None else str(value)


def show(value: object, limit: int = 80) -> str:
    """Render a value for a message: control characters escaped, long values cut."""
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def list_text(values: Iterable[object], limit: int = MAX_NAMES_IN_MESSAGE) -> str:
    items = [show(v) for v in values]
    more = len(items) - limit
    shown = ", ".join(items[:limit])
    return f"[{shown}, ... ({more} more)]" if more > 0 else f"[{shown}]"


def cap_text(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
