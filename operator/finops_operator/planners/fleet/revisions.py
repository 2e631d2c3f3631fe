"""Revisions: the content a rollout protects, its stable hash, and the newest-first history."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from finops_operator.api.edgefleet import EdgeFleetSpec, HardwareProfile, RevisionRecord
from finops_operator.planners.fleet.names import REVISION_HASH_LENGTH, REVISION_LABEL
from finops_operator.planners.fleet.sites import owner_uids


@dataclass(frozen=True)
class RevisionContent:
    """Everything a revision renders from; stored per revision so a rollback can re-render the old one.

    Replicas, node selection and rollout settings are deliberately not part of it: they are fleet-wide
    operating settings that apply at once, and changing them must not start a wave rollout.
    """

    model_version: str
    template: Mapping[str, Any]
    hardware_profiles: tuple[HardwareProfile, ...] = ()

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form, as the handler stores it (camelCase like the spec)."""
        return {
            "modelVersion": self.model_version,
            "template": copy.deepcopy(dict(self.template)),
            "hardwareProfiles": [profile.to_wire() for profile in self.hardware_profiles],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RevisionContent:
        """Inverse of :meth:`to_data`; raises pydantic's ValidationError or KeyError on foreign data."""
        return cls(
            model_version=str(data["modelVersion"]),
            template=dict(data["template"]),
            hardware_profiles=tuple(
                HardwareProfile.model_validate(profile) for profile in data.get("hardwareProfiles") or []
            ),
        )

    @property
    def revision(self) -> str:
        """Short, stable hash of the canonical JSON form: same content, same revision, on any host."""
        canonical = json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_HASH_LENGTH]


def revision_content(spec: EdgeFleetSpec) -> RevisionContent:
    return RevisionContent(spec.model_version, spec.template, tuple(spec.hardware_profiles))


def revision_of(spec: EdgeFleetSpec) -> str:
    """Revision of the spec: modelVersion + template + hardwareProfiles (not replicasPerSite, see
    :class:`RevisionContent`)."""
    return revision_content(spec).revision


def revision_history(
    spec: EdgeFleetSpec, previous: Sequence[RevisionRecord], target: str, spec_revision: str, now: datetime
) -> list[RevisionRecord]:
    """Newest first: a revision moves to the front when the spec asks for it (a revert to an old one
    keeps its first-seen time); rollbacks do not reorder. Bounded by revisionHistoryLimit."""
    history = list(previous)
    if target == spec_revision and (not history or history[0].revision != target):
        record = next((r for r in history if r.revision == target), None) or RevisionRecord(
            revision=target, model_version=spec.model_version, created=now
        )
        history = [record, *(r for r in history if r.revision != target)]
    return history[: spec.revision_history_limit]


@dataclass(frozen=True)
class StoredRevision:
    """A ControllerRevision holding one revision's content."""

    name: str
    revision: str
    number: int
    owners: frozenset[str]
    content: RevisionContent | None
    """None when the stored data is unreadable or does not hash to its label (never trusted)."""


def stored_revision(body: Mapping[str, Any]) -> StoredRevision:
    """StoredRevision from a ControllerRevision as the API server returns it."""
    metadata = body.get("metadata") or {}
    revision = str((metadata.get("labels") or {}).get(REVISION_LABEL, ""))
    try:
        content: RevisionContent | None = RevisionContent.from_data(body.get("data") or {})
    except (KeyError, TypeError, ValidationError):
        content = None
    if content is not None and content.revision != revision:
        content = None
    number = int(body.get("revision") or 0)
    return StoredRevision(str(metadata.get("name", "")), revision, number, owner_uids(metadata), content)
