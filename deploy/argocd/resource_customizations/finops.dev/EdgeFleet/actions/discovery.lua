-- pause holds a rollout at its current wave (spec.rollout.paused), resume lets it continue.
-- Under auto-sync with self-heal, Git owns the spec: see docs/GITOPS.md (ignoreDifferences on
-- /spec/rollout/paused with RespectIgnoreDifferences) before using these on a self-healed app.
local actions = {}
local paused = obj.spec.rollout ~= nil and obj.spec.rollout.paused == true
actions["pause"] = {["disabled"] = paused, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
