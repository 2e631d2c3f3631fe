-- wake brings back a Deployment that a FinOpsPolicy's idle shutdown scaled to zero: it sets the
-- finops.dev/wake annotation, and the operator restores the recorded replicas and clears it.
-- Argo CD actions run without Lua's string library, so the reason in finops.dev/scaled-by
-- ("<policy>:idle" or "<policy>:budget") cannot be parsed here: wake is offered for any Deployment
-- the operator holds at zero; for a budget scale-down the operator clears the request and the budget
-- holds until its window resets (docs/GITOPS.md).
local actions = {}
local annotations = obj.metadata.annotations or {}
local asleep = annotations["finops.dev/scaled-by"] ~= nil and obj.spec.replicas == 0
actions["wake"] = {["disabled"] = not asleep, ["iconClass"] = "fa fa-fw fa-sun"}
return actions
