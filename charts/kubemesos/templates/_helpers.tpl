{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "kubemesos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart> unless the release name already contains the chart name. */}}
{{- define "kubemesos.fullname" -}}
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

{{- define "kubemesos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubemesos.labels" -}}
helm.sh/chart: {{ include "kubemesos.chart" . }}
{{ include "kubemesos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: framework
{{- end }}

{{- define "kubemesos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemesos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubemesos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubemesos.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespace of the framework's state ConfigMap and leader Lease. */}}
{{- define "kubemesos.stateNamespace" -}}
{{- default .Release.Namespace .Values.framework.stateNamespace }}
{{- end }}

{{/* Name of the Secret holding the Mesos secret, or "" when Mesos authentication has no secret. */}}
{{- define "kubemesos.mesosSecretName" -}}
{{- if .Values.mesos.secret.existingSecret }}
{{- .Values.mesos.secret.existingSecret }}
{{- else if .Values.mesos.secret.value }}
{{- printf "%s-mesos" (include "kubemesos.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kubemesos.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the ConfigMap and the Mesos secret are mounted in the container. */}}
{{- define "kubemesos.configPath" -}}/etc/kubemesos/config/config.yaml{{- end }}
{{- define "kubemesos.secretFile" -}}/etc/kubemesos/mesos/secret{{- end }}
{{- define "kubemesos.tlsDir" -}}/etc/kubemesos/mesos-tls{{- end }}

{{/*
The `kubemesos framework --config` file: its keys are the framework's flag names. Keys left out keep the
framework's defaults (advertise-url is set from the pod IP in the Deployment when empty here).
*/}}
{{- define "kubemesos.config" -}}
{{- $c := dict
  "master" .Values.mesos.master
  "framework-name" .Values.mesos.frameworkName
  "roles" (join "," .Values.mesos.roles)
  "failover-timeout" .Values.mesos.failoverTimeout
  "offer-hold" .Values.mesos.offerHold
  "refuse-seconds" .Values.mesos.refuseSeconds
  "scheduler-name" .Values.scheduler.name
  "serve-default-scheduler" .Values.scheduler.serveDefaultScheduler
  "state-namespace" (include "kubemesos.stateNamespace" .)
  "leader-elect" .Values.framework.leaderElect
  "http-address" (printf ":%v" .Values.framework.httpPort)
  "log-level" .Values.framework.logLevel
  "executor-cpus" .Values.executor.cpus
  "executor-mem" .Values.executor.mem
  "pod-overhead-cpus" .Values.podOverhead.cpus
  "pod-overhead-mem" .Values.podOverhead.mem
  "pod-network" .Values.podNetwork.name
  "pod-cidr-attribute" .Values.podNetwork.podCIDRAttribute
}}
{{- with .Values.mesos.principal }}{{ $_ := set $c "principal" . }}{{ end }}
{{- with .Values.mesos.defaultRole }}{{ $_ := set $c "default-role" . }}{{ end }}
{{- with .Values.mesos.user }}{{ $_ := set $c "mesos-user" . }}{{ end }}
{{- with .Values.mesos.tls }}{{ if .secretName }}
{{- with .caKey }}{{ $_ := set $c "mesos-ca-file" (printf "%s/%s" (include "kubemesos.tlsDir" $) .) }}{{ end }}
{{- with .certKey }}{{ $_ := set $c "mesos-cert-file" (printf "%s/%s" (include "kubemesos.tlsDir" $) .) }}{{ end }}
{{- with .keyKey }}{{ $_ := set $c "mesos-key-file" (printf "%s/%s" (include "kubemesos.tlsDir" $) .) }}{{ end }}
{{- end }}{{ end }}
{{- with .Values.framework.advertiseURL }}{{ $_ := set $c "advertise-url" . }}{{ end }}
{{- with .Values.executor.uri }}{{ $_ := set $c "executor-uri" . }}{{ end }}
{{- with .Values.executor.kubeconfig }}{{ $_ := set $c "executor-kubeconfig" . }}{{ end }}
{{- $settings := deepCopy (default dict .Values.executor.env) }}
{{- with .Values.executor.bootstrapKubeconfig }}{{ $_ := set $settings "KUBEMESOS_BOOTSTRAP_KUBECONFIG" . }}{{ end }}
{{- with .Values.executor.clientCAFile }}{{ $_ := set $settings "KUBEMESOS_CLIENT_CA_FILE" . }}{{ end }}
{{- with .Values.podNetwork.clusterDNS }}
{{- $_ := set $settings "KUBEMESOS_CLUSTER_DNS" . }}
{{- $_ := set $settings "KUBEMESOS_CLUSTER_DOMAIN" $.Values.podNetwork.clusterDomain }}
{{- end }}
{{- with $settings }}
{{- $env := list }}
{{- range $k, $v := . }}{{ $env = append $env (printf "%s=%s" $k (toString $v)) }}{{ end }}
{{- $_ := set $c "executor-env" $env }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* Labels of the add-ons (kube-proxy, CoreDNS): kubeadm's k8s-app selector label and the release's. */}}
{{- define "kubemesos.addonLabels" -}}
{{- $ := index . 0 -}}
k8s-app: {{ index . 1 }}
helm.sh/chart: {{ include "kubemesos.chart" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}
