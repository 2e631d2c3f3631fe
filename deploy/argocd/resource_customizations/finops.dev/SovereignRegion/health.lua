-- Argo CD health of a SovereignRegion, from the conditions the operator writes.
-- Written for argocd-cm's restricted Lua (no string library): only base, table and a safe os.
--   Progressing  the operator has not reconciled this generation yet
--   Degraded     the region cannot hold its workloads (Ready=False: no node matches), a bound
--                namespace is claimed by another region (NamespaceConflict=True: nobody enforces), or
--                the audit found workloads running where they must not (Compliant=False)
--   Healthy      every bound workload is where it may be
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
if ready.status == "False" then
  return {status = "Degraded", message = said(ready)}
end
local conflict = condition("NamespaceConflict")
if conflict ~= nil and conflict.status == "True" then
  return {status = "Degraded", message = said(conflict)}
end
local compliant = condition("Compliant")
if compliant ~= nil and compliant.status == "False" then
  return {status = "Degraded", message = said(compliant)}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = said(ready)}
end
return {status = "Healthy", message = said(ready)}
