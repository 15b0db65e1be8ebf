{{/*
The chart name, or nameOverride.
*/}}
{{- define "network-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else <release>-<name> (just <release> when it
already contains the name). Truncated to 63 characters: it names Services.
Cluster-scoped objects (ClusterRole, ClusterRoleBinding, the webhook
configuration) carry it too, so two releases never collide.
*/}}
{{- define "network-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "network-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object the chart makes: the standard ones, then commonLabels.
*/}}
{{- define "network-operator.labels" -}}
helm.sh/chart: {{ include "network-operator.chart" . }}
{{ include "network-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the release's lifetime (a Deployment's selector is immutable).
*/}}
{{- define "network-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "network-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "network-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "network-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ClusterKopfPeering object the replicas meet at.
*/}}
{{- define "network-operator.peeringName" -}}
{{- default (include "network-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
The webhook's TLS Secret (written by the chart, or by cert-manager).
*/}}
{{- define "network-operator.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "network-operator.fullname" .) }}
{{- end }}

{{/*
The image, with the tag defaulting to the chart's appVersion, pinned to
image.digest when one is given (the runtime then pulls by digest).
*/}}
{{- define "network-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}
