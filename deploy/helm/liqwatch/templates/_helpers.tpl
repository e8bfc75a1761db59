{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "liqwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Kept at 40 chars so "<fullname>-producer-<group>" stays a valid 63-char name. */}}
{{- define "liqwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "liqwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "liqwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "liqwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------- */}}

{{- define "liqwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "liqwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "liqwatch.labels" -}}
helm.sh/chart: {{ include "liqwatch.chart" . }}
{{ include "liqwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: liqwatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component; args: dict "root" $ "component" "sink" ["group" "binance"] */}}
{{- define "liqwatch.componentLabels" -}}
{{ include "liqwatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
liqwatch.io/producer-group: {{ . }}
{{- end }}
{{- end -}}

{{- define "liqwatch.componentSelector" -}}
{{ include "liqwatch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
liqwatch.io/producer-group: {{ . }}
{{- end }}
{{- end -}}

{{/* Image ------------------------------------------------------------------------------ */}}

{{- define "liqwatch.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Secrets: where each secret comes from ---------------------------------------------- */}}

{{- define "liqwatch.secretName" -}}
{{- include "liqwatch.fullname" . -}}
{{- end -}}

{{- define "liqwatch.hookSecretName" -}}
{{- printf "%s-hook-credentials" (include "liqwatch.fullname" .) -}}
{{- end -}}

{{/* "true" when the writer password comes from a Secret (the chart's or an existing one). */}}
{{- define "liqwatch.clickhouse.hasPassword" -}}
{{- if or .Values.clickhouse.existingSecret .Values.clickhouse.password -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the writer password; hook pods read the hook copy at install time. */}}
{{- define "liqwatch.clickhouse.passwordSecret" -}}
{{- $ctx := .ctx -}}
{{- if $ctx.Values.clickhouse.existingSecret -}}
{{- $ctx.Values.clickhouse.existingSecret -}}
{{- else if .hook -}}
{{- include "liqwatch.hookSecretName" $ctx -}}
{{- else -}}
{{- include "liqwatch.secretName" $ctx -}}
{{- end -}}
{{- end -}}

{{- define "liqwatch.clickhouse.passwordKey" -}}
{{- if .Values.clickhouse.existingSecret -}}
{{- .Values.clickhouse.existingSecretPasswordKey -}}
{{- else -}}
clickhouse-password
{{- end -}}
{{- end -}}

{{- define "liqwatch.notify.hasUrls" -}}
{{- if or .Values.notify.existingSecret .Values.notify.urls -}}true{{- end -}}
{{- end -}}

{{- define "liqwatch.notify.secretName" -}}
{{- default (include "liqwatch.secretName" .) .Values.notify.existingSecret -}}
{{- end -}}

{{- define "liqwatch.notify.secretKey" -}}
{{- if .Values.notify.existingSecret -}}
{{- .Values.notify.existingSecretKey -}}
{{- else -}}
notify-urls
{{- end -}}
{{- end -}}

{{/* "true" when the chart must render its own Secret for the services. */}}
{{- define "liqwatch.secret.needed" -}}
{{- if or (and .Values.clickhouse.password (not .Values.clickhouse.existingSecret)) (and .Values.notify.urls (not .Values.notify.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* Settings shared by every service and hook (non-secret only) ------------------------ */}}

{{- define "liqwatch.settingsData" -}}
LIQWATCH_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
LIQWATCH_KAFKA_TOPIC_PREFIX: {{ .Values.kafka.topicPrefix | quote }}
LIQWATCH_KAFKA_PARTITIONS: {{ .Values.kafka.partitions | quote }}
LIQWATCH_KAFKA_CLIENT_ID: {{ include "liqwatch.fullname" . | quote }}
LIQWATCH_CLICKHOUSE_URL: {{ .Values.clickhouse.url | quote }}
LIQWATCH_CLICKHOUSE_DATABASE: {{ .Values.clickhouse.database | quote }}
LIQWATCH_CLICKHOUSE_USERNAME: {{ .Values.clickhouse.username | quote }}
LIQWATCH_LOG_LEVEL: {{ .Values.logLevel | quote }}
LIQWATCH_METRICS_PORT: {{ .Values.metrics.port | quote }}
{{- range $k, $v := .Values.env }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* Render-time checks that JSON Schema cannot express ------------------------------- */}}

{{- define "liqwatch.validate" -}}
{{- if gt (int .Values.worker.replicas) (int .Values.kafka.partitions) -}}
{{- fail (printf "worker.replicas (%d) must be <= kafka.partitions (%d): a Faust worker without a partition of its own sits idle and its changelog standby is wasted" (int .Values.worker.replicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if and .Values.sink.autoscaling.enabled (gt (int .Values.sink.autoscaling.minReplicas) (int .Values.sink.autoscaling.maxReplicas)) -}}
{{- fail (printf "sink.autoscaling.minReplicas (%d) must be <= sink.autoscaling.maxReplicas (%d)" (int .Values.sink.autoscaling.minReplicas) (int .Values.sink.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- $seenVenues := dict -}}
{{- $seenGroups := dict -}}
{{- range .Values.producers.groups -}}
{{- if hasKey $seenGroups .name -}}
{{- fail (printf "producers.groups: group name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $seenGroups .name true -}}
{{- $group := .name -}}
{{- range .venues -}}
{{- if hasKey $seenVenues . -}}
{{- fail (printf "producers.groups: venue %q is in groups %q and %q; each venue may be produced by one group only (duplicates double the event stream)" . (get $seenVenues .) $group) -}}
{{- end -}}
{{- $_ := set $seenVenues . $group -}}
{{- end -}}
{{- end -}}
{{- if and .Values.clickhouse.analyst.enabled (not (or .Values.clickhouse.analyst.password .Values.clickhouse.analyst.existingSecret)) -}}
{{- fail "clickhouse.analyst.enabled needs clickhouse.analyst.password or clickhouse.analyst.existingSecret" -}}
{{- end -}}
{{- if and .Values.alerter.persistence.enabled (gt (int .Values.alerter.replicas) 1) -}}
{{- fail (printf "alerter.replicas (%d) must be 1 while alerter.persistence.enabled: replicas would share one sent-store volume" (int .Values.alerter.replicas)) -}}
{{- end -}}
{{- if and .Values.clickhouse.analyst.enabled (eq .Values.clickhouse.analyst.username .Values.clickhouse.username) -}}
{{- fail "clickhouse.analyst.username must differ from clickhouse.username (the analyst user is read-only)" -}}
{{- end -}}
{{- end -}}

{{/* Pod building blocks ----------------------------------------------------------------- */}}

{{- define "liqwatch.podMeta" -}}
{{- $root := .root -}}
annotations:
  checksum/settings: {{ include "liqwatch.settingsData" $root | sha256sum }}
  {{- if eq .component "alerter" }}
  checksum/rules: {{ $root.Values.alerter.rules | sha256sum }}
  {{- end }}
  {{- if include "liqwatch.secret.needed" $root }}
  {{- /* rolls the pods when a chart-managed secret changes; env from secretKeyRef is read once */}}
  checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
  {{- end }}
  {{- with $root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
labels:
  {{- include "liqwatch.componentLabels" . | nindent 2 }}
  {{- with $root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "liqwatch.podScheduling" -}}
{{- $v := .Values -}}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "liqwatch.dropNulls" $v.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Removes null values so OpenShift users can unset runAsUser and friends. */}}
{{- define "liqwatch.dropNulls" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "liqwatch.containerSecurityContext" -}}
{{- include "liqwatch.dropNulls" .Values.securityContext -}}
{{- end -}}

{{- define "liqwatch.probes" -}}
{{- $p := .Values.probes -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml $p.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml $p.readiness | nindent 2 }}
{{- end -}}

{{/* Env of a container: settings ConfigMap + secret refs + component extras.
     args: dict "root" $ "clickhouse" bool "hook" bool "env" map */}}
{{- define "liqwatch.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "liqwatch.fullname" .root }}-{{ if .hook }}hook-{{ end }}settings
{{- end -}}

{{- define "liqwatch.clickhousePasswordEnv" -}}
{{- if include "liqwatch.clickhouse.hasPassword" .root }}
- name: LIQWATCH_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "liqwatch.clickhouse.passwordSecret" (dict "ctx" .root "hook" .hook) }}
      key: {{ include "liqwatch.clickhouse.passwordKey" .root }}
{{- end }}
{{- end -}}

{{- define "liqwatch.literalEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "liqwatch.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "liqwatch.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "liqwatch.metricsPort" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
{{- end -}}

{{/* A metrics Service; args: dict "root" $ "component" c ["group" g] "name" n ["headless" true] */}}
{{- define "liqwatch.metricsService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "liqwatch.componentLabels" . | nindent 4 }}
    liqwatch.io/metrics: "true"
spec:
  type: ClusterIP
  {{- if .headless }}
  clusterIP: None
  publishNotReadyAddresses: true
  {{- end }}
  selector:
    {{- include "liqwatch.componentSelector" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end -}}

{{/* A PodDisruptionBudget; args: dict "root" $ "component" c ["group" g] "name" n "pdb" values */}}
{{- define "liqwatch.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "liqwatch.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "liqwatch.componentSelector" . | nindent 6 }}
{{- end }}
{{- end -}}
