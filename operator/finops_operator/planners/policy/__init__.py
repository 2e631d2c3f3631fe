"""FinOpsPolicy planner: ``plan_policy`` (in ``plan``) decides one sample of a policy from its spec, what
it observes in its namespace and ``now``; the other modules say what each part decides: ``ledger``
(GPU-hours and cost), ``budget`` (use, thresholds, budget actions), ``idle`` (idle shutdown), ``caps``
(per-workload caps, at admission and in audit), ``bounds`` (the owned HPAs), ``predictive`` (the
forecast's replica floor), ``anomaly`` (cost anomalies), ``window`` (the budget window), ``events``
and ``conditions``.
"""

from finops_operator.planners.policy.events import PlannedEvent
from finops_operator.planners.policy.observation import PeerPolicy, PolicyObservation, WorkloadFacts
from finops_operator.planners.policy.plan import PolicyPlan, invalid_policy, parse_policy_spec, plan_policy

__all__ = [
    "PeerPolicy",
    "PlannedEvent",
    "PolicyObservation",
    "PolicyPlan",
    "WorkloadFacts",
    "invalid_policy",
    "parse_policy_spec",
    "plan_policy",
]
