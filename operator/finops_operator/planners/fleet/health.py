"""The rollout health query: when to ask Prometheus, what to ask, and what the answer means."""

from __future__ import annotations

from dataclasses import dataclass

from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet.revisions import revision_of


@dataclass(frozen=True)
class HealthAnswer:
    """What the health query returned: sample values, or why it could not be evaluated."""

    values: tuple[float, ...] = ()
    error: str | None = None


def health_query(spec: EdgeFleetSpec, status: EdgeFleetStatus, namespace: str, fleet: str) -> str | None:
    """The PromQL to evaluate, only while a rollout is under way (there is a stable revision and the
    spec asks for another); ``$namespace``, ``$fleet`` and ``$revision`` (the revision being rolled
    out) are substituted."""
    query = spec.rollout.health_query
    revision = revision_of(spec)
    if query is None or status.stable_revision in (None, revision):
        return None
    return query.replace("$namespace", namespace).replace("$fleet", fleet).replace("$revision", revision)


def health_verdict(answer: HealthAnswer | None) -> tuple[bool | None, str | None]:
    """(healthy, why not evaluable): non-zero everywhere is healthy; no samples is no evidence, so
    not healthy; no answer (no query running) is neither."""
    if answer is None:
        return None, None
    if answer.error is not None:
        return None, answer.error
    return bool(answer.values) and all(v != 0 for v in answer.values), None
