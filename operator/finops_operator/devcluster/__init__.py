"""A real local Kubernetes control plane for development and tests (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok), built from source when not already present."""
