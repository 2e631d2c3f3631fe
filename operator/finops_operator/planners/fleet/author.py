"""Not a confused deputy: an EdgeFleet makes the operator create Deployments from a template its
author wrote, so the author must be allowed to create those Deployments themselves.

Only admission knows who wrote a spec (managedFields name field managers, not users), so the API
server checks it: a ValidatingAdmissionPolicy (``api.edgefleet.author_check_policy``, shipped with
the CRDs so it is in force before any fleet can exist) asks the authorizer whether the requesting
user may create Deployments in the fleet's namespace, on every create and every spec change of an
EdgeFleet (the operator never writes a spec, so its own metadata patches are not checked). The
operator re-applies the policy when it is missing or changed, and acts only on a fleet whose spec
was last written after the policy was in force: a fleet written earlier (before the policy was
installed, or while it was deleted) is reported, not rolled out, until it is re-applied and so
checked. Pure: the decision; the handler observes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from finops_operator.api.edgefleet import (
    AUTHOR_CHECK_HASH_ANNOTATION,
    AUTHOR_CHECK_NAME,
    author_check_binding,
    author_check_policy,
)
from finops_operator.planners.fleet.sites import timestamp

SETTLE = timedelta(seconds=2)
"""A new policy reaches the API server's admission cache within about a second; a spec written in
that window is not trusted to have been checked (the operator's start-up waits it out)."""


@dataclass(frozen=True)
class AuthorCheckObject:
    """The policy or its binding as the API server has it."""

    spec_hash: str | None
    created: datetime | None


def author_check_object(body: Mapping[str, Any]) -> AuthorCheckObject:
    metadata = body.get("metadata") or {}
    return AuthorCheckObject(
        (metadata.get("annotations") or {}).get(AUTHOR_CHECK_HASH_ANNOTATION),
        timestamp(metadata.get("creationTimestamp")),
    )


def stale_author_check(observed: Mapping[str, AuthorCheckObject]) -> tuple[dict[str, Any], ...]:
    """The admission objects to (re)apply: missing, or not what this operator version renders."""
    wanted = (author_check_policy(), author_check_binding())
    return tuple(
        m
        for m in wanted
        if (found := observed.get(m["kind"])) is None
        or found.spec_hash != m["metadata"]["annotations"][AUTHOR_CHECK_HASH_ANNOTATION]
    )


def in_force_since(observed: Mapping[str, AuthorCheckObject]) -> datetime | None:
    """Since when the API server checks authors: both objects exist, the later one settled; None when
    the check is not (yet) in place as rendered."""
    if stale_author_check(observed):
        return None
    created = [o.created for o in observed.values() if o.created is not None]
    return max(created) + SETTLE if len(created) == 2 else None


def spec_written_at(managed_fields: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When any manager last wrote a field of .spec (managedFields times are per manager and
    operation: the latest entry that owns spec fields)."""
    times = [
        written
        for entry in managed_fields
        if "f:spec" in (entry.get("fieldsV1") or {})
        and not entry.get("subresource")
        and (written := timestamp(entry.get("time"))) is not None
    ]
    return max(times) if times else None


def author_unchecked(
    spec_written: datetime | None, check_since: datetime | None, now: datetime
) -> str | None:
    """Why the fleet must not be acted on yet, or None when its author passed the check. Until the
    check has settled (``now`` before ``check_since``) it is reported as not in force: a spec
    re-applied in that window would still be untrusted, so nobody is told to re-apply before a
    re-apply counts."""
    if check_since is None or now < check_since:
        return (
            f"the EdgeFleet author check (ValidatingAdmissionPolicy {AUTHOR_CHECK_NAME}) is not in "
            "force yet; site Deployments wait for it"
        )
    if spec_written is None or spec_written < check_since:
        return (
            f"the spec was last written before the EdgeFleet author check ({AUTHOR_CHECK_NAME}) was in "
            "force, so nobody checked that its author may create Deployments in this namespace: re-apply the "
            "EdgeFleet with a spec change to have it checked"
        )
    return None
