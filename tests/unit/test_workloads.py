"""The shared workload facts: one GPU count, one owner rule, one pod-template path table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from finops_operator.workloads.owners import workload_owner
from finops_operator.workloads.resources import gpus_in_pod_spec, pod_amount
from finops_operator.workloads.templates import POD_TEMPLATE_PATHS, pod_spec_patch, pod_template


def gpu(limits: object = None, requests: object = None, **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = {"nvidia.com/gpu": limits}
    if requests is not None:
        resources["requests"] = {"nvidia.com/gpu": requests}
    return {"resources": resources, **extra}


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        pytest.param({}, 0, id="empty"),
        pytest.param({"containers": [gpu(limits="2"), gpu(requests=1), {}]}, 3, id="limits-then-requests"),
        pytest.param({"containers": [gpu(limits=2, requests=1)]}, 2, id="limit-wins"),
        pytest.param({"containers": [gpu(1)], "initContainers": [gpu(4)]}, 4, id="init-larger"),
        pytest.param({"containers": [gpu(3)], "initContainers": [gpu(2)]}, 3, id="regular-larger"),
        pytest.param(
            {"containers": [gpu(1)], "initContainers": [gpu(1, restartPolicy="Always"), gpu(2)]},
            3,
            id="sidecar-runs-beside-later-init",
        ),
        pytest.param(
            {"containers": [gpu(2)], "initContainers": [gpu(1, restartPolicy="Always")]},
            3,
            id="sidecar-runs-beside-regular",
        ),
        pytest.param({"containers": [gpu("lots")]}, 0, id="malformed-quantity"),
        pytest.param({"containers": [gpu(-2)]}, 0, id="negative"),
        pytest.param({"containers": "not-a-list"}, 0, id="containers-not-a-list"),
        pytest.param({"containers": ["not-a-mapping", gpu(1)]}, 1, id="container-not-a-mapping"),
        pytest.param({"containers": [{"resources": {"limits": None}}]}, 0, id="null-limits"),
    ],
)
def test_gpus_in_pod_spec(pod_spec: dict[str, Any], expected: int) -> None:
    assert gpus_in_pod_spec(pod_spec) == expected


def test_pod_amount_reads_quantities() -> None:
    spec = {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}
    assert pod_amount(spec, "cpu") == Decimal("0.5")
    assert pod_amount(spec, "memory") == Decimal(2**30)


RS = {"kind": "ReplicaSet", "name": "llm-7d9f8c6b5", "controller": True}


@pytest.mark.parametrize(
    ("owners", "labels", "expected"),
    [
        pytest.param([RS], {"pod-template-hash": "7d9f8c6b5"}, ("Deployment", "llm"), id="deployment"),
        pytest.param(
            [{**RS, "controller": None}],
            {"pod-template-hash": "7d9f8c6b5"},
            ("Deployment", "llm"),
            id="hash-proves",
        ),
        pytest.param([RS], {}, ("ReplicaSet", "llm-7d9f8c6b5"), id="bare-replicaset"),
        pytest.param([{"kind": "Job", "name": "x-1", "controller": True}], {}, ("Job", "x-1"), id="job"),
        pytest.param([{"kind": "Job", "name": "x-1"}], {"pod-template-hash": "1"}, None, id="not-controller"),
        pytest.param(
            [{"kind": "ReplicaSet", "name": "-h"}], {"pod-template-hash": "h"}, None, id="empty-prefix"
        ),
        pytest.param(None, None, None, id="no-owner"),
    ],
)
def test_workload_owner(owners: Any, labels: Any, expected: tuple[str, str] | None) -> None:
    assert workload_owner(owners, labels) == expected


@pytest.mark.parametrize("kind", sorted(POD_TEMPLATE_PATHS))
def test_pod_spec_patch_lands_where_pod_template_reads(kind: str) -> None:
    patch = pod_spec_patch(kind, {"nodeSelector": {"a": "b"}})
    assert pod_template(kind, patch) == ({}, {"nodeSelector": {"a": "b"}})


def test_pod_template_of_unknown_kind_is_none() -> None:
    assert pod_template("ConfigMap", {"data": {}}) is None
