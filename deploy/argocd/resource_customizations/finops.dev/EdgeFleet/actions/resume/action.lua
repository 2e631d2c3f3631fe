if obj.spec.rollout ~= nil then
  obj.spec.rollout.paused = false
end
return obj
