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
A value kept across upgrades: the given value, else the key of a Secret the chart manages as it
is in the cluster, else a new random one. `helm template` cannot read the cluster: with
gitops: true the chart then fails, naming the value to set, instead of rendering a new random
password on every render (Argo CD would never be Synced).
Call with (list $ "KEY" .given "values.path") for the connection Secret, or
(list $ "KEY" .given "values.path" "secret-name" "alternative") for another one.
*/}}
{{- define "ordinaut.keptSecret" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $given := index . 2 -}}
{{- $field := index . 3 -}}
{{- $secret := include "ordinaut.connectionSecretName" $ctx -}}
{{- $alternative := "point connection.existingSecret at a Secret you manage" -}}
{{- if gt (len .) 4 }}{{ $secret = index . 4 }}{{ $alternative = index . 5 }}{{ end -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace $secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else if $ctx.Values.gitops -}}
{{- fail (printf "%s is empty: with gitops: true the chart cannot read a password back from the cluster (helm template), and a generated one would change on every render. Set %s (e.g. from a secret values plugin or SOPS), or %s" $field $field $alternative) -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The bundled PostgreSQL's application role's password: postgresql.auth.appPassword, else derived
one-way from the owner's password (SHA-256), so it is as stable as that one (GitOps renders
stay identical) without a second value to manage, and knowing it reveals nothing of the
owner's. Call with (list $ ownerPassword).
*/}}
{{- define "ordinaut.appPassword" -}}
{{- $ctx := index . 0 -}}
{{- $ctx.Values.postgresql.auth.appPassword | default (printf "ordinaut-app:%s" (index . 1) | sha256sum | trunc 40) -}}
{{- end -}}

{{/* Is there a separate application-role URL (workers, gateway) next to DATABASE_URL? */}}
{{- define "ordinaut.hasAppDatabaseUrl" -}}
{{- if .Values.postgresql.enabled -}}true
{{- else if include "ordinaut.chartDatabaseUrl" . -}}{{ if .Values.connection.appDatabaseUrl }}true{{ end }}
{{- else if .Values.connection.appDatabaseUrlKey -}}true
{{- end -}}
{{- end -}}

{{/*
The env entry DATABASE_URL. Call with (list $ "owner") for the operator, which applies the
migrations, or (list $ "app") for the workers and the gateway: with the bundled PostgreSQL (or
connection.appDatabaseUrl / appDatabaseUrlKey) they get the application role's URL, which can
read and write rows but has no DDL rights and is no superuser.
*/}}
{{- define "ordinaut.databaseEnv" -}}
{{- $ctx := index . 0 -}}
{{- $app := and (eq (index . 1) "app") (include "ordinaut.hasAppDatabaseUrl" $ctx) -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if include "ordinaut.chartDatabaseUrl" $ctx }}
      name: {{ include "ordinaut.connectionSecretName" $ctx }}
      key: {{ ternary "APP_DATABASE_URL" "DATABASE_URL" (not (not $app)) }}
      {{- else if $ctx.Values.connection.existingSecret }}
      name: {{ $ctx.Values.connection.existingSecret }}
      key: {{ ternary $ctx.Values.connection.appDatabaseUrlKey $ctx.Values.connection.databaseUrlKey (not (not $app)) }}
      {{- else }}
      {{- fail "no database: set postgresql.enabled=true, connection.databaseUrl, or connection.existingSecret" }}
      {{- end }}
{{- end -}}

{{/* The env entry REDIS_URL, from whichever Secret holds it. */}}
{{- define "ordinaut.redisEnv" -}}
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

{{/* DATABASE_URL (the owner's: migrations) and REDIS_URL: the operator's connection env. */}}
{{- define "ordinaut.connectionEnv" -}}
{{ include "ordinaut.databaseEnv" (list . "owner") }}
{{ include "ordinaut.redisEnv" . }}
{{- end -}}

{{- define "ordinaut.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "ordinaut.componentName" (list . "gateway")) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.gateway.serviceAccount.name -}}
{{- end -}}
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

{{/* The Secret holding the gateway's admin token: the user's, or the one the chart makes. */}}
{{- define "ordinaut.gateway.adminSecretName" -}}
{{- .Values.gateway.admin.existingSecret | default (include "ordinaut.componentName" (list . "gateway-admin")) -}}
{{- end -}}

{{/*
The Host headers the gateway's /mcp accepts (rmcp's DNS-rebinding guard), comma-separated: the
Service's in-cluster names (svc, svc.ns, svc.ns.svc, svc.ns.svc.<clusterDomain>), localhost
(kubectl port-forward), the Ingress host and gateway.allowedHosts. A name without a port
matches any port.
*/}}
{{- define "ordinaut.gateway.allowedHosts" -}}
{{- $g := .Values.gateway -}}
{{- $svc := include "ordinaut.componentName" (list . "gateway") -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns $g.clusterDomain) "localhost" "127.0.0.1" "::1" -}}
{{- if and $g.ingress.enabled $g.ingress.host }}{{ $hosts = append $hosts $g.ingress.host }}{{ end -}}
{{- range $g.allowedHosts }}{{ $hosts = append $hosts . }}{{ end -}}
{{- if has "*" $g.allowedHosts }}*{{ else }}{{ $hosts | uniq | join "," }}{{ end -}}
{{- end -}}
