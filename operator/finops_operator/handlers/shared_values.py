"""One shared copy of equal index values.

The Deployments of a region carry the same node affinity, and an index keeps it once per object: at
5,000 Deployments that is megabytes of identical dicts. Equal values are handed out as one object,
kept while some index entry still refers to it (weakly held here, so a value no object uses goes).
Callers must treat the value as read-only, as its ``Mapping`` type says.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping
from typing import Any


class _SharedDict(dict[str, Any]):
    """A dict that can be held weakly (plain dicts cannot)."""

    __slots__ = ("__weakref__",)


_TABLE: weakref.WeakValueDictionary[str, _SharedDict] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()  # Kopf runs sync index handlers on executor threads


def shared(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """The one live copy of every mapping equal to ``value`` (JSON-like values: index facts)."""
    key = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    with _LOCK:
        found = _TABLE.get(key)
        if found is None:
            found = _SharedDict(value)
            _TABLE[key] = found
        return found
