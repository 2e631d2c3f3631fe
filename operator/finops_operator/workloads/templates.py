"""Where each workload kind keeps its pod template: the one path table of the project, for reading a
template and for patching one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""Where each workload kind keeps its pod template (metadata + spec); () means the object is the pod."""

WORKLOAD_API_VERSIONS: Mapping[str, str] = {
    "Pod": "v1",
    **dict.fromkeys(("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"), "apps/v1"),
    "ReplicationController": "v1",
    **dict.fromkeys(("Job", "CronJob"), "batch/v1"),
}
"""The apiVersion of each kind above."""

MUTABLE_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "CronJob"})
"""Kinds whose pod template may change after creation (a Job's template and a pod's spec are immutable)."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_template(kind: str, body: Mapping[str, Any]) -> tuple[Mapping[str, str], Mapping[str, Any]] | None:
    """(template labels, pod spec) of a workload object as the API server sends it, or None when the
    kind carries no pod template."""
    path = POD_TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    node: Mapping[str, Any] = body
    for part in path:
        node = _mapping(node.get(part))
    return _mapping(_mapping(node.get("metadata")).get("labels")), _mapping(node.get("spec"))


def pod_spec_patch(kind: str, pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of the whole object that sets ``pod_spec`` fields inside the kind's pod template."""
    patch: dict[str, Any] = {"spec": dict(pod_spec)}
    for part in reversed(POD_TEMPLATE_PATHS[kind]):
        patch = {part: patch}
    return patch
