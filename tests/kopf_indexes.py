"""The operator's real Kopf index functions, called outside Kopf with the arguments Kopf passes:
what an index keeps for an object, for unit tests and the scale benchmark's memory figures."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from finops_operator.main import build_registry
from finops_operator.settings import load_settings


def index_handlers(plural: str) -> dict[str, Any]:
    """The operator's index handlers of one resource plural, by id."""
    registry = build_registry(load_settings(webhook_enabled=False), contextlib.ExitStack())
    return {h.id: h for h in registry._indexing.get_all_handlers() if h.selector.any_name == plural}


def index_entry(handler: Any, raw: Mapping[str, Any]) -> Any:
    """What ``handler`` keeps for the object ``raw`` (None where its filters leave the object out)."""
    body = kopf.Body(dict(raw))
    kwargs: dict[str, Any] = {
        "body": body,
        "spec": body.spec,
        "meta": body.meta,
        "status": body.status,
        "labels": body.meta.labels,
        "annotations": body.meta.annotations,
        "name": body.meta.name,
        "namespace": body.meta.namespace,
        "uid": body.meta.uid,
        "logger": logging.getLogger(__name__),
        "param": None,
    }
    if handler.labels and not all(key in body.meta.labels for key in handler.labels):
        return None
    if handler.when is not None and not handler.when(**kwargs):
        return None
    return handler.fn(**kwargs)
