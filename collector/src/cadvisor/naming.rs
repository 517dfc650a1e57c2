//! Cgroup path → pod and container identity, for the kubelet's cgroup layouts: the systemd
//! driver (`kubepods-burstable-pod<uid_>.slice`, units `cri-containerd-<id>.scope`,
//! `crio-<id>.scope`, `docker-<id>.scope`) and the cgroupfs driver
//! (`/kubepods/burstable/pod<uid>/<id>`). The pod segment is matched wherever it sits, since
//! `--cgroup-root` and nested clusters (kind, k3s) add a prefix. Pure: no I/O.

use regex::Regex;

/// The container runtime a container cgroup's name points at; it decides cAdvisor's `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// `cri-containerd-<id>.scope`, and a bare `<id>` under the cgroupfs driver.
    Containerd,
    /// `crio-<id>.scope`.
    Crio,
    /// `docker-<id>.scope` (cri-dockerd).
    Docker,
}

/// What a cgroup path says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Not a pod's: `/`, `/system.slice/...`, `/kubepods.slice` and the QoS slices.
    Raw,
    /// A pod's own cgroup, holding its containers.
    Pod { uid: String },
    /// A container directly under a pod's cgroup.
    Container {
        uid: String,
        id: String,
        runtime: Runtime,
    },
}

/// Compiled patterns; built once per collector.
#[derive(Debug)]
pub(crate) struct Namer {
    systemd_pod: Regex,
    cgroupfs_pod: Regex,
    container: Regex,
}

impl Namer {
    pub fn new() -> Result<Self, regex::Error> {
        Ok(Namer {
            // The systemd driver escapes `-` in the uid as `_` (kubelet's `ToSystemd`).
            systemd_pod: Regex::new(
                r"^kubepods(?:-burstable|-besteffort)?-pod([0-9a-fA-F_]{36})\.slice$",
            )?,
            cgroupfs_pod: Regex::new(r"^pod([0-9a-fA-F-]{36})$")?,
            container: Regex::new(
                r"^(?:(cri-containerd|crio|docker)-)?([0-9a-f]{64})(?:\.scope)?$",
            )?,
        })
    }

    /// The identity of the cgroup at `path` (`/`-separated, relative to the hierarchy root).
    pub fn identify(&self, path: &str) -> Identity {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut under_kubepods = false;
        for (i, segment) in segments.iter().enumerate() {
            let uid = if let Some(c) = self.systemd_pod.captures(segment) {
                c.get(1).map(|m| m.as_str().replace('_', "-"))
            } else if under_kubepods {
                self.cgroupfs_pod
                    .captures(segment)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_string())
            } else {
                None
            };
            under_kubepods |= *segment == "kubepods" || segment.starts_with("kubepods.");
            let Some(uid) = uid else { continue };
            let uid = uid.to_ascii_lowercase();
            return match &segments[i + 1..] {
                [] => Identity::Pod { uid },
                [child] => match self.container.captures(child) {
                    Some(c) => {
                        let runtime = match c.get(1).map(|m| m.as_str()) {
                            Some("crio") => Runtime::Crio,
                            Some("docker") => Runtime::Docker,
                            _ => Runtime::Containerd,
                        };
                        let id = c.get(2).map(|m| m.as_str().to_string()).unwrap_or_default();
                        Identity::Container { uid, id, runtime }
                    }
                    // `crio-conmon-<id>.scope` and other helpers: not a container.
                    None => Identity::Raw,
                },
                // Below a container (its own sub-cgroups): reported as raw cgroups.
                _ => Identity::Raw,
            };
        }
        Identity::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8e3d4c-1b2a-4c5d-8e9f-0a1b2c3d4e5f";
    const ID: &str = "a3f1c2d4e5b6a7980112233445566778899aabbccddeeff00112233445566778";

    fn container(runtime: Runtime) -> Identity {
        Identity::Container {
            uid: UID.into(),
            id: ID.into(),
            runtime,
        }
    }

    #[test]
    fn systemd_driver_names() {
        let n = Namer::new().unwrap();
        let pod = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            UID.replace('-', "_")
        );
        assert_eq!(n.identify(&pod), Identity::Pod { uid: UID.into() });
        for (unit, runtime) in [
            (format!("cri-containerd-{ID}.scope"), Runtime::Containerd),
            (format!("crio-{ID}.scope"), Runtime::Crio),
            (format!("docker-{ID}.scope"), Runtime::Docker),
        ] {
            assert_eq!(n.identify(&format!("{pod}/{unit}")), container(runtime));
        }
        assert_eq!(
            n.identify(&format!("{pod}/crio-conmon-{ID}.scope")),
            Identity::Raw
        );
        let guaranteed = format!(
            "/kubepods.slice/kubepods-pod{}.slice",
            UID.replace('-', "_")
        );
        assert_eq!(n.identify(&guaranteed), Identity::Pod { uid: UID.into() });
    }

    #[test]
    fn cgroupfs_driver_names_behind_a_prefix() {
        let n = Namer::new().unwrap();
        let pod = format!("/kind/kubepods/besteffort/pod{UID}");
        assert_eq!(n.identify(&pod), Identity::Pod { uid: UID.into() });
        assert_eq!(
            n.identify(&format!("{pod}/{ID}")),
            container(Runtime::Containerd)
        );
        assert_eq!(n.identify(&format!("{pod}/{ID}/nested")), Identity::Raw);
    }

    #[test]
    fn other_cgroups_are_raw() {
        let n = Namer::new().unwrap();
        for path in [
            "/",
            "/system.slice/containerd.service",
            "/kubepods.slice",
            "/kubepods/burstable",
            // A `pod<uid>` directory outside kubepods is someone else's naming.
            &format!("/user.slice/pod{UID}"),
        ] {
            assert_eq!(n.identify(path), Identity::Raw, "{path}");
        }
    }
}
