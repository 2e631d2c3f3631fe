"""Names and label values of what a fleet creates: deterministic DNS labels that never collide."""

from __future__ import annotations

import hashlib
import re

FLEET_LABEL = "finops.dev/edgefleet"
REVISION_LABEL = "finops.dev/revision"
MODEL_VERSION_LABEL = "finops.dev/model-version"
MODEL_VERSION_ANNOTATION = "finops.dev/model-version"
PROFILE_ANNOTATION = "finops.dev/hardware-profile"
UPDATED_AT_ANNOTATION = "finops.dev/revision-updated-at"
"""When the operator last moved the Deployment to a new revision: starts the wave timeout clock."""


MAX_NAME_LENGTH = 63
REVISION_HASH_LENGTH = 10
NAME_HASH_LENGTH = 8


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def dns_name(*parts: str) -> str:
    """``parts`` joined by dashes when that is already a DNS-1123 label, else a sanitised, truncated
    form with a hash of the original parts, so distinct inputs never collapse onto one name."""
    raw = "-".join(parts)
    if len(raw) <= MAX_NAME_LENGTH and _DNS_LABEL.match(raw):
        return raw
    suffix = _digest(*parts)[:NAME_HASH_LENGTH]
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")
    head = cleaned[: MAX_NAME_LENGTH - NAME_HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def label_value(value: str) -> str:
    """``value`` if it is a valid label value, else a sanitised, truncated form with a hash suffix
    (fleet names may be 253 characters, model versions carry ``+`` or ``/``)."""
    if len(value) <= MAX_NAME_LENGTH and _LABEL_VALUE.match(value):
        return value
    suffix = _digest(value)[:NAME_HASH_LENGTH]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")
    head = cleaned[: MAX_NAME_LENGTH - NAME_HASH_LENGTH - 1].rstrip("-_.")
    return f"{head}-{suffix}" if head else suffix


def deployment_name(fleet_name: str, site: str) -> str:
    """Name of a site's Deployment: deterministic, so a re-created operator finds its workloads."""
    return dns_name(fleet_name, site)


def revision_object_name(fleet_name: str, revision: str) -> str:
    """Name of the object storing a revision's content (proposed: an apps/v1 ControllerRevision)."""
    return dns_name(fleet_name, "rev", revision)
