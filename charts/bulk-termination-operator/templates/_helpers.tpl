{{/* vim: set filetype=mustache: */}}

{{/*
Chart name, overridable.
*/}}
{{- define "bulkterm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, truncated to 63 characters (DNS label limit). If the release
name already contains the chart name, the release name alone is used.
*/}}
{{- define "bulkterm.fullname" -}}
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

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "bulkterm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "bulkterm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bulkterm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
Labels for every object of the release, commonLabels included. commonLabels never reach a
selector (a Deployment's selector is immutable, so adding a label later would break
`helm upgrade`); the chart's own labels win over a commonLabel of the same key.
*/}}
{{- define "bulkterm.labels" -}}
{{- $own := dict -}}
{{- $_ := set $own "app.kubernetes.io/version" .Chart.AppVersion -}}
{{- $_ := set $own "app.kubernetes.io/part-of" "bulk-termination-operator" -}}
{{- $_ := set $own "app.kubernetes.io/managed-by" .Release.Service -}}
{{- $_ := set $own "helm.sh/chart" (include "bulkterm.chart" .) -}}
{{- $selector := include "bulkterm.selectorLabels" . | fromYaml -}}
{{- toYaml (merge $selector $own (deepCopy .Values.commonLabels)) -}}
{{- end -}}

{{/*
ServiceAccount name.
*/}}
{{- define "bulkterm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bulkterm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag
(tag defaults to the chart's appVersion).
*/}}
{{- define "bulkterm.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A number as a flag value. Helm reads values as float64, which Go prints in exponent form
from 1e6 on (2592000 -> "2.592e+06"); print whole numbers as integers.
*/}}
{{- define "bulkterm.number" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/*
True ("true") when kopf peering is on: more than one replica.
*/}}
{{- define "bulkterm.peeringEnabled" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/*
Peering object name.
*/}}
{{- define "bulkterm.peeringName" -}}
{{- default (include "bulkterm.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/*
True ("true") when the operator watches all namespaces (watchNamespaces is empty).
*/}}
{{- define "bulkterm.clusterWide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
Cross-value checks that JSON schema cannot express readably. Included by the Deployment
so that they run for `helm install`, `helm template` and `helm lint` alike.
*/}}
{{- define "bulkterm.validate" -}}
{{- if and (not (kindIs "invalid" .Values.ttl.defaultSecondsAfterFinished)) (not .Values.ttl.enabled) -}}
{{- fail "ttl.defaultSecondsAfterFinished is set but ttl.enabled is false: the operator would lack the RBAC `delete` on bulkterminations it needs to apply the TTL. Set ttl.enabled=true." -}}
{{- end -}}
{{- if ne (len .Values.watchNamespaces) (len (uniq .Values.watchNamespaces)) -}}
{{- fail (printf "watchNamespaces has duplicates: %v" .Values.watchNamespaces) -}}
{{- end -}}
{{- with .Values.podDisruptionBudget -}}
{{- if and .enabled (not (kindIs "invalid" .minAvailable)) (not (kindIs "invalid" .maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)." -}}
{{- end -}}
{{- if and .enabled (kindIs "invalid" .minAvailable) (kindIs "invalid" .maxUnavailable) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable (or enabled=false)." -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The rules the operator needs on BulkTerminations, Events and Secrets. Rendered into a
ClusterRole (all namespaces) or into a Role per watched namespace.
*/}}
{{- define "bulkterm.controllerRules" -}}
# Application: list and watch BulkTerminations (kopf never GETs one); kopf patches the
# object itself for its finalizer and progress annotations, and the operator patches the
# /status subresource for progress. tests/e2e/test_rbac.py removes each grant in turn on a
# real API server and checks a real run needs it.
- apiGroups: ["aiapi.bulkops.dev"]
  resources: ["bulkterminations"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["aiapi.bulkops.dev"]
  resources: ["bulkterminations/status"]
  verbs: ["patch"]
{{- if .Values.ttl.enabled }}
# Application: delete finished BulkTerminations whose TTL has expired (ttl.enabled).
- apiGroups: ["aiapi.bulkops.dev"]
  resources: ["bulkterminations"]
  verbs: ["delete"]
{{- end }}
# Application: read the AI Core service key a BulkTermination references. `get` by
# name only: never list or watch, so the operator cannot enumerate Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- with .Values.rbac.secretResourceNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
{{- end }}
# Framework and application: Events about progress and errors on BulkTerminations
# (kopf posts core/v1 Events; it never patches them).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- /* No Leases here: the runs' Leases live in the release namespace only (rbac.yaml). */}}
{{- end -}}

{{/*
The ValidatingAdmissionPolicy (and binding, of the same name) that checks the verb `use` on a
BulkTermination's Secret: cluster-scoped, so named after the release unless named in values.
*/}}
{{- define "bulkterm.admissionPolicyName" -}}
{{- .Values.secretUse.admissionPolicy.name | default (printf "%s-admission" (include "bulkterm.fullname" .)) -}}
{{- end -}}
