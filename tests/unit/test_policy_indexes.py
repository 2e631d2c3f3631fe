"""What the FinOpsPolicy Deployment index keeps: the facts the planners read, not the manifest."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import kopf

from finops_operator.main import build_registry
from finops_operator.planners.policy import DeploymentFacts
from finops_operator.settings import load_settings
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS, ANNOTATION_SCALED_BY


def index_entry(handler_id: str, raw: dict[str, Any]) -> Any:
    registry = build_registry(load_settings(webhook_enabled=False), contextlib.ExitStack())
    handler = next(h for h in registry._indexing.get_all_handlers() if h.id == handler_id)
    body = kopf.Body(raw)
    return handler.fn(
        body=body,
        spec=body.spec,
        meta=body.meta,
        status=body.status,
        labels=body.meta.labels,
        annotations=body.meta.annotations,
        name=body.meta.name,
        namespace=body.meta.namespace,
        uid=body.meta.uid,
        logger=logging.getLogger(__name__),
        param=None,
    )


def test_deployment_index_keeps_only_the_operators_annotations() -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "ai", "labels": {"tier": "inference"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "llm"}}, "template": {"spec": {}}},
    }
    annotations = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest),
        "deployment.kubernetes.io/revision": "3",
        ANNOTATION_PREVIOUS_REPLICAS: "2",
        ANNOTATION_SCALED_BY: "ai/budget",
    }
    raw = {**manifest, "metadata": {**manifest["metadata"], "uid": "u1", "annotations": annotations}}

    facts: DeploymentFacts = index_entry("deployments_by_namespace", raw)["ai"]

    assert dict(facts.annotations) == {ANNOTATION_PREVIOUS_REPLICAS: "2", ANNOTATION_SCALED_BY: "ai/budget"}
    assert (facts.name, facts.replicas, dict(facts.labels)) == ("llm", 0, {"tier": "inference"})
