"""The annotations the operator leaves on workloads it changes, so that a restart or a policy
deletion restores exactly (every kind reads them: a FinOpsPolicy scales, an EdgeFleet leaves the
replica count to it)."""

from __future__ import annotations

ANNOTATION_PREVIOUS_REPLICAS = "finops.dev/previous-replicas"
"""The replica count before the operator scaled the workload down."""
ANNOTATION_PREVIOUS_SUSPEND = "finops.dev/previous-suspend"
"""spec.suspend ("true"/"false") of a Job or CronJob before the operator suspended it."""
ANNOTATION_SCALED_BY = "finops.dev/scaled-by"
"""``<policy>:<reason>`` of the scale-down (or, for a Job or CronJob, the suspension), reason one of
REASON_BUDGET, REASON_IDLE, REASON_ANOMALY."""
ANNOTATION_REPLICA_CAP = "finops.dev/replica-cap"
"""The replica ceiling a budget action set."""
ANNOTATION_CAPPED_BY = "finops.dev/capped-by"
"""The policy that set the ceiling."""
ANNOTATION_WAKE = "finops.dev/wake"
"""Set by a user to wake an idle-shut-down workload."""
ANNOTATION_RELEARN = "finops.dev/anomaly-relearn"
"""Set by a user to accept a workload's current GPU use as normal: its anomaly detector learns afresh."""
ANNOTATION_EXPECTED_COST = "finops.dev/expected-cost-per-hour"
"""Set by a workload's owner: what it should cost per hour, in the policy's currency (a number)."""
REASON_BUDGET = "budget"
REASON_IDLE = "idle"
REASON_ANOMALY = "anomaly"

POLICY_SCALING_ANNOTATIONS = (ANNOTATION_SCALED_BY, ANNOTATION_REPLICA_CAP)
"""Either one present: a FinOpsPolicy decides this workload's replica count."""
