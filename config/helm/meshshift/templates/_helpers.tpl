{{/* The image of the manager and the agent. */}}
{{- define "meshshift.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
