{{/*
Names and labels.
*/}}
{{- define "otelcol-k8sevents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otelcol-k8sevents.fullname" -}}
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

{{- define "otelcol-k8sevents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otelcol-k8sevents.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the ServiceAccount to use when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "otelcol-k8sevents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otelcol-k8sevents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "otelcol-k8sevents.labels" -}}
{{ include "otelcol-k8sevents.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otelcol-k8sevents.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Checks across values that the schema cannot express, each failing with the
name of the value and what is allowed.
*/}}
{{- define "otelcol-k8sevents.validate" -}}
{{- if and .Values.namespaces .Values.excludeNamespaces }}
{{- fail "excludeNamespaces: only applies when namespaces is empty (all namespaces are read); remove one of the two" }}
{{- end }}
{{- range $name := list "otlp" "loki" "elastic" }}
{{- $p := index $.Values.presets $name }}
{{- if and $p.enabled (not $p.endpoint) }}
{{- fail (printf "presets.%s.endpoint: required when presets.%s.enabled is true; set the URL the Events are sent to" $name $name) }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and (not (kindIs "invalid" (index $pdb "maxUnavailable"))) (not (kindIs "invalid" (index $pdb "minAvailable"))) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (set the other to null)" }}
{{- end }}
{{- $config := include "otelcol-k8sevents.config" . | fromYaml }}
{{- $sends := false }}
{{- range $name, $p := dig "service" "pipelines" dict $config }}
{{- /* the count pipeline's only exporter is the count connector */}}
{{- if and (hasPrefix "logs" $name) (without ($p.exporters | default list) "count") }}
{{- $sends = true }}
{{- end }}
{{- end }}
{{- if not $sends }}
{{- fail "presets: no pipeline sends the Events anywhere; enable presets.otlp, presets.loki or presets.elastic, or add a pipeline under config.service.pipelines" }}
{{- end }}
{{- with .Values.alerts }}
{{- if and .prometheusRule.enabled (not $.Values.eventMetrics.enabled) }}
{{- fail "alerts.prometheusRule.enabled: its rules count k8s_events_total, which eventMetrics serves; set eventMetrics.enabled to true" }}
{{- end }}
{{- if and .lokiRules.enabled (not (dig "receivers" "k8sevents" "rules" nil $config)) }}
{{- fail "alerts.lokiRules.enabled: its rules select the records that the receiver's rules mark as alerts (k8s.event.alert.rule); set alerts.receiverRules.enabled to true, or give receivers.k8sevents.rules in config" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The verbs on events the receiver needs in its mode: poll lists; watch lists
(when it has no cursor to watch from) and watches. Never get.
*/}}
{{- define "otelcol-k8sevents.eventVerbs" -}}
{{- if eq .Values.mode "poll" }}["list"]{{ else }}["list", "watch"]{{ end }}
{{- end }}

{{/*
The rules for reading in the scope of the receiver (cluster-wide, or in each
of namespaces). Features that read more than Events add their rules here.
*/}}
{{- define "otelcol-k8sevents.readRules" -}}
- apiGroups: [""]
  resources: ["events"]
  verbs: {{ include "otelcol-k8sevents.eventVerbs" . }}
{{- with .Values.extract }}
{{- if or .labels .annotations }}
# extract::labels and extract::annotations: the involved objects and their
# top-level owners.
- apiGroups: [""]
  resources: {{ if $.Values.namespaces }}["pods"]{{ else }}["pods", "nodes"]{{ end }}
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get"]
{{- else if .owners }}
# extract::owners
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get"]
{{- end }}
{{- end }}
{{- end }}

{{/*
The subjects of every binding: the replicas' ServiceAccount.
*/}}
{{- define "otelcol-k8sevents.subjects" -}}
- kind: ServiceAccount
  name: {{ include "otelcol-k8sevents.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
otelcol-k8sevents.merge merges .src into .dst (both maps; .dst is changed):
maps are merged key by key, any other value of .src replaces that of .dst,
and a null in .src removes the key. Unlike mustMergeOverwrite, false, 0, ""
and [] in .src replace what .dst holds.
*/}}
{{- define "otelcol-k8sevents.merge" -}}
{{- $dst := .dst }}
{{- range $key, $value := .src }}
{{- if kindIs "invalid" $value }}
{{- $_ := unset $dst $key }}
{{- else if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) }}
{{- include "otelcol-k8sevents.merge" (dict "dst" (get $dst $key) "src" $value) }}
{{- else }}
{{- $_ := set $dst $key (deepCopy $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The exporter settings every preset shares: no queue, so that an export
returns only once the endpoint has the data and the receiver moves its resume
point only past delivered Events; retries until the endpoint is back.
*/}}
{{- define "otelcol-k8sevents.exporter" -}}
endpoint: {{ .endpoint | quote }}
{{- with .headers }}
headers:
  {{- toYaml . | nindent 2 }}
{{- end }}
sending_queue:
  enabled: false
retry_on_failure:
  enabled: true
  max_elapsed_time: 0
{{- end }}

{{/*
alerts.receiverRules: the seed's alert rules, as otelcol-config.yaml ships
them (e2e/chart_alerts_test.go holds the two equal).
*/}}
{{- define "otelcol-k8sevents.receiverRules" -}}
# INFO, WARN, ERROR as severity text, so that Loki files records under
# detected_level info, warn and error.
severity_text: level
# The seed's alerts. The first rule that matches an Event decides. An alert
# carries k8s.event.alert.rule (the rule's name), k8s.event.alert.title
# ("<kind> <reason>") and k8s.event.alert.message ("<kind> <name>:
# <message>"); alerts/loki-rules.yaml alerts on them.
rules:
  - name: oom-killed
    match:
      reasons: [OOMKilling, OOMKilled]
    severity: error
    alert: true
  - name: pod-failed
    match:
      kinds: [Pod]
      reasons: [Failed]
    severity: error
    alert: true
  # Warnings that are really errors.
  - name: warning-is-error
    match:
      type: Warning
      reasons: [BackOff, FailedMount]
    severity: error
    alert: true
  - name: failed-scheduling
    match:
      reasons: [FailedScheduling]
    alert: true
  - name: warning
    match:
      type: Warning
    alert: true
{{- end }}

{{/*
eventMetrics: the count of Events that Prometheus scrapes as
k8s_events_total, as otelcol-config.yaml ships it (e2e/chart_alerts_test.go
holds the two equal). Each record gets its namespace and kind as attributes
and its read time as its time, then loses its resource, so that
groupbyattrs puts a page's records under one resource; the count connector
makes one delta per series and page, and delta_to_cumulative adds them up.
*/}}
{{- define "otelcol-k8sevents.countProcessors" -}}
transform/count:
  error_mode: ignore
  log_statements:
    - context: log
      statements:
        - set(log.attributes["k8s.cluster.name"], resource.attributes["k8s.cluster.name"])
        - set(log.attributes["k8s.namespace.name"], resource.attributes["k8s.namespace.name"])
        - set(log.attributes["k8s.object.kind"], resource.attributes["k8s.object.kind"])
        - set(log.time, log.observed_time)
    - context: resource
      statements:
        - delete_matching_keys(resource.attributes, ".*")
groupbyattrs/count: {}
delta_to_cumulative:
  # A series quiet for longer starts again from 0; Prometheus' increase()
  # handles that as a counter reset.
  max_stale: 24h
{{- end }}

{{- define "otelcol-k8sevents.countConnector" -}}
# k8s_events_total{k8s_namespace_name, k8s_object_kind, k8s_event_reason,
# k8s_event_type}: the records the receiver emitted, one per new or changed
# Event.
count:
  logs:
    k8s.events:
      description: Kubernetes Events received, by cluster, namespace, involved object kind, reason and type
      attributes:
        - key: k8s.cluster.name
          # clusterName; no label when it is empty.
          default_value: ""
        - key: k8s.namespace.name
          # Events about Nodes and other cluster-scoped objects.
          default_value: ""
        - key: k8s.object.kind
          default_value: ""
        - key: k8s.event.reason
          default_value: ""
        - key: k8s.event.type
          default_value: ""
{{- end }}

{{/*
The configuration the chart generates, before config is merged over it.
*/}}
{{- define "otelcol-k8sevents.baseConfig" -}}
extensions:
  health_check:
    endpoint: ${env:POD_IP}:13133
receivers:
  k8sevents:
    auth_type: serviceAccount
    mode: {{ .Values.mode }}
    # poll: the time between two lists; watch: the longest wait between
    # retries after a failure.
    interval: 10s
    # The first start also ships the Events the cluster still holds (about
    # the last hour); later starts resume from the checkpoint.
    start_at: beginning
    {{- with .Values.namespaces }}
    namespaces: {{ toJson . }}
    {{- end }}
    {{- with .Values.excludeNamespaces }}
    exclude_namespaces: {{ toJson . }}
    {{- end }}
    {{- with .Values.clusterName }}
    cluster_name: {{ . | quote }}
    {{- end }}
    {{- with .Values.extract }}
    {{- if or .owners .labels .annotations }}
    extract:
      owners: {{ .owners }}
      {{- with .labels }}
      labels: {{ toJson . }}
      {{- end }}
      {{- with .annotations }}
      annotations: {{ toJson . }}
      {{- end }}
    {{- end }}
    {{- end }}
    checkpoint:
      namespace: {{ .Release.Namespace }}
      name: {{ .Values.checkpoint.name }}
    leader_election:
      lease_name: {{ .Values.leaderElection.leaseName }}
      lease_namespace: {{ .Release.Namespace }}
    {{- if .Values.alerts.receiverRules.enabled }}
    {{- include "otelcol-k8sevents.receiverRules" . | nindent 4 }}
    {{- end }}
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
{{- if .Values.eventMetrics.enabled }}
  {{- include "otelcol-k8sevents.countProcessors" . | nindent 2 }}
{{- end }}
{{- if .Values.presets.loki.enabled }}
  # Bounded Loki streams, as otelcol-config.yaml's transform/loki: only
  # k8s.cluster.name and k8s.namespace.name stay on the resource (labels);
  # every other resource attribute moves to the record (structured metadata).
  transform/loki:
    error_mode: ignore
    log_statements:
      - context: log
        statements:
          - merge_maps(log.attributes, resource.attributes, "insert")
          - delete_key(log.attributes, "k8s.cluster.name")
          - delete_key(log.attributes, "k8s.namespace.name")
      - context: resource
        statements:
          - keep_keys(resource.attributes, ["k8s.cluster.name", "k8s.namespace.name"])
          - set(resource.attributes["service.name"], "k8s-events")
{{- end }}
{{- if .Values.eventMetrics.enabled }}
connectors:
  {{- include "otelcol-k8sevents.countConnector" . | nindent 2 }}
{{- end }}
exporters:
{{- if .Values.eventMetrics.enabled }}
  prometheus:
    endpoint: ${env:POD_IP}:8889
    # Keep a series while it is quiet, as long as delta_to_cumulative does.
    metric_expiration: 24h
{{- end }}
{{- with .Values.presets.otlp }}
{{- if .enabled }}
  otlp_http:
    {{- include "otelcol-k8sevents.exporter" . | nindent 4 }}
{{- end }}
{{- end }}
{{- with .Values.presets.loki }}
{{- if .enabled }}
  otlp_http/loki:
    {{- include "otelcol-k8sevents.exporter" . | nindent 4 }}
{{- end }}
{{- end }}
{{- with .Values.presets.elastic }}
{{- if .enabled }}
  otlp_http/elastic:
    {{- $headers := deepCopy (.headers | default dict) }}
    {{- if .apiKeySecret.name }}
    {{- $_ := set $headers "Authorization" "ApiKey ${env:ELASTIC_API_KEY}" }}
    {{- end }}
    {{- include "otelcol-k8sevents.exporter" (dict "endpoint" .endpoint "headers" $headers) | nindent 4 }}
{{- end }}
{{- end }}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: ${env:POD_IP}
                port: 8888
  pipelines:
{{- if .Values.presets.otlp.enabled }}
    logs/otlp:
      receivers: [k8sevents]
      processors: [memory_limiter]
      exporters: [otlp_http]
{{- end }}
{{- if .Values.presets.loki.enabled }}
    logs/loki:
      receivers: [k8sevents]
      processors: [memory_limiter, transform/loki]
      exporters: [otlp_http/loki]
{{- end }}
{{- if .Values.presets.elastic.enabled }}
    logs/elastic:
      receivers: [k8sevents]
      processors: [memory_limiter]
      exporters: [otlp_http/elastic]
{{- end }}
{{- if .Values.eventMetrics.enabled }}
    logs/count:
      receivers: [k8sevents]
      processors: [memory_limiter, transform/count, groupbyattrs/count]
      exporters: [count]
    metrics:
      receivers: [count]
      processors: [delta_to_cumulative]
      exporters: [prometheus]
{{- end }}
{{- end }}

{{/*
The collector's configuration: the generated one with config merged over it.
*/}}
{{- define "otelcol-k8sevents.config" -}}
{{- $config := include "otelcol-k8sevents.baseConfig" . | fromYaml }}
{{- if not $config.exporters }}
{{- $_ := unset $config "exporters" }}
{{- end }}
{{- if not $config.service.pipelines }}
{{- $_ := unset $config.service "pipelines" }}
{{- end }}
{{- include "otelcol-k8sevents.merge" (dict "dst" $config "src" .Values.config) }}
{{- toYaml $config }}
{{- end }}
