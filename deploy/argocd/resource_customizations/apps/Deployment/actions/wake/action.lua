if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["finops.dev/wake"] = "argocd"
return obj
