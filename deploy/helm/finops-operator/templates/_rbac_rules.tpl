{{/* RBAC rules, in the order of deploy/rbac.yaml (a test keeps them equal). Namespaced resources: */}}
{{- define "finops-operator.namespacedRules" -}}
# The operator's own kinds: Kopf watches them, adds/removes its finalizer and keeps its handler
# progress and last-handled state in annotations, all via patch. It never creates or deletes them.
- apiGroups: ["finops.dev"]
  resources: ["finopspolicies", "edgefleets"]
  verbs: ["get", "list", "watch", "patch"]
# Handlers report budgets and fleet roll-out progress in .status.
- apiGroups: ["finops.dev"]
  resources: ["finopspolicies/status", "edgefleets/status"]
  verbs: ["get", "patch"]

# Deployments: patch replicas for budget and idle-GPU actions; create/delete because an EdgeFleet
# owns one Deployment per site (written by server-side apply, which is a patch that may create).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "create", "delete"]
# ControllerRevisions: an EdgeFleet stores the content of each revision it rolls out in one it owns
# (labeled finops.dev/edgefleet), so a rollback re-renders exactly what ran before; create new
# ones, delete those beyond revisionHistoryLimit. Never patched: a revision's content is immutable.
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["get", "list", "watch", "create", "delete"]
# StatefulSets and DaemonSets: sovereignty audit (read) and node-affinity repair (patch).
- apiGroups: ["apps"]
  resources: ["statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
# Jobs and CronJobs: GPU-hour accounting and sovereignty audit; patch to suspend or repair affinity.
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "patch"]

# Pods: GPU-hour ledger; patch adds/removes the ledger finalizer so a pod's usage is booked
# before it disappears.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
# Evict (PDB-respecting) pods that violate a sovereignty or budget policy in enforce mode.
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
# PVCs (data location for the sovereignty audit): read only.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch"]
# Model-signing public keys a ModelReleaseGate names: the operator watches only ConfigMaps labelled
# finops.dev/model-signing-key (a server-side label selector; RBAC cannot be scoped by label).
# Public keys are not secret: Secrets are never listed or watched.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch"]
# Secrets: get only (no list/watch), to read the alert webhook URL a FinOpsPolicy references.
# This has to be cluster-wide because that Secret lives in the policy's own namespace, which can
# be any namespace. To narrow it, replace this rule by per-namespace Roles in an overlay.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Kubernetes events about handler outcomes and enforcement actions (Kopf posts core/v1 events;
# events.k8s.io for the newer API).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]

# HorizontalPodAutoscalers: the forecaster creates, tunes and removes HPAs for forecast-driven scaling.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}

{{/* Cluster-scoped resources: always in the ClusterRole. */}}
{{- define "finops-operator.clusterRules" -}}
# SovereignRegions and ModelReleaseGates (cluster-scoped): watched, finalized and annotated by Kopf
# like the kinds above, with violations reported in .status.
- apiGroups: ["finops.dev"]
  resources: ["sovereignregions", "modelreleasegates"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["finops.dev"]
  resources: ["sovereignregions/status", "modelreleasegates/status"]
  verbs: ["get", "patch"]
# Nodes (region/zone labels, GPU capacity), namespaces (policy scoping) and PVs (data location for
# the sovereignty audit): read only.
- apiGroups: [""]
  resources: ["nodes", "namespaces", "persistentvolumes"]
  verbs: ["get", "list", "watch"]
# Kopf-managed admission: at start-up the operator creates its webhook configuration and patches
# it (including the caBundle of its self-generated CA). No delete: it is left in place on exit.
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]
  verbs: ["get", "list", "watch", "create", "patch"]
# ValidatingAdmissionPolicies (CEL) the operator renders from policies, with their bindings;
# delete when the originating policy is removed.
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicies", "validatingadmissionpolicybindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]

# Kopf's resource discovery checks the CRDs it serves are installed; read only.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}
