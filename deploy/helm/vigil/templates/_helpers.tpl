{{/*
A base object from deploy/kubernetes (linked as base/), as YAML: `path` under base/, and when
`namespaced`, moved into the release's namespace as kustomize's `namespace:` does.
*/}}
{{- define "vigil.base" -}}
{{- $obj := .root.Files.Get (printf "base/%s" .path) | fromYaml -}}
{{- if not $obj.kind -}}
{{- fail (printf "base/%s is missing or not one Kubernetes object" .path) -}}
{{- end -}}
{{- if .namespaced -}}
{{- $_ := set $obj.metadata "namespace" .root.Release.Namespace -}}
{{- end -}}
{{- toYaml $obj -}}
{{- end -}}

{{/* The image of both workloads. */}}
{{- define "vigil.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The server's configuration files: the base config and rules plus the values' extra rules, as
ConfigMap data keyed by file name, passed around as JSON (toYaml would drop the last file's
final newline).
*/}}
{{- define "vigil.configData" -}}
{{- $data := dict -}}
{{- range $path, $_ := .Files.Glob "base/server/config/*.yml" -}}
{{- $_ := set $data (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $path, $_ := .Files.Glob "base/server/rules/*.yml" -}}
{{- $_ := set $data (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $text := .Values.rules -}}
{{- $_ := set $data $name $text -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/*
The generated ConfigMap's name: kustomize's content hash suffix (SHA-256 of the Go JSON of
{"data","kind","name":""}, ten hex digits with 0 1 3 a e replaced), so that a changed rule rolls
the server pod and the default values name it exactly as `kubectl kustomize` does.
*/}}
{{- define "vigil.configName" -}}
{{- $data := include "vigil.configData" . | fromJson -}}
{{- $hash := dict "data" $data "kind" "ConfigMap" "name" "" | toJson | sha256sum | trunc 10 -}}
{{- $hash = $hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" -}}
{{- printf "vigil-server-config-%s" $hash -}}
{{- end -}}
