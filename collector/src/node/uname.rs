//! The `uname` collector: `node_uname_info`, the `uname(2)` fields as labels
//! (node_exporter's `uname_linux.go`). The system call answers for the kernel the agent runs
//! on, which in a DaemonSet is the host's; only `nodename` needs `hostNetwork`'s UTS view.

use crate::family::{Family, MetricType};

/// The six `uname(2)` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Uname {
    pub sysname: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub nodename: String,
    pub domainname: String,
}

/// Asks the kernel.
pub(crate) fn uname() -> Uname {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    Uname {
        sysname: s(u.sysname()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
        nodename: s(u.nodename()),
        domainname: s(u.domainname()),
    }
}

pub(crate) fn families(u: Uname) -> Vec<Family> {
    let mut f = Family::new(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        MetricType::Gauge,
    );
    f.push(
        vec![
            ("sysname", u.sysname),
            ("release", u.release),
            ("version", u.version),
            ("machine", u.machine),
            ("nodename", u.nodename),
            ("domainname", u.domainname),
        ],
        1.0,
    );
    vec![f]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_this_kernel() {
        let u = uname();
        assert_eq!(u.sysname, "Linux");
        let proc_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(u.release, proc_release.trim());
        let f = families(u);
        assert_eq!(f[0].points[0].labels.len(), 6);
        assert_eq!(f[0].points[0].value, 1.0);
    }
}
