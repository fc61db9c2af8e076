{{/* Names, labels and the pieces every Deployment shares. */}}

{{- define "ordinaut.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ordinaut.fullname" -}}
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

{{/* "<fullname>-<component>", at most 63 characters. Call with (list $ "component"). */}}
{{- define "ordinaut.componentName" -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (include "ordinaut.fullname" $ctx | trunc 50 | trimSuffix "-") (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ordinaut.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "ordinaut.labels" -}}
helm.sh/chart: {{ include "ordinaut.chart" . }}
app.kubernetes.io/name: {{ include "ordinaut.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ordinaut
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. Call with (list $ "component"). */}}
{{- define "ordinaut.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "ordinaut.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component. Call with (list $ "component"). */}}
{{- define "ordinaut.componentLabels" -}}
{{ include "ordinaut.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "ordinaut.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "ordinaut.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "ordinaut.componentName" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ordinaut.worker.serviceAccountName" -}}
{{- if .Values.worker.serviceAccount.create -}}
{{- default (include "ordinaut.componentName" (list . "worker")) .Values.worker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.worker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* ---- Connection Secret ------------------------------------------------------------ */}}

{{/* The Secret the chart creates for URLs and generated passwords. */}}
{{- define "ordinaut.connectionSecretName" -}}
{{- include "ordinaut.componentName" (list . "connection") -}}
{{- end -}}

{{/* Does the chart-created connection Secret carry DATABASE_URL? */}}
{{- define "ordinaut.chartDatabaseUrl" -}}
{{- if or .Values.postgresql.enabled .Values.connection.databaseUrl -}}true{{- end -}}
{{- end -}}

{{- define "ordinaut.chartRedisUrl" -}}
{{- if or .Values.redis.enabled .Values.connection.redisUrl -}}true{{- end -}}
{{- end -}}

{{/*
A value kept across upgrades: the given value, else the key of the chart's connection Secret
as it is in the cluster, else a new random one. `helm template` cannot read the cluster: with
gitops: true the chart then fails, naming the value to set, instead of rendering a new random
password on every render (Argo CD would never be Synced).
Call with (list $ "KEY" .given "values.path").
*/}}
{{- define "ordinaut.keptSecret" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $given := index . 2 -}}
{{- $field := index . 3 -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace (include "ordinaut.connectionSecretName" $ctx) -}}
{{- if and $existing (hasKey $existing.data $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else if $ctx.Values.gitops -}}
{{- fail (printf "%s is empty: with gitops: true the chart cannot read a password back from the cluster (helm template), and a generated one would change on every render. Set %s (e.g. from a secret values plugin or SOPS), or point connection.existingSecret at a Secret you manage" $field $field) -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The env entries DATABASE_URL and REDIS_URL, from whichever Secret holds them. */}}
{{- define "ordinaut.connectionEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if include "ordinaut.chartDatabaseUrl" . }}
      name: {{ include "ordinaut.connectionSecretName" . }}
      key: DATABASE_URL
      {{- else if .Values.connection.existingSecret }}
      name: {{ .Values.connection.existingSecret }}
      key: {{ .Values.connection.databaseUrlKey }}
      {{- else }}
      {{- fail "no database: set postgresql.enabled=true, connection.databaseUrl, or connection.existingSecret" }}
      {{- end }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- if include "ordinaut.chartRedisUrl" . }}
      name: {{ include "ordinaut.connectionSecretName" . }}
      key: REDIS_URL
      {{- else if .Values.connection.existingSecret }}
      name: {{ .Values.connection.existingSecret }}
      key: {{ .Values.connection.redisUrlKey }}
      {{- else }}
      {{- fail "no Redis: set redis.enabled=true, connection.redisUrl, or connection.existingSecret" }}
      {{- end }}
{{- end -}}

{{/* Pod-level pieces shared by the operator and the worker. Call with (list $ .Values.<component>). */}}
{{- define "ordinaut.podScheduling" -}}
{{- $c := index . 1 -}}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* HTTP probes on the binary's own /healthz and /readyz. */}}
{{- define "ordinaut.probes" -}}
# Migrations run before the HTTP server starts: give the first start a minute.
startupProbe:
  httpGet: {path: /healthz, port: http-metrics}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /healthz, port: http-metrics}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http-metrics}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/*
With the opt-in PostgreSQL: wait for it before starting (the binaries exit when the
database is unreachable at start, and restart backoff would slow the first install down).
Uses the PostgreSQL image's pg_isready; the Ordinaut image has no shell.
*/}}
{{- define "ordinaut.waitForPostgres" -}}
{{- if .Values.postgresql.enabled }}
initContainers:
  - name: wait-for-postgresql
    image: {{ printf "%s:%s" .Values.postgresql.image.repository .Values.postgresql.image.tag }}
    imagePullPolicy: {{ .Values.postgresql.image.pullPolicy }}
    command:
      - sh
      - -c
      - until pg_isready -q -h {{ include "ordinaut.componentName" (list . "postgresql") }} -p 5432; do echo waiting for PostgreSQL; sleep 2; done
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 64Mi}
    securityContext:
      {{- toYaml (mustMergeOverwrite (deepCopy .Values.securityContext) (dict "runAsUser" 999 "runAsGroup" 999)) | nindent 6 }}
{{- end }}
{{- end -}}
