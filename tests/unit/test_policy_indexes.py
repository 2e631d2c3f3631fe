"""What the FinOpsPolicy Deployment index keeps: the facts the planners read, not the manifest."""

from __future__ import annotations

import json

from finops_operator.planners.policy import WorkloadFacts
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS, ANNOTATION_SCALED_BY
from tests.kopf_indexes import index_entry, index_handlers


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

    facts: WorkloadFacts = index_entry(index_handlers("deployments")["deployments_by_namespace"], raw)["ai"]

    assert dict(facts.annotations) == {ANNOTATION_PREVIOUS_REPLICAS: "2", ANNOTATION_SCALED_BY: "ai/budget"}
    assert (facts.name, facts.replicas, dict(facts.labels)) == ("llm", 0, {"tier": "inference"})
