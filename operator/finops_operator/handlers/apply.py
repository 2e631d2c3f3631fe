"""The one place writes happen: a Plan's intents, Events, notes and status become thin-client calls.

Identical writes seen moments ago are dropped (``RecentWrites``: Kopf's indexes lag our own writes, so
a reconcile may plan the same change again). A write the API server refuses is logged and left to
the next reconcile, which plans from what it then observes: level-triggered, never retried here.
Independent writes (the same write on N different objects) are made at once, within the client's
QPS; writes that depend on each other keep the plan's order (``write_runs``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from finops_operator import metrics
from finops_operator.handlers.status import RecentWrites, write_status
from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.plan import (
    AddFinalizer,
    ApplyManifest,
    CreateObject,
    DeleteObject,
    Event,
    Evict,
    Intent,
    ObjectRef,
    PatchPodTemplate,
    PatchWorkload,
    Plan,
    RemoveFinalizer,
    StatusT,
)
from finops_operator.workloads.templates import pod_spec_patch

TOLERATED: Mapping[type[Intent], frozenset[int]] = {
    Evict: frozenset({404, 429}),  # gone, or a PodDisruptionBudget forbids it now
    CreateObject: frozenset({409}),  # exists already (the index had not caught up)
    DeleteObject: frozenset({404}),
    AddFinalizer: frozenset({404}),
    RemoveFinalizer: frozenset({404}),
}
"""Refusals that only mean "nothing to do now": logged at info, not as warnings."""


@dataclass(frozen=True)
class Applied:
    """What became of one intent: the object as the API server returned it, or why it did not."""

    intent: Intent
    result: Mapping[str, Any] | None = None
    error: ApiException | None = None
    skipped: bool = False
    """An identical write was made moments ago."""


def _payload(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _dedupe_key(intent: Intent) -> tuple[tuple[object, ...], str]:
    """(what the write is about, what it sets): a repeat of both within the TTL is dropped."""
    target = intent.target
    if isinstance(intent, PatchWorkload):
        return ("workload", target), _payload([intent.replicas, intent.suspend, dict(intent.annotations)])
    if isinstance(intent, ApplyManifest | CreateObject):
        return (type(intent).__name__, target), _payload(intent.manifest)
    if isinstance(intent, PatchPodTemplate):
        return ("template", target), _payload(intent.pod_spec)
    if isinstance(intent, AddFinalizer | RemoveFinalizer):
        return ("finalizer", target, intent.finalizer), type(intent).__name__
    return (type(intent).__name__, target), ""


def _call(kube: KubeClient, intent: Intent) -> Mapping[str, Any] | None:
    target = intent.target
    ref = (target.api_version, target.kind, target.namespace, target.name)
    if isinstance(intent, PatchWorkload):
        body: dict[str, Any] = {"metadata": {"annotations": dict(intent.annotations)}}
        spec = {"replicas": intent.replicas, "suspend": intent.suspend}
        if any(value is not None for value in spec.values()):
            body["spec"] = {key: value for key, value in spec.items() if value is not None}
        return kube.patch(*ref, body=body)
    if isinstance(intent, ApplyManifest):
        return kube.apply(intent.manifest)
    if isinstance(intent, PatchPodTemplate):
        return kube.patch(*ref, body=pod_spec_patch(target.kind, intent.pod_spec), patch_type="merge")
    if isinstance(intent, Evict):
        kube.evict(target.namespace, target.name)
        return None
    if isinstance(intent, AddFinalizer):
        return kube.patch(*ref, body={"metadata": {"finalizers": [intent.finalizer]}})
    if isinstance(intent, RemoveFinalizer):
        removal = {"$deleteFromPrimitiveList/finalizers": [intent.finalizer]}
        return kube.patch(*ref, body={"metadata": removal})
    if isinstance(intent, CreateObject):
        return kube.create(intent.manifest)
    kube.delete(*ref)
    return None


def write_runs(intents: Sequence[Intent]) -> list[list[Intent]]:
    """``intents`` cut into runs that may be written at once: consecutive writes of one intent type on
    one kind of object, each on a different object. Plan order holds everywhere else: a run ends where
    the write or the kind changes (pod finalizers before the replica changes that delete the pods,
    revisions before the workloads that use them, a policy before its binding) and where an object
    comes again (its finalizer removed, then the object deleted). Pure."""
    runs: list[list[Intent]] = []
    targets: set[tuple[str, str, str, str]] = set()
    for intent in intents:
        target = intent.target
        ref = (target.api_version, target.kind, target.namespace, target.name)
        previous = runs[-1][-1] if runs else None
        same_kind = previous is not None and (
            type(previous),
            previous.target.api_version,
            previous.target.kind,
        ) == (type(intent), target.api_version, target.kind)
        if not same_kind or ref in targets:
            runs.append([])
            targets = set()
        runs[-1].append(intent)
        targets.add(ref)
    return runs


def apply_intents(
    kube: KubeClient,
    intents: Sequence[Intent],
    *,
    owner: Mapping[str, Any],
    recent: RecentWrites,
    logger: logging.Logger,
) -> list[Applied]:
    """Make every write, run by run (``write_runs``: the writes of a run at once, on the client's writer
    threads and within its QPS); post each intent's Event, in plan order, once its write succeeded.
    Returns what became of each intent, in plan order."""
    done: list[Applied | None] = [None] * len(intents)
    fresh: list[int] = []
    for index, intent in enumerate(intents):
        key, payload = _dedupe_key(intent)
        if recent.first(key, payload):
            fresh.append(index)
        else:
            done[index] = Applied(intent, skipped=True)
    slots = iter(fresh)
    for run in write_runs([intents[i] for i in fresh]):
        futures = kube.in_parallel([functools.partial(_call, kube, intent) for intent in run])
        unexpected: Exception | None = None
        for intent, future in zip(run, futures, strict=True):
            slot = next(slots)
            try:
                done[slot] = Applied(intent, result=future.result())
            except ApiException as error:
                done[slot] = _refused(intent, error, owner, logger)
                continue
            except Exception as error:  # the run's other writes are reported first, then it is raised
                unexpected = unexpected or error
                continue
            if intent.event is not None:
                post_events(kube, [intent.event], owner=owner, recent=recent, logger=logger)
        if unexpected is not None:  # no refusal (the API server unreachable...): Kopf retries
            raise unexpected
    return [applied for applied in done if applied is not None]


def _refused(
    intent: Intent, error: ApiException, owner: Mapping[str, Any], logger: logging.Logger
) -> Applied:
    """A refusal: logged (a warning, and counted, unless TOLERATED), left to the next reconcile."""
    level = logging.INFO if error.status in TOLERATED.get(type(intent), ()) else logging.WARNING
    if level == logging.WARNING:
        meta = owner.get("metadata") or {}
        metrics.record_reconcile_error(
            str(owner.get("kind", "")), meta.get("namespace") or "", "WriteRefused"
        )
    logger.log(level, "%s of %s refused: %s", type(intent).__name__, intent.target.text(), error.reason)
    return Applied(intent, error=error)


def _reference(ref: ObjectRef) -> dict[str, Any]:
    metadata = {"name": ref.name, **({"namespace": ref.namespace} if ref.namespace else {})}
    if ref.uid:
        metadata["uid"] = ref.uid
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def post_events(
    kube: KubeClient,
    events: Sequence[Event],
    *,
    owner: Mapping[str, Any],
    recent: RecentWrites,
    logger: logging.Logger,
) -> None:
    """Post each Event (on ``owner``, the reconciled object's body, unless it names another object),
    once per key and message."""
    meta = owner.get("metadata") or {}
    owner_key = (str(owner.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))
    for event in events:
        about = event.key or (event.regarding.text() if event.regarding else "", event.reason)
        if not recent.first(("event", *owner_key, *about), event.message):
            continue
        regarding = _reference(event.regarding) if event.regarding is not None else owner
        # The Event is posted just below; without k8s_skip Kopf would post the log line as a second
        # Event (reason Logging), one more write per action.
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        logger.log(level, "%s", event.message, extra={"k8s_skip": True})
        kube.post_event(regarding, type=event.type, reason=event.reason, message=event.message)


def apply_plan(
    kube: KubeClient,
    plan: Plan[StatusT],
    *,
    kind: str,
    body: kopf.Body,
    status: Mapping[str, Any],
    patch: kopf.Patch,
    recent: RecentWrites,
    logger: logging.Logger,
) -> list[Applied]:
    """Writes, then Events, then notes (logged once), then the status (only when it changed)."""
    applied = apply_intents(kube, plan.intents, owner=body, recent=recent, logger=logger)
    post_events(kube, plan.events, owner=body, recent=recent, logger=logger)
    meta = body.get("metadata") or {}
    for note in plan.notes:
        if recent.first((kind, meta.get("namespace") or "", meta.get("name", ""), "note", note), note):
            logger.info(note)
    write_status(kind, status, plan.status.to_wire(), patch)
    return applied
