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
A generated ConfigMap's name, `name` plus kustomize's content hash suffix of `data` (SHA-256 of
the Go JSON of {"data","kind","name":""}, ten hex digits with 0 1 3 a e replaced), so that a
changed file rolls the pods mounting it and the default values name it exactly as
`kubectl kustomize` does.
*/}}
{{- define "vigil.hashedName" -}}
{{- $hash := dict "data" .data "kind" "ConfigMap" "name" "" | toJson | sha256sum | trunc 10 -}}
{{- $hash = $hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" -}}
{{- printf "%s-%s" .name $hash -}}
{{- end -}}

{{/* The server's generated ConfigMap's name. */}}
{{- define "vigil.configName" -}}
{{- include "vigil.hashedName" (dict "name" "vigil-server-config" "data" (include "vigil.configData" . | fromJson)) -}}
{{- end -}}

{{/*
The agent's scrape config, as ConfigMap data (JSON, as vigil.configData): the base file with
the values' extraScrapeConfigs appended to its `scrape_configs`. The text is appended rather
than the file re-serialised, so the base file's comments stay for the operator and the default
values give kustomize's bytes; the result is parsed back to prove the jobs landed in the list.
*/}}
{{- define "vigil.agentConfigData" -}}
{{- $text := .Files.Get "base/agent/config/agent.yml" -}}
{{- $base := $text | fromYaml -}}
{{- if or (hasKey $base "Error") (not (kindIs "slice" $base.scrape_configs)) -}}
{{- fail "base/agent/config/agent.yml must be YAML with a scrape_configs list" -}}
{{- end -}}
{{- with .Values.agent.extraScrapeConfigs -}}
{{- if not (kindIs "slice" .) -}}
{{- fail "agent.extraScrapeConfigs must be a list of scrape configs" -}}
{{- end -}}
{{- $text = printf "%s%s\n" $text (toYaml . | indent 2) -}}
{{- $merged := $text | fromYaml -}}
{{- if or (hasKey $merged "Error") (ne (len $merged.scrape_configs) (add (len $base.scrape_configs) (len .))) -}}
{{- fail "agent.extraScrapeConfigs did not append to scrape_configs: it must stay the last key of base/agent/config/agent.yml" -}}
{{- end -}}
{{- end -}}
{{- dict "agent.yml" $text | toJson -}}
{{- end -}}

{{/* The agent's generated ConfigMap's name. */}}
{{- define "vigil.agentConfigName" -}}
{{- include "vigil.hashedName" (dict "name" "vigil-agent-config" "data" (include "vigil.agentConfigData" . | fromJson)) -}}
{{- end -}}
