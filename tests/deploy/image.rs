//! The container image: `deploy/Dockerfile`'s build stage runs `deploy/build-binary.sh` (the
//! script developers and CI run outside Docker, so the image's binary is one known to build),
//! with a toolchain new enough for the workspace and a Debian release matching the runtime's;
//! the runtime stage ships the one binary and runs as a non-root user.
//!
//! A release build takes minutes, too slow for every test run; the script itself is run by
//! hand or in a release job (see deploy/README.md), and here its command line is checked.

use crate::repo;
use std::process::Command;

/// One `FROM` stage of a Dockerfile: its base image, alias and instructions (continuation
/// lines joined).
#[derive(Debug)]
struct Stage {
    base: String,
    alias: Option<String>,
    instructions: Vec<(String, String)>,
}

fn stages(dockerfile: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut out: Vec<Stage> = Vec::new();
    for line in logical {
        let (op, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let alias = match words.as_slice() {
                [_, as_kw, alias] if as_kw.eq_ignore_ascii_case("as") => Some(alias.to_string()),
                _ => None,
            };
            out.push(Stage {
                base: words[0].to_string(),
                alias,
                instructions: Vec::new(),
            });
        } else {
            let stage = out.last_mut().expect("instruction before FROM");
            stage.instructions.push((op, rest.trim().to_string()));
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn image_builds_with_the_script_and_ships_only_the_binary_as_non_root() {
    let stages = stages(&read("deploy/Dockerfile"));
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    let (build, runtime) = (&stages[0], &stages[1]);

    // The build stage runs the script, so the two cannot drift apart.
    let runs: Vec<&str> = build
        .instructions
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, cmd)| cmd.as_str())
        .collect();
    assert!(
        runs.iter().any(|r| r.contains("deploy/build-binary.sh")),
        "the build stage runs deploy/build-binary.sh: {runs:?}"
    );
    assert!(
        !runs.iter().any(|r| r.contains("cargo build")),
        "cargo is run by the script only: {runs:?}"
    );
    let script = read("deploy/build-binary.sh");
    let cargo: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo "))
        .collect();
    assert_eq!(cargo, ["cargo build --release --locked --bin vigil"]);

    // The toolchain is at least the workspace's rust-version, and the build image's Debian is
    // the runtime's, since the binary links the system glibc.
    let tag = build
        .base
        .strip_prefix("rust:")
        .expect("a rust: build image");
    let (version, distro) = tag.split_once('-').expect("rust:<version>-<debian>");
    let manifest = read("Cargo.toml");
    let wanted = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        parse(version) >= parse(wanted),
        "rust {version} is older than rust-version {wanted}"
    );
    let debian = match distro {
        "bookworm" => "debian12",
        "trixie" => "debian13",
        other => panic!("unknown Debian release {other}"),
    };
    assert!(
        runtime.base.contains(debian),
        "runtime {} is not {debian} like the build image",
        runtime.base
    );

    // Only the binary is copied, from the build stage; the user is numeric and not root (so
    // runAsNonRoot can verify it without looking up /etc/passwd).
    let alias = build.alias.as_deref().expect("the build stage is named");
    let copies: Vec<&str> = runtime
        .instructions
        .iter()
        .filter(|(op, _)| op == "COPY" || op == "ADD")
        .map(|(_, arg)| arg.as_str())
        .collect();
    assert_eq!(
        copies,
        [format!("--from={alias} /out/vigil /vigil").as_str()]
    );
    let user = runtime
        .instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, u)| u.as_str())
        .expect("a USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0);
    assert!(runtime
        .instructions
        .iter()
        .any(|(op, arg)| op == "ENTRYPOINT" && arg == "[\"/vigil\"]"));
}

#[test]
fn build_script_is_valid_bash() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(repo().join("deploy/build-binary.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_run_the_image_the_dockerfile_builds() {
    // The image's non-root uid is the one the server's pod runs as, so the data volume's
    // fsGroup and the image agree.
    let stages = stages(&read("deploy/Dockerfile"));
    let user = stages[1]
        .instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, u)| u.split(':').next().unwrap().to_string())
        .unwrap();
    let sts = crate::object("StatefulSet", "vigil-server");
    let sc = &sts["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(sc["runAsUser"].to_string(), user);
    assert_eq!(sc["fsGroup"].to_string(), user);
}
