{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "derp-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it contains the chart name,
else "<release>-<chart>", truncated to 63 characters.
*/}}
{{- define "derp-controller.fullname" -}}
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

{{- define "derp-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "derp-controller.labels" -}}
helm.sh/chart: {{ include "derp-controller.chart" . }}
{{ include "derp-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: derp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: unique per release.
*/}}
{{- define "derp-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "derp-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "derp-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "derp-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "derp-controller.meshSecretName" -}}
{{- if .Values.mesh.existingSecret }}
{{- .Values.mesh.existingSecret }}
{{- else }}
{{- printf "%s-mesh" (include "derp-controller.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The mesh key: mesh.key when set; else the key of the Secret this release
already has (kept on upgrade; lookup finds nothing under helm template);
else a fresh one, 64 lowercase hex characters. The result is remembered for
the rest of this render so the Secret and the Deployment's checksum agree.
*/}}
{{- define "derp-controller.meshKey" -}}
{{- if .Values.mesh.key }}
{{- .Values.mesh.key }}
{{- else }}
{{- if not (hasKey .Values "__derpMeshKey") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "derp-controller.meshSecretName" .) | default dict }}
{{- $old := dig "data" "mesh-key" "" $existing | b64dec | trim }}
{{- if regexMatch "^[0-9a-f]{64}$" $old }}
{{- $_ := set .Values "__derpMeshKey" $old }}
{{- else }}
{{- $_ := set .Values "__derpMeshKey" (sha256sum (randAlphaNum 64)) }}
{{- end }}
{{- end }}
{{- index .Values "__derpMeshKey" }}
{{- end }}
{{- end }}

{{/*
The central endpoint: centralEndpoint; else the Ingress host (HTTPS, 443);
else the relay's in-cluster Service on its DERP port.
*/}}
{{- define "derp-controller.centralEndpoint" -}}
{{- if .Values.centralEndpoint }}
{{- .Values.centralEndpoint }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- .Values.ingress.host }}
{{- else }}
{{- printf "%s.%s.svc.cluster.local:%d" (include "derp-controller.fullname" .) .Release.Namespace (int .Values.service.derpPort) }}
{{- end }}
{{- end }}

{{- define "derp-controller.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "derp-controller.fullname" .)) .Values.ingress.tls.secretName }}
{{- end }}
