{{/* Object name: the release name, or release-chart when the release name does not contain the chart's. */}}
{{- define "finops-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "finops-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: never change them after an install (a Deployment's selector is immutable). */}}
{{- define "finops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "finops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "finops-operator.labels" -}}
{{ include "finops-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: finops
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "finops-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when cert-manager provides the webhook certificates, else empty. */}}
{{- define "finops-operator.certManager" -}}
{{- if and .Values.admission.enabled (eq .Values.admission.certificates.source "certManager") -}}true{{- end -}}
{{- end -}}


{{/* The Secret with the webhook's serving certificate, shared by every replica. */}}
{{- define "finops-operator.webhookSecret" -}}
{{- .Values.admission.certificates.secretName -}}
{{- end -}}

{{/* Rules across values, which the schema cannot explain in its messages. */}}
{{- define "finops-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount %v needs leaderElection.enabled=true: without the Lease every replica would reconcile and write" .Values.replicaCount) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (le (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable %v with replicaCount %v would block every node drain: raise replicaCount or set podDisruptionBudget.enabled=false" .Values.podDisruptionBudget.minAvailable .Values.replicaCount) -}}
{{- end -}}
{{- end -}}
