{{/* Name of every namespaced object, and of the cluster-scoped ones. */}}
{{- define "kseal.fullname" -}}
{{- default "kseal-controller" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of objects outside the release namespace (cluster-scoped, and the
     Roles in watched namespaces): release-scoped, so two releases in two
     namespaces never collide. */}}
{{- define "kseal.scopedName" -}}
{{- printf "%s-%s" (include "kseal.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kseal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kseal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kseal.selectorLabels" -}}
app.kubernetes.io/name: kseal-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kseal.labels" -}}
{{ include "kseal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kseal
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kseal.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* "true" when leader election is on: asked for, or more than one replica. */}}
{{- define "kseal.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* What the controller needs in every namespace it reconciles. */}}
{{- define "kseal.reconcileRules" -}}
# SealedSecrets: list and watch (the controller's cache); status via merge patch.
- apiGroups: ["kseal.dev"]
  resources: ["sealedsecrets"]
  verbs: ["list", "watch"]
- apiGroups: ["kseal.dev"]
  resources: ["sealedsecrets/status"]
  verbs: ["patch"]
# The Secrets it owns: metadata-only list/watch (label kseal.dev/owned=true),
# GET by the SealedSecret's name, create, replace, and delete to re-create one
# whose type or immutable data must change (only its own, with the version it
# read as a precondition). RBAC cannot restrict these to labelled Secrets: see
# README.md "RBAC: what each mode grants".
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
# Events (events.k8s.io/v1; a repeated event is patched into a series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rollout.enabled }}
# rollout.enabled: restarts for spec.rollout. List the workloads to find the
# consumers of a changed Secret, and merge-patch the two kseal.dev annotations
# on a consumer's pod template (docs/rollout.md). Nothing else of them.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["list", "patch"]
{{- end }}
{{- end -}}

{{/* A duration of one number and one unit (30d, 720h, 90m, 45s, 2w) or 0,
     in seconds; "" for any other form (the controller reads those). */}}
{{- define "kseal.seconds" -}}
{{- $text := toString . | trim -}}
{{- if eq $text "0" -}}
0
{{- else if regexMatch "^[0-9]+(s|m|h|d|w)$" $text -}}
{{- $units := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 -}}
{{- mul (regexFind "^[0-9]+" $text) (get $units (regexFind "[a-z]$" $text)) -}}
{{- end -}}
{{- end -}}

{{/* Refuses a re-wrap grace period as long as the renewal period or longer
     (the controller would refuse to start). */}}
{{- define "kseal.checkRewrapGracePeriod" -}}
{{- $renew := include "kseal.seconds" .Values.controller.keyRenewPeriod -}}
{{- $grace := include "kseal.seconds" .Values.controller.rewrapGracePeriod -}}
{{- if and $renew $grace (ne $renew "0") -}}
{{- if ge (int64 $grace) (int64 $renew) -}}
{{- fail (printf "controller.rewrapGracePeriod (%v) must be shorter than controller.keyRenewPeriod (%v): values sealed to the previous key must become due before the next renewal; choose a shorter grace period (\"0\" turns it off)" .Values.controller.rewrapGracePeriod .Values.controller.keyRenewPeriod) -}}
{{- end -}}
{{- end -}}
{{- end -}}
