{{/* A hook Job running the liqwatch image.
     args: dict "root" $ "component" c "weight" w ("args" list | "command" list) "clickhouse" bool ["analyst" bool] */}}
{{- define "liqwatch.hookJob" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $analyst := $root.Values.clickhouse.analyst -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "liqwatch.fullname" $root }}-{{ .component }}
  labels:
    {{- include "liqwatch.componentLabels" $ctx | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: {{ .weight | quote }}
    {{- /* the last run stays for `kubectl logs` until the next upgrade replaces it */}}
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: {{ $root.Values.jobs.backoffLimit }}
  activeDeadlineSeconds: {{ $root.Values.jobs.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "liqwatch.componentLabels" $ctx | nindent 8 }}
    spec:
      restartPolicy: Never
      {{- with $root.Values.jobs.serviceAccountName }}
      serviceAccountName: {{ . }}
      {{- end }}
      automountServiceAccountToken: false
      {{- include "liqwatch.podScheduling" $root | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "liqwatch.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- with .command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "liqwatch.envFrom" (dict "root" $root "hook" true) | nindent 10 }}
          {{- $env := "" }}
          {{- if .clickhouse }}
          {{- $env = include "liqwatch.clickhousePasswordEnv" (dict "root" $root "hook" true) }}
          {{- end }}
          {{- if .analyst }}
          {{- $env = print $env "\n- name: LIQWATCH_ANALYST_USERNAME\n  value: " ($analyst.username | quote) }}
          {{- $env = print $env "\n- name: LIQWATCH_ANALYST_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: " (default (include "liqwatch.hookSecretName" $root) $analyst.existingSecret) "\n      key: " (ternary $analyst.existingSecretPasswordKey "analyst-password" (ne $analyst.existingSecret "")) }}
          {{- end }}
          {{- with trim $env }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml $root.Values.jobs.resources | nindent 12 }}
          securityContext:
            {{- include "liqwatch.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "liqwatch.tmpMount" $root | nindent 12 }}
            {{- if .analyst }}
            - name: scripts
              mountPath: /opt/liqwatch-hooks
              readOnly: true
            {{- end }}
      volumes:
        {{- include "liqwatch.tmpVolume" $root | nindent 8 }}
        {{- if .analyst }}
        - name: scripts
          configMap:
            name: {{ include "liqwatch.fullname" $root }}-hook-scripts
            defaultMode: 0444
        {{- end }}
{{- end -}}
