//! Finding the files to tail: container logs in kubelet's layout
//! `<pods>/<namespace>_<pod>_<uid>/<container>/<restart>.log` with their rotated siblings
//! (`<restart>.log.<YYYYMMDD-HHMMSS>` and its `.gz`), and plain files matched by globs, each
//! with the labels its lines will carry.
//!
//! Rotated files are listed so that a file rotated away before the tailer ever opened it (two
//! rotations between looks, or a restart) is still read; which of them are already read is
//! decided by their identity, not here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::Labels;

use super::glob;

/// The `job` label of lines from plain files, as Promtail's stock `varlogs` job names them.
pub const PLAIN_FILE_JOB: &str = "varlogs";

/// How a file's lines are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// A container log: CRI or docker json-file, told apart by its lines.
    Container,
    /// One message per line, stamped with the time it was read.
    Plain,
}

/// Where a file stands in its writer's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileKind {
    /// Renamed away by rotation; the writer may still append until it reopens.
    Rotated,
    /// Rotated and gzipped: complete and immutable, read decompressed.
    Gzip,
    /// The file the writer appends to (`<n>.log`, or a plain file).
    Live,
}

/// A file to tail and the labels of its streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub path: PathBuf,
    /// The path the writer of this file appends to: `path` itself for a live file, `<n>.log`
    /// for a rotated one. When it names another file, the writer has moved on.
    pub live_path: PathBuf,
    pub kind: FileKind,
    pub format: Format,
    /// `namespace, pod, container, node` for container logs (the line adds `stream`);
    /// `job, filename, node` for plain files.
    pub labels: Labels,
    /// For container logs: the pod as its log directory names it, to find its labels in the
    /// node's pod list.
    pub pod: Option<PodDir>,
    /// The inode the directory entry named when the directory was read (container logs): a
    /// look at the path that finds another file means the name was replaced since.
    pub listed_ino: Option<u64>,
}

/// A pod log directory's name, `<namespace>_<name>_<uid>`, in parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodDir {
    pub namespace: String,
    pub name: String,
    /// The pod's uid, or a static pod's config hash.
    pub uid: String,
}

/// What one walk found: the files, and the directories walked to find them (watched, so a
/// change in any of them is noticed before the next walk).
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Every file to tail now, sorted by path.
    pub targets: Vec<Target>,
    /// The pods root, every pod and container directory, and each glob's directory.
    pub dirs: Vec<PathBuf>,
}

/// Lists every file to tail now. A path found both ways is tailed as a container log.
pub(crate) fn discover(pods: &Path, globs: &[String], node: &str) -> Listing {
    let mut out: BTreeMap<PathBuf, Target> = BTreeMap::new();
    let mut dirs = vec![pods.to_path_buf()];
    for pattern in globs {
        if let Some(dir) = glob::directory(pattern) {
            dirs.push(dir);
        }
        for path in glob::expand(pattern) {
            let labels = Labels::from_pairs([
                ("job", PLAIN_FILE_JOB),
                ("filename", &path.to_string_lossy()),
                ("node", node),
            ]);
            out.insert(
                path.clone(),
                Target {
                    live_path: path.clone(),
                    path,
                    kind: FileKind::Live,
                    format: Format::Plain,
                    labels,
                    pod: None,
                    listed_ino: None,
                },
            );
        }
    }
    for t in container_logs(pods, node, &mut dirs) {
        out.insert(t.path.clone(), t);
    }
    dirs.sort();
    dirs.dedup();
    Listing {
        targets: out.into_values().collect(),
        dirs,
    }
}

/// The container logs under `pods`; adds the pod and container directories walked to `dirs`.
fn container_logs(pods: &Path, node: &str, dirs: &mut Vec<PathBuf>) -> Vec<Target> {
    let mut out = Vec::new();
    for pod_dir in read_dirs(pods) {
        let Some(name) = pod_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((namespace, pod, uid)) = parse_pod_dir(name) else {
            continue;
        };
        dirs.push(pod_dir.clone());
        for container_dir in read_dirs(&pod_dir) {
            dirs.push(container_dir.clone());
            let Some(container) = container_dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(&container_dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name();
                let Some((live_name, kind)) = name.to_str().and_then(classify) else {
                    continue;
                };
                if !e.path().is_file() {
                    continue;
                }
                out.push(Target {
                    path: e.path(),
                    live_path: container_dir.join(live_name),
                    kind,
                    format: Format::Container,
                    labels: Labels::from_pairs([
                        ("namespace", namespace),
                        ("pod", pod),
                        ("container", container),
                        ("node", node),
                    ]),
                    pod: Some(PodDir {
                        namespace: namespace.to_string(),
                        name: pod.to_string(),
                        uid: uid.to_string(),
                    }),
                    listed_ino: Some(std::os::unix::fs::DirEntryExt::ino(&e)),
                });
            }
        }
    }
    out
}

/// The subdirectories of `dir`; none when it cannot be read.
fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// Splits a pod directory name `<namespace>_<pod>_<uid>`. Namespaces and pod names are
/// DNS labels without `_`, but the UID is taken from the right and the namespace from the
/// left so that a stray `_` lands in the pod name rather than failing the parse.
pub(crate) fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let (namespace, rest) = name.split_once('_')?;
    let (pod, uid) = rest.rsplit_once('_')?;
    if namespace.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((namespace, pod, uid))
}

/// `<restart count>.log`: the file the runtime writes to.
fn is_current_log_name(name: &str) -> bool {
    name.strip_suffix(".log")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A container log file name as the name of its live file and its kind: `0.log` is live,
/// `0.log.20240101-120000` rotated, `0.log.20240101-120000.gz` gzipped. kubelet's
/// temporaries (`….tmp`, a gzip in progress) and anything else are not log files.
fn classify(name: &str) -> Option<(&str, FileKind)> {
    if is_current_log_name(name) {
        return Some((name, FileKind::Live));
    }
    let at = name.find(".log.")? + ".log".len();
    let (live, suffix) = name.split_at(at);
    if !is_current_log_name(live) {
        return None;
    }
    let (stamp, kind) = match suffix[1..].strip_suffix(".gz") {
        Some(stamp) => (stamp, FileKind::Gzip),
        None => (&suffix[1..], FileKind::Rotated),
    };
    // kubelet's `20060102-150405`.
    let is_stamp = stamp.len() == 15
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    is_stamp.then_some((live, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_dir_names() {
        assert_eq!(
            parse_pod_dir("kube-system_coredns-5d78c9869d-abcde_0f1e2d3c-aaaa-bbbb"),
            Some((
                "kube-system",
                "coredns-5d78c9869d-abcde",
                "0f1e2d3c-aaaa-bbbb"
            ))
        );
        assert_eq!(parse_pod_dir("ns_a_b_uid"), Some(("ns", "a_b", "uid")));
        assert_eq!(parse_pod_dir("nounderscore"), None);
        assert_eq!(parse_pod_dir("ns__uid"), None);
    }

    #[test]
    fn log_names() {
        assert!(is_current_log_name("0.log"));
        assert!(is_current_log_name("12.log"));
        assert!(!is_current_log_name("0.log.20240101-120000"));
        assert!(!is_current_log_name("0.log.20240101-120000.gz"));
        assert!(!is_current_log_name(".log"));
        assert!(!is_current_log_name("app.log"));
        assert_eq!(classify("0.log"), Some(("0.log", FileKind::Live)));
        assert_eq!(
            classify("3.log.20240101-120000"),
            Some(("3.log", FileKind::Rotated))
        );
        assert_eq!(
            classify("0.log.20240101-120000.gz"),
            Some(("0.log", FileKind::Gzip))
        );
        for not_log in [
            "0.log.20240101-120000.tmp",
            "0.log.20240101-120000.gz.tmp",
            "0.log.2024",
            "x.log.20240101-120000",
            "0.log.20240101_120000",
        ] {
            assert_eq!(classify(not_log), None, "{not_log}");
        }
    }

    #[test]
    fn discovers_container_logs_and_globbed_files() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        let c = pods.join("prod_web-1_uid-1/nginx");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("0.log"), "").unwrap();
        std::fs::write(c.join("0.log.20240101-000000"), "").unwrap();
        std::fs::create_dir_all(pods.join("not-a-pod-dir/x")).unwrap();
        std::fs::write(pods.join("not-a-pod-dir/x/0.log"), "").unwrap();
        let var = dir.path().join("var");
        std::fs::create_dir_all(&var).unwrap();
        std::fs::write(var.join("syslog.log"), "").unwrap();

        let globs = vec![format!("{}/*.log", var.display())];
        let listing = discover(&pods, &globs, "node-1");
        let targets = listing.targets;
        assert_eq!(targets.len(), 3, "{targets:?}");
        let mut want_dirs = vec![
            pods.clone(),
            pods.join("prod_web-1_uid-1"),
            c.clone(),
            var.clone(),
        ];
        want_dirs.sort();
        assert_eq!(
            listing.dirs, want_dirs,
            "the not-a-pod directory is not watched"
        );
        let rotated = &targets[1];
        assert_eq!(rotated.kind, FileKind::Rotated);
        assert_eq!(rotated.live_path, c.join("0.log"));
        let cri = &targets[0];
        assert_eq!((cri.kind, &cri.live_path), (FileKind::Live, &cri.path));
        assert_eq!(
            cri.labels.to_string(),
            r#"{container="nginx", namespace="prod", node="node-1", pod="web-1"}"#
        );
        assert_eq!(rotated.labels, cri.labels);
        let plain = targets.iter().find(|t| t.format == Format::Plain).unwrap();
        assert_eq!(plain.labels.get("job"), Some("varlogs"));
        assert_eq!(
            plain.labels.get("filename"),
            Some(var.join("syslog.log").to_str().unwrap())
        );
    }
}
