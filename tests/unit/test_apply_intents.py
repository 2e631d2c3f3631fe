"""The apply module's contract with a recording client: independent writes at once, dependent writes
in plan order, each Event once its write succeeded, identical writes dropped, refusals not retried."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import pytest
from kubernetes import client

from finops_operator.handlers.apply import apply_intents, write_runs
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.plan import (
    AddFinalizer,
    ApplyManifest,
    DeleteObject,
    Event,
    Intent,
    ObjectRef,
    PatchWorkload,
    RemoveFinalizer,
)

FINALIZER = "finops.dev/gpu-ledger"
LOG = logging.getLogger(__name__)


def pod(name: str) -> ObjectRef:
    return ObjectRef("v1", "Pod", name, "team-a")


def deployment(name: str) -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", name, "team-a")


def hpa(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "team-a"},
    }


class Recording(KubeClient):
    """Records each write as (start, what) and (end, what); ``together`` writes wait for each other at
    a barrier, which only a concurrent run passes; ``refuse`` maps a target name to an HTTP status."""

    def __init__(self, *, together: int = 1, refuse: Mapping[str, int] | None = None) -> None:
        super().__init__(cast("client.ApiClient", None))
        self.log: list[tuple[str, str]] = []
        self.events: list[str] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(together, timeout=10) if together > 1 else None
        self._refuse = dict(refuse or {})

    def _write(self, verb: str, name: str) -> dict[str, Any]:
        with self._lock:
            self.log.append(("start", f"{verb} {name}"))
        if self._barrier is not None:
            self._barrier.wait()
        with self._lock:
            self.log.append(("end", f"{verb} {name}"))
        if name in self._refuse:
            raise ApiException(status=self._refuse[name], reason="Refused")
        return {"metadata": {"name": name}}

    def patch(self, api_version: str, kind: str, namespace: str, name: str, **_: Any) -> dict[str, Any]:
        return self._write(f"patch {kind}", name)

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self._write(f"apply {manifest['kind']}", manifest["metadata"]["name"])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._write(f"delete {kind}", name)

    def post_event(self, regarding: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append(message)

    def ended(self) -> list[str]:
        return [what for step, what in self.log if step == "end"]


def apply(kube: Recording, intents: list[Intent], recent: RecentWrites | None = None) -> list[Any]:
    return apply_intents(kube, intents, owner={}, recent=recent or RecentWrites(ttl=0), logger=LOG)


def test_runs_are_one_write_on_one_kind_each_object_once() -> None:
    intents: list[Intent] = [
        AddFinalizer(pod("a"), FINALIZER),
        AddFinalizer(pod("b"), FINALIZER),
        ApplyManifest(hpa("x")),
        ApplyManifest(hpa("y")),
        PatchWorkload(deployment("x"), 0),
        PatchWorkload(deployment("y"), 0),
        RemoveFinalizer(pod("c"), FINALIZER),
        DeleteObject(pod("c")),
        PatchWorkload(deployment("z"), 1),
        PatchWorkload(deployment("z"), 2),
    ]
    assert [len(run) for run in write_runs(intents)] == [2, 2, 2, 1, 1, 1, 1]
    assert [i for run in write_runs(intents) for i in run] == intents


def test_a_run_is_written_at_once() -> None:
    """Four finalizers meet at a barrier: one at a time, the first would wait there forever."""
    kube = Recording(together=4)
    done = apply(kube, [AddFinalizer(pod(name), FINALIZER) for name in "abcd"])
    assert [d.error for d in done] == [None] * 4
    assert [step for step, _ in kube.log[:4]] == ["start"] * 4


def test_dependent_writes_keep_plan_order() -> None:
    """Every pod finalizer is on before any replica change (which deletes pods), and an object's
    finalizer is removed before it is deleted."""
    kube = Recording()
    apply(
        kube,
        [
            AddFinalizer(pod("a"), FINALIZER),
            AddFinalizer(pod("b"), FINALIZER),
            PatchWorkload(deployment("x"), 0),
            PatchWorkload(deployment("y"), 0),
            RemoveFinalizer(pod("c"), FINALIZER),
            DeleteObject(pod("c")),
        ],
    )
    ended = kube.ended()
    assert set(ended[:2]) == {"patch Pod a", "patch Pod b"}
    assert set(ended[2:4]) == {"patch Deployment x", "patch Deployment y"}
    assert ended[4:] == ["patch Pod c", "delete Pod c"]
    starts = [what for step, what in kube.log if step == "start"]
    assert starts.index("patch Deployment x") > max(ended.index("patch Pod a"), ended.index("patch Pod b"))


def test_events_in_plan_order_only_for_writes_that_succeeded() -> None:
    kube = Recording(refuse={"b": 409})
    intents: list[Intent] = [
        PatchWorkload(deployment(name), 0, event=Event("Normal", "BudgetExceeded", f"scaled {name}"))
        for name in "abc"
    ]
    done = apply(kube, intents)
    assert [d.intent for d in done] == intents
    assert [d.error.status if d.error else None for d in done] == [None, 409, None]
    assert kube.events == ["scaled a", "scaled c"]


def test_a_refused_write_is_logged_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    kube = Recording(refuse={"a": 422})
    with caplog.at_level(logging.INFO):
        apply(kube, [PatchWorkload(deployment("a"), 0)])
    assert kube.ended() == ["patch Deployment a"]
    assert "PatchWorkload of Deployment team-a/a refused: Refused" in caplog.text


def test_identical_writes_moments_apart_are_made_once() -> None:
    kube, recent = Recording(), RecentWrites(ttl=60)
    intents: list[Intent] = [PatchWorkload(deployment("a"), 0), PatchWorkload(deployment("b"), 0)]
    apply(kube, intents, recent)
    again = apply(kube, [*intents, PatchWorkload(deployment("c"), 0)], recent)
    assert [d.skipped for d in again] == [True, True, False]
    assert kube.ended().count("patch Deployment a") == 1


def test_an_unreachable_api_server_is_raised_after_the_runs_other_writes_are_reported() -> None:
    class Unreachable(Recording):
        def patch(self, api_version: str, kind: str, namespace: str, name: str, **kw: Any) -> dict[str, Any]:
            if name == "a":
                raise ConnectionError("connection refused")
            return super().patch(api_version, kind, namespace, name, **kw)

    kube = Unreachable()
    intents: list[Intent] = [
        PatchWorkload(deployment(name), 0, event=Event("Normal", "BudgetExceeded", f"scaled {name}"))
        for name in "ab"
    ]
    with pytest.raises(ConnectionError):
        apply(kube, [*intents, ApplyManifest(hpa("later"))])
    assert kube.events == ["scaled b"]
    assert "apply HorizontalPodAutoscaler later" not in kube.ended()
