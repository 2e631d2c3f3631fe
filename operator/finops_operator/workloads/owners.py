"""Which top-level workload owns a pod: the one owner rule of the project."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"


def workload_key(kind: str, name: str) -> str:
    """How a policy names a workload: a Deployment by its name (as it always has), any other kind as
    ``<kind>/<name>`` in lower case, kubectl's notation, so a StatefulSet and a Deployment of the same
    name stay apart in the ledger, the status and showback."""
    return name if kind == "Deployment" else f"{kind.lower()}/{name}"


def owner_key(
    owner_references: Sequence[Mapping[str, Any]] | None, labels: Mapping[str, str] | None
) -> str | None:
    """``workload_key`` of the workload that controls an object (see ``workload_owner``)."""
    owner = workload_owner(owner_references, labels)
    return workload_key(*owner) if owner is not None else None


def workload_owner(
    owner_references: Sequence[Mapping[str, Any]] | None, labels: Mapping[str, str] | None
) -> tuple[str, str] | None:
    """(kind, name) of the workload that controls a pod, or None for a pod nothing recreates.

    A ReplicaSet named ``<deployment>-<pod-template-hash>`` with that hash on the pod was made by the
    Deployment controller, so the pod is the Deployment's; otherwise the owner marked ``controller``."""
    references = [r for r in owner_references or () if isinstance(r, Mapping)]
    template_hash = (labels or {}).get(POD_TEMPLATE_HASH_LABEL)
    if template_hash:
        suffix = f"-{template_hash}"
        for reference in references:
            name = str(reference.get("name", ""))
            if reference.get("kind") == "ReplicaSet" and name.endswith(suffix) and len(name) > len(suffix):
                return "Deployment", name[: -len(suffix)]
    for reference in references:
        if reference.get("controller"):
            return str(reference.get("kind", "")), str(reference.get("name", ""))
    return None
