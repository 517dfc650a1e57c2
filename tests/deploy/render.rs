//! A kustomize renderer for exactly the features `deploy/kubernetes` uses, so the manifests
//! render in CI without `kubectl`: Debian bookworm ships no `kubectl` package, and its
//! `kubernetes-client` (1.20) embeds kustomize 2.0, which predates directories in `resources`.
//!
//! Supported: `namespace`, `resources` (YAML files and directories with a kustomization),
//! `configMapGenerator` with `files` (`path` or `key=path`) and `options.labels`, the content
//! hash suffix kustomize gives generated ConfigMaps, and the rewriting of references to a
//! generated ConfigMap in pod templates. Any other kustomization field is an error, so the
//! renderer never silently ignores something kustomize would apply. Where `kubectl` is
//! installed, a test checks this renderer's objects are the ones `kubectl kustomize` gives.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Kinds that live outside namespaces, so the `namespace` field leaves them alone.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
];

/// Kustomization fields this renderer applies; anything else is refused.
const KNOWN_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "configMapGenerator",
];

/// Renders the kustomization in `dir` into its objects, in no particular order.
pub fn render(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut renames = BTreeMap::new();
    let mut objects = render_dir(dir, &mut renames)?;
    for obj in &mut objects {
        rewrite_config_map_refs(obj, &renames);
    }
    Ok(objects)
}

/// Renders one kustomization; `renames` collects generated ConfigMap names (plain → hashed).
fn render_dir(dir: &Path, renames: &mut BTreeMap<String, String>) -> anyhow::Result<Vec<Value>> {
    let path = dir.join("kustomization.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let k: Value = serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let k = k
        .as_object()
        .ok_or_else(|| anyhow!("{} is not a mapping", path.display()))?;
    for key in k.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            bail!(
                "{}: field {key:?} is not supported by the test renderer",
                path.display()
            );
        }
    }

    let mut objects = Vec::new();
    for res in strings(k.get("resources"), "resources")? {
        let p = dir.join(&res);
        if p.is_dir() {
            objects.extend(render_dir(&p, renames)?);
        } else {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
            objects.extend(parse_documents(&text).with_context(|| format!("{}", p.display()))?);
        }
    }
    for generator in k
        .get("configMapGenerator")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (cm, plain) = generate_config_map(dir, generator)?;
        let hashed = cm["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        renames.insert(plain, hashed);
        objects.push(cm);
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for obj in &mut objects {
            set_namespace(obj, ns);
        }
    }
    Ok(objects)
}

/// Parses a multi-document YAML stream into JSON values, skipping empty documents. Documents
/// are split at `---` lines: a separator at column 0 cannot occur inside a document's block
/// scalars, which are indented.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" || line.starts_with("--- ") {
            let v: Value = serde_yaml::from_str(&doc)?;
            if !v.is_null() {
                out.push(v);
            }
            doc.clear();
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    Ok(out)
}

fn strings(v: Option<&Value>, what: &str) -> anyhow::Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{what} must be a list of strings"))
            })
            .collect(),
        Some(_) => bail!("{what} must be a list"),
    }
}

/// One `configMapGenerator` entry: a ConfigMap named `<name>-<hash>`, and its plain name.
fn generate_config_map(dir: &Path, g: &Value) -> anyhow::Result<(Value, String)> {
    let g = g
        .as_object()
        .ok_or_else(|| anyhow!("configMapGenerator entries must be mappings"))?;
    for key in g.keys() {
        if !["name", "files", "options"].contains(&key.as_str()) {
            bail!("configMapGenerator field {key:?} is not supported by the test renderer");
        }
    }
    let name = g
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("configMapGenerator entry without a name"))?;
    let mut data = Map::new();
    for file in strings(g.get("files"), "files")? {
        let (key, rel) = match file.split_once('=') {
            Some((k, p)) => (k.to_string(), p.to_string()),
            None => {
                let key = Path::new(&file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| anyhow!("file {file:?} has no name"))?;
                (key, file.clone())
            }
        };
        let p = dir.join(&rel);
        let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        if data.insert(key.clone(), Value::String(text)).is_some() {
            bail!("configMapGenerator {name}: key {key:?} appears twice");
        }
    }
    let mut metadata = Map::new();
    if let Some(options) = g.get("options") {
        let options = options
            .as_object()
            .ok_or_else(|| anyhow!("options must be a mapping"))?;
        for (key, value) in options {
            match key.as_str() {
                "labels" => {
                    metadata.insert("labels".into(), value.clone());
                }
                other => bail!("generator option {other:?} is not supported by the test renderer"),
            }
        }
    }
    let data = Value::Object(data);
    let hashed = format!("{name}-{}", config_map_hash(&data)?);
    metadata.insert("name".into(), Value::String(hashed));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data});
    Ok((cm, name.to_string()))
}

/// kustomize's content hash of a generated ConfigMap: SHA-256 of Go's JSON encoding of
/// `{"data":…,"kind":"ConfigMap","name":""}`, its first ten hex digits with 0, 1, 3, a and e
/// replaced so the suffix never reads as a number or a word. The name is empty because
/// kustomize looks it up by the literal key `metadata/name`, which is never there; the test
/// `config_map_hash_is_kustomizes` pins the result against kustomize's own output.
pub fn config_map_hash(data: &Value) -> anyhow::Result<String> {
    let encoded = go_json(&json!({"data": data, "kind": "ConfigMap", "name": ""}));
    let hex = sha256_hex(encoded.as_bytes())?;
    let prefix = hex
        .get(..10)
        .ok_or_else(|| anyhow!("short digest {hex:?}"))?;
    Ok(prefix
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect())
}

/// Go's `json.Marshal`: object keys sorted, and `<`, `>`, `&`, U+2028 and U+2029 escaped as
/// `\u00XX` as Go does. Written out rather than left to `Value::to_string`, whose key order
/// depends on whether some crate in the build enables serde_json's `preserve_order`.
fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    for c in Value::String(s.to_string()).to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// SHA-256 through coreutils' `sha256sum`: the workspace has no hashing crate, and coreutils
/// is on every machine the tests run on.
fn sha256_hex(bytes: &[u8]) -> anyhow::Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run sha256sum")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("sha256sum stdin"))?
        .write_all(bytes)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("sha256sum printed nothing"))
}

fn set_namespace(obj: &mut Value, ns: &str) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    if CLUSTER_SCOPED.contains(&kind) {
        return;
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
}

/// Points pod-template references to a generated ConfigMap at its hashed name: volumes
/// (plain and projected), `env[].valueFrom.configMapKeyRef` and `envFrom[].configMapRef`.
fn rewrite_config_map_refs(obj: &mut Value, renames: &BTreeMap<String, String>) {
    let Some(pod) = obj.pointer_mut("/spec/template/spec") else {
        return;
    };
    let rename = |slot: Option<&mut Value>| {
        if let Some(slot) = slot {
            if let Some(new) = slot.as_str().and_then(|n| renames.get(n)) {
                *slot = Value::String(new.clone());
            }
        }
    };
    for vol in array_mut(pod, "volumes") {
        rename(vol.pointer_mut("/configMap/name"));
        for src in array_mut(
            vol.pointer_mut("/projected").unwrap_or(&mut Value::Null),
            "sources",
        ) {
            rename(src.pointer_mut("/configMap/name"));
        }
    }
    for list in ["containers", "initContainers"] {
        for c in array_mut(pod, list) {
            for env in array_mut(c, "env") {
                rename(env.pointer_mut("/valueFrom/configMapKeyRef/name"));
            }
            for from in array_mut(c, "envFrom") {
                rename(from.pointer_mut("/configMapRef/name"));
            }
        }
    }
}

fn array_mut<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}
