//! Open files of a cgroup's processes, as cAdvisor counts them for `container_file_descriptors`
//! and `container_sockets`: the entries of `<procfs>/<pid>/fd` of every process directly in the
//! cgroup, and of those the links to `socket:[inode]`. A process that exits while it is read,
//! or whose `fd` directory is not readable, counts for nothing.

use std::path::Path;

/// Descriptors, and sockets among them, over `pids`.
pub(crate) fn open_files(procfs: &Path, pids: &[u32]) -> (u64, u64) {
    let (mut fds, mut sockets) = (0u64, 0u64);
    for pid in pids {
        let dir = procfs.join(pid.to_string()).join("fd");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            fds += 1;
            let is_socket = std::fs::read_link(entry.path())
                .map(|target| target.as_os_str().as_encoded_bytes().starts_with(b"socket"))
                .unwrap_or(false);
            if is_socket {
                sockets += 1;
            }
        }
    }
    (fds, sockets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_descriptors_and_sockets_of_each_process() {
        let proc = tempfile::tempdir().unwrap();
        for (pid, links) in [
            (10u32, &["/dev/null", "socket:[1234]", "pipe:[9]"][..]),
            (11, &["socket:[5]", "/var/log/x.log"][..]),
        ] {
            let fd = proc.path().join(format!("{pid}/fd"));
            std::fs::create_dir_all(&fd).unwrap();
            for (i, target) in links.iter().enumerate() {
                std::os::unix::fs::symlink(target, fd.join(i.to_string())).unwrap();
            }
        }
        // Pid 12 has exited: nothing to count, no error.
        assert_eq!(open_files(proc.path(), &[10, 11, 12]), (5, 2));
        assert_eq!(open_files(proc.path(), &[]), (0, 0));
    }

    #[test]
    fn this_process_has_open_descriptors() {
        let (fds, _) = open_files(Path::new("/proc"), &[std::process::id()]);
        assert!(fds >= 3, "{fds}");
    }
}
