-- Argo CD health of a BulkTermination (aiapi.bulkops.dev). Install: docs/gitops.md.
--
-- Uses only what Argo CD opens for a check from argocd-cm: the base and table libraries
-- (no string, no math), so it runs the same with or without useOpenLibs.
--
--   Progressing  the operator has not yet observed this generation (a new object reads
--                status.observedGeneration 0; a spec changed after the run), or the run
--                is going on: the message is the Reconciling/Ready condition's
--   Healthy      Complete=True (dry runs too): the Complete condition's message
--   Degraded     Failed=True, or Stalled=True (a missing Secret, refused credentials: the
--                operator retries, but a person must act): that condition's message
--   Suspended    Suspended=True (spec.suspend): nothing new is sent until it is resumed;
--                or Ready's reason AwaitingApproval (spec.requireApproval): the plan waits
--                for a person to approve its digest
local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind and c.status == "True" then
      return c
    end
  end
  return nil
end

local function said(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

local status = obj.status
local generation = obj.metadata.generation or 0
if status == nil or status.observedGeneration == nil or status.observedGeneration ~= generation then
  local observed = 0
  if status ~= nil and status.observedGeneration ~= nil then
    observed = status.observedGeneration
  end
  return {
    status = "Progressing",
    message = "Waiting for the operator to observe generation " .. generation ..
      " (observed: " .. observed .. ")",
  }
end

local failed = condition(status, "Failed")
if failed ~= nil then
  return {status = "Degraded", message = said(failed)}
end
local complete = condition(status, "Complete")
if complete ~= nil then
  return {status = "Healthy", message = said(complete)}
end
local stalled = condition(status, "Stalled")
if stalled ~= nil then
  return {status = "Degraded", message = said(stalled)}
end
local suspended = condition(status, "Suspended")
if suspended ~= nil then
  return {status = "Suspended", message = said(suspended)}
end
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" and c.reason == "AwaitingApproval" then
      return {status = "Suspended", message = said(c)}
    end
  end
end
local reconciling = condition(status, "Reconciling")
if reconciling ~= nil then
  return {status = "Progressing", message = said(reconciling)}
end
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      return {status = "Progressing", message = said(c)}
    end
  end
end
return {status = "Progressing", message = "Waiting for the operator"}
