//! The Kubernetes manifests and the container image in `deploy/`, checked offline.
//!
//! - `manifests`: `deploy/kubernetes` renders (with this suite's kustomize renderer, and the
//!   same objects with `kubectl kustomize` where kubectl is installed), every object validates
//!   with `kubernetes-validate --strict` against three Kubernetes versions, references resolve,
//!   selectors match, and the agent and server carry the settings an operator relies on.
//! - `config`: the rules, server config and Alertmanager config in the server's ConfigMap load
//!   with Vigil's own loaders and the real binary (and the rules with the real promtool); the
//!   agent's scrape config loads with the agent's loader.
//! - `workloads`: the real `vigil` binary runs with the StatefulSet's and the DaemonSet's
//!   arguments, mount paths mapped to temp dirs, and the agent's data reaches the server.
//! - `image`: the Dockerfile builds with `deploy/build-binary.sh` and ships only the binary.
//! - `helm`: the chart in `deploy/helm/vigil`, rendered by the real `helm template`, gives the
//!   kustomize objects with default values and applies every value it documents; the configs
//!   it renders from customised values pass the binary's loaders, which refuse broken ones.
//!
//! Tools that are not Rust (`kubectl`, `kubernetes-validate`, `helm`, `promtool`) follow the suite's rule: a test
//! needing one skips, saying so, only when it is missing and CI is not "true".

// In a test harness a panic is a failed test with its message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// A skipped test says so on stdout, which the harness shows with --nocapture.
#![allow(clippy::print_stdout)]

// The modules live in tests/deploy/, beside the fixtures; a test crate root resolves plain
// `mod` paths from tests/, hence the `path` attributes.

#[path = "deploy/checks.rs"]
mod checks;
#[path = "deploy/config.rs"]
mod config;
#[path = "deploy/helm.rs"]
mod helm;
#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/manifests.rs"]
mod manifests;
#[path = "deploy/render.rs"]
mod render;
#[path = "deploy/workloads.rs"]
mod workloads;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `deploy/kubernetes`.
fn kustomization_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// The rendered objects of `deploy/kubernetes`, rendered once per test binary.
fn rendered() -> &'static [Value] {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        render::render(&kustomization_dir())
            .unwrap_or_else(|e| panic!("render deploy/kubernetes: {e:#}"))
    })
}

/// The one rendered object of `kind` named `name`.
fn object(kind: &str, name: &str) -> &'static Value {
    rendered()
        .iter()
        .find(|o| checks::kind(o) == kind && checks::name(o) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The rendered object of `kind` whose name starts with `prefix` (generated names carry a
/// hash suffix).
fn object_prefixed(kind: &str, prefix: &str) -> &'static Value {
    rendered()
        .iter()
        .find(|o| checks::kind(o) == kind && checks::name(o).starts_with(prefix))
        .unwrap_or_else(|| panic!("no {kind} {prefix}* rendered"))
}

/// True when `program` runs with `args`; when it does not, skips (returning false, after
/// printing why) unless CI is "true", where a missing tool fails the test.
fn tool_available(program: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{program} is required when CI=true ({install})");
    }
    println!("skipped: {program} is not installed ({install})");
    false
}
