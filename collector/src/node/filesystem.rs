//! The `filesystem` collector: size, free space and inodes of each mounted filesystem, as
//! node_exporter's `filesystem_linux.go` reports them, with its default mount-point and
//! fs-type exclusions.
//!
//! Mounts come from `<procfs>/1/mounts` (the host's init, so a DaemonSet with `hostPID` sees
//! the host's mounts) or `<procfs>/self/mounts`; each is measured with `statvfs(2)` on
//! `<rootfs>/<mountpoint>`. A network filesystem can make `statvfs` hang forever, so each
//! call runs on its own thread with a deadline: a mount that misses it is reported with
//! `node_filesystem_device_error 1` and skipped until the stuck call returns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use regex::Regex;

use crate::family::{Family, MetricType};

/// node_exporter 1.5's default `--collector.filesystem.mount-points-exclude`: kernel and
/// runtime mounts whose sizes mean nothing to a dashboard.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter 1.5's default `--collector.filesystem.fs-types-exclude`: pseudo filesystems.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// How long `statvfs` may take before a mount counts as stuck (node_exporter's hidden
/// `--collector.filesystem.mount-timeout`).
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// One line of a mounts file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

/// Parses a mounts file (`/proc/<pid>/mounts`: device, mount point, type, options, …),
/// decoding the kernel's octal escapes in mount points (`\040` is a space) and stripping a
/// `rootfs` prefix other than `/`, as node_exporter does for a host root mounted elsewhere.
pub(crate) fn parse_mounts(text: &str, rootfs: &Path) -> Result<Vec<Mount>, String> {
    let root = rootfs.to_string_lossy();
    let root = root.trim_end_matches('/');
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split_ascii_whitespace().collect();
            let [device, mount_point, fs_type, options, ..] = parts[..] else {
                return Err(format!("malformed mount point information: {line:?}"));
            };
            let mut mount_point = unescape_octal(mount_point);
            if !root.is_empty() {
                if let Some(rest) = mount_point.strip_prefix(root) {
                    if rest.is_empty() || rest.starts_with('/') {
                        mount_point = if rest.is_empty() {
                            "/".into()
                        } else {
                            rest.into()
                        };
                    }
                }
            }
            Ok(Mount {
                device: device.to_string(),
                mount_point,
                fs_type: fs_type.to_string(),
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Decodes `\ooo` octal escapes, which the kernel uses for space, tab, newline and backslash.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')));
        match octal.and_then(|v| u8::try_from(v).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `statvfs` said about one filesystem, in node_exporter's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Usage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

/// Measures a path. Blocks are multiplied by `f_bsize`, as node_exporter multiplies
/// `statfs`'s `Blocks` by `Bsize` (they agree with `f_frsize` on every common filesystem).
pub(crate) fn statvfs(path: &Path) -> Result<Usage, String> {
    let s = rustix::fs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    let bsize = s.f_bsize as f64;
    Ok(Usage {
        size: s.f_blocks as f64 * bsize,
        free: s.f_bfree as f64 * bsize,
        avail: s.f_bavail as f64 * bsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
    })
}

/// Mount points whose `statvfs` is still running past its deadline.
#[derive(Clone, Debug, Default)]
pub(crate) struct StuckMounts(Arc<Mutex<HashSet<String>>>);

impl StuckMounts {
    fn contains(&self, mp: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(mp)
    }
    fn insert(&self, mp: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(mp.to_string());
    }
    fn remove(&self, mp: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(mp);
    }
}

/// Runs `statvfs` on a thread and waits at most `timeout`. `None` means it timed out; the
/// mount is then marked stuck until the call returns.
fn statvfs_with_deadline(
    path: PathBuf,
    mount_point: &str,
    stuck: &StuckMounts,
    timeout: Duration,
) -> Option<Result<Usage, String>> {
    let (tx, rx) = mpsc::channel();
    let (mp, marks) = (mount_point.to_string(), stuck.clone());
    let spawned = std::thread::Builder::new()
        .name("statvfs".into())
        .spawn(move || {
            let result = statvfs(&path);
            // The receiver is gone when the deadline passed; the mount is no longer stuck.
            if tx.send(result).is_err() {
                marks.remove(&mp);
            }
        });
    if let Err(e) = spawned {
        return Some(Err(format!("spawning statvfs thread: {e}")));
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => Some(result),
        Err(_) => {
            stuck.insert(mount_point);
            None
        }
    }
}

/// Whether `statvfs` on this filesystem type can block on a remote server or a userspace
/// daemon. Only those pay for a thread per call: on a loaded node, waiting for a fresh
/// thread to be scheduled costs more than the call itself.
fn may_hang(fs_type: &str) -> bool {
    const REMOTE: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "9p",
        "afs",
        "lustre",
        "gfs2",
        "ocfs2",
        "davfs",
        "sshfs",
        "fuse",
    ];
    let base = fs_type.split('.').next().unwrap_or(fs_type);
    REMOTE.contains(&base)
}

/// Filters the mounts and measures each, giving node_exporter's seven families. A mount
/// whose measurement fails or hangs gets only `device_error 1`.
pub(crate) fn families(
    mounts: &[Mount],
    rootfs: &Path,
    exclude_mount_points: &Regex,
    exclude_fs_types: &Regex,
    stuck: &StuckMounts,
    timeout: Duration,
) -> Vec<Family> {
    let fam = |name: &str, help: &str| Family::new(name, help, MetricType::Gauge);
    let mut error = fam(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    let mut size = fam("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut free = fam(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    );
    let mut avail = fam(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut files = fam("node_filesystem_files", "Filesystem total file nodes.");
    let mut files_free = fam(
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    );
    let mut readonly = fam("node_filesystem_readonly", "Filesystem read-only status.");

    let mut seen = HashSet::new();
    for m in mounts {
        if exclude_mount_points.is_match(&m.mount_point) || exclude_fs_types.is_match(&m.fs_type) {
            continue;
        }
        // The same filesystem mounted twice at one place (bind over itself) is one series.
        if !seen.insert((&m.device, &m.mount_point, &m.fs_type)) {
            continue;
        }
        let labels = || {
            vec![
                ("device", m.device.clone()),
                ("fstype", m.fs_type.clone()),
                ("mountpoint", m.mount_point.clone()),
            ]
        };
        let path = rootfs.join(m.mount_point.trim_start_matches('/'));
        let usage = if stuck.contains(&m.mount_point) {
            None
        } else if may_hang(&m.fs_type) {
            statvfs_with_deadline(path, &m.mount_point, stuck, timeout)
        } else {
            Some(statvfs(&path))
        };
        let usage = match usage {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                tracing::debug!(mountpoint = %m.mount_point, error = %e, "statvfs failed");
                error.push(labels(), 1.0);
                continue;
            }
            None => {
                tracing::debug!(mountpoint = %m.mount_point, "mount point is stuck");
                error.push(labels(), 1.0);
                continue;
            }
        };
        error.push(labels(), 0.0);
        size.push(labels(), usage.size);
        free.push(labels(), usage.free);
        avail.push(labels(), usage.avail);
        files.push(labels(), usage.files);
        files_free.push(labels(), usage.files_free);
        readonly.push(labels(), f64::from(u8::from(m.read_only)));
    }
    vec![avail, error, files, files_free, free, readonly, size]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> (Regex, Regex) {
        (
            Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE).unwrap(),
            Regex::new(DEFAULT_FS_TYPES_EXCLUDE).unwrap(),
        )
    }

    #[test]
    fn parses_mounts_with_escapes_and_rootfs() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\n/dev/vdb /data\\040disk xfs ro,noatime 0 0\n";
        let m = parse_mounts(text, Path::new("/")).unwrap();
        assert_eq!(m[1].mount_point, "/data disk");
        assert!(m[1].read_only && !m[0].read_only);
        let host = "/dev/vda /host/root ext4 rw 0 0\n/dev/vdb /host/root/data xfs rw 0 0\n";
        let m = parse_mounts(host, Path::new("/host/root")).unwrap();
        assert_eq!(
            (m[0].mount_point.as_str(), m[1].mount_point.as_str()),
            ("/", "/data")
        );
        assert!(parse_mounts("/dev/vda /\n", Path::new("/")).is_err());
    }

    #[test]
    fn default_exclusions() {
        let (mp, fs) = defaults();
        for p in [
            "/proc",
            "/sys/fs/cgroup",
            "/dev/shm",
            "/run/credentials/x.service",
            "/var/lib/docker/overlay2/abc",
        ] {
            assert!(mp.is_match(p), "{p}");
        }
        for p in ["/", "/run", "/boot/efi", "/var/lib/docker", "/devices"] {
            assert!(!mp.is_match(p), "{p}");
        }
        assert!(fs.is_match("cgroup2") && fs.is_match("overlay") && !fs.is_match("tmpfs"));
    }

    #[test]
    fn measures_a_real_directory_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let mounts = parse_mounts(
            "/dev/a /data ext4 ro 0 0\n/dev/a /data ext4 ro 0 0\n/dev/b /missing ext4 rw 0 0\nproc /proc proc rw 0 0\n",
            Path::new("/"),
        )
        .unwrap();
        let (mp, fs) = defaults();
        let fams = families(
            &mounts,
            dir.path(),
            &mp,
            &fs,
            &StuckMounts::default(),
            MOUNT_TIMEOUT,
        );
        let get = |name: &str| fams.iter().find(|f| f.name == name).unwrap();
        assert_eq!(
            get("node_filesystem_size_bytes").points.len(),
            1,
            "deduplicated, /proc excluded"
        );
        assert!(get("node_filesystem_size_bytes").points[0].value > 0.0);
        assert_eq!(get("node_filesystem_readonly").points[0].value, 1.0);
        let errors: Vec<(String, f64)> = get("node_filesystem_device_error")
            .points
            .iter()
            .map(|p| (p.labels[2].1.clone(), p.value))
            .collect();
        assert_eq!(
            errors,
            [("/data".to_string(), 0.0), ("/missing".to_string(), 1.0)]
        );
    }

    #[test]
    fn only_remote_and_fuse_filesystems_get_a_deadline_thread() {
        assert!(may_hang("nfs4") && may_hang("fuse.sshfs") && may_hang("cifs"));
        assert!(!may_hang("ext4") && !may_hang("tmpfs") && !may_hang("xfs"));
        // A remote type goes through the thread and still measures.
        let dir = tempfile::tempdir().unwrap();
        let mounts = parse_mounts("srv:/x / nfs4 rw 0 0\n", Path::new("/")).unwrap();
        let (mp, fs) = defaults();
        let fams = families(
            &mounts,
            dir.path(),
            &mp,
            &fs,
            &StuckMounts::default(),
            MOUNT_TIMEOUT,
        );
        let size = fams
            .iter()
            .find(|f| f.name == "node_filesystem_size_bytes")
            .unwrap();
        assert!(size.points[0].value > 0.0);
    }

    #[test]
    fn a_stuck_mount_reports_a_device_error() {
        let stuck = StuckMounts::default();
        stuck.insert("/nfs");
        let mounts = parse_mounts("srv:/x /nfs nfs4 rw 0 0\n", Path::new("/")).unwrap();
        let (mp, fs) = defaults();
        let fams = families(&mounts, Path::new("/"), &mp, &fs, &stuck, MOUNT_TIMEOUT);
        let err = fams
            .iter()
            .find(|f| f.name == "node_filesystem_device_error")
            .unwrap();
        assert_eq!(err.points[0].value, 1.0);
        assert!(fams
            .iter()
            .find(|f| f.name == "node_filesystem_size_bytes")
            .unwrap()
            .points
            .is_empty());
    }
}
