-- Argo CD health of an EdgeFleet, from the Ready, Progressing and Degraded conditions the operator
-- writes. Written for argocd-cm's restricted Lua (no string library): only base, table and a safe os.
--   Progressing  the operator has not reconciled this generation yet, a wave is rolling out, or
--                online sites are still becoming Ready
--   Suspended    the rollout is paused (spec.rollout.paused) and holds at its wave
--   Degraded     a revision was rolled back, a rollback is impossible, sites are failing, or every
--                site is offline
--   Healthy      every online site runs and serves the current revision
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
local progressing = condition("Progressing")
local degraded = condition("Degraded")
if ready == nil or progressing == nil or degraded == nil then
  return {status = "Progressing", message = "Waiting for the Ready, Progressing and Degraded conditions"}
end
if degraded.status == "True" then
  return {status = "Degraded", message = said(degraded)}
end
if ready.status == "False" and ready.reason == "AllSitesOffline" then
  return {status = "Degraded", message = said(ready)}
end
if progressing.reason == "Paused" then
  return {status = "Suspended", message = said(progressing)}
end
if progressing.status == "True" then
  return {status = "Progressing", message = said(progressing)}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = said(ready)}
end
return {status = "Healthy", message = said(ready)}
