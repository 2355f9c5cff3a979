{{/* Names: "<release>-haggle", or the release name when it already says haggle. */}}
{{- define "haggle.fullname" -}}
{{- if contains "haggle" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-haggle" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "haggle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: haggle
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: haggle
{{- end -}}

{{/* Pod selector of one service; call with (dict "root" $ "name" "listing"). */}}
{{- define "haggle.selectorLabels" -}}
app.kubernetes.io/name: haggle
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "haggle.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "haggle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "haggle.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* The non-secret settings every container reads from the environment. */}}
{{- define "haggle.config" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
HAGGLE_MARKET_ID: {{ .Values.config.marketId | quote }}
HAGGLE_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
HAGGLE_GROUP_PREFIX: {{ .Values.config.groupPrefix | quote }}
HAGGLE_HTTP_HOST: "0.0.0.0"
HAGGLE_HTTP_PORT: {{ .Values.httpPort | quote }}
HAGGLE_TOPIC_REPLICATION_FACTOR: {{ .Values.kafka.topicReplicationFactor | quote }}
HAGGLE_OPERATOR_PUBLIC_KEYS: {{ join "," .Values.operator.publicKeys | quote }}
{{- with .Values.web.publicUrl }}
HAGGLE_WEB_PUBLIC_URL: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The Secret with the web app's signing and data keys (HAGGLE_OPERATOR_KEY, HAGGLE_WEB_DATA_KEY,
HAGGLE_SHIPPING_KEY; settlement reads only the last, optionally). */}}
{{- define "haggle.webSecretName" -}}
{{ .Values.web.existingSecret | default (printf "%s-web" (include "haggle.fullname" .)) }}
{{- end -}}

{{- define "haggle.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecret }}
{{- else if .Values.database.url -}}
{{ include "haggle.fullname" . }}-database
{{- else -}}
{{ fail "set database.existingSecret (a Secret with the postgresql:// URL) or database.url" }}
{{- end -}}
{{- end -}}

{{- define "haggle.databaseSecretKey" -}}
{{ ternary .Values.database.existingSecretKey "DATABASE_URL" (ne .Values.database.existingSecret "") }}
{{- end -}}

{{- define "haggle.anthropicSecretName" -}}
{{- if .Values.anthropic.existingSecret -}}
{{ .Values.anthropic.existingSecret }}
{{- else if .Values.anthropic.apiKey -}}
{{ include "haggle.fullname" . }}-anthropic
{{- end -}}
{{- end -}}

{{- define "haggle.anthropicSecretKey" -}}
{{ ternary .Values.anthropic.existingSecretKey "ANTHROPIC_API_KEY" (ne .Values.anthropic.existingSecret "") }}
{{- end -}}

{{- define "haggle.stripeSecretName" -}}
{{- if .Values.stripe.existingSecret -}}
{{ .Values.stripe.existingSecret }}
{{- else if .Values.stripe.apiKey -}}
{{ include "haggle.fullname" . }}-stripe
{{- end -}}
{{- end -}}

{{- define "haggle.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "haggle.databaseSecretName" . }}
      key: {{ include "haggle.databaseSecretKey" . }}
{{- end -}}

{{- define "haggle.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "haggle.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "haggle.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The enabled services, in start order. */}}
{{- define "haggle.enabledServices" -}}
{{- range $name := list "listing" "negotiation" "settlement" "agents" "web" "gateway" }}
{{- $svc := get $.Values.services $name }}
{{- if and $svc $svc.enabled }}
- {{ $name }}
{{- end }}
{{- end }}
{{- end -}}
