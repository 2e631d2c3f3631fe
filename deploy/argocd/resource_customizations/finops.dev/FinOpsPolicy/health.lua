-- Argo CD health of a FinOpsPolicy, from the conditions the operator writes (Kubernetes conventions).
-- Written for argocd-cm's restricted Lua (no string library): only base, table and a safe os.
--   Progressing  the operator has not reconciled this generation yet
--   Degraded     the policy is not enforced: Ready=False (invalid spec, bad time zone, ...) or its
--                selector overlaps another policy's (Conflict=True: neither acts on those workloads)
--   Healthy      the policy is enforced; a spent budget is the policy working as designed, so it
--                stays Healthy and the message says so (alerts and Events carry the budget news);
--                so do idle workloads the policy shut down
local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function said(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local generation = obj.metadata.generation or 0
if obj.status == nil or (obj.status.observedGeneration or 0) < generation then
  return {status = "Progressing", message = "Waiting for the operator to reconcile generation " .. generation}
end
local ready = condition("Ready")
if ready == nil then
  return {status = "Progressing", message = "Waiting for the Ready condition"}
end
if (ready.observedGeneration or generation) < generation then
  return {status = "Progressing", message = "Waiting for the operator to reconcile generation " .. generation}
end
if ready.status == "False" then
  return {status = "Degraded", message = said(ready)}
end
local conflict = condition("Conflict")
if conflict ~= nil and conflict.status == "True" then
  return {status = "Degraded", message = said(conflict)}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = said(ready)}
end
local budget = condition("BudgetExceeded")
if budget ~= nil and budget.status == "True" then
  return {status = "Healthy", message = said(budget)}
end
local idle = condition("Idle")
if idle ~= nil and idle.status == "True" then
  return {status = "Healthy", message = said(idle)}
end
return {status = "Healthy", message = said(ready)}
