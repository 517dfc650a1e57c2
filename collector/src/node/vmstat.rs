//! The `vmstat` collector: the fields of `/proc/vmstat` that match node_exporter's default
//! `--collector.vmstat.fields`, each an untyped `node_vmstat_<field>` (`vmstat_linux.go`).

use regex::Regex;

use crate::family::{Family, MetricType};

/// node_exporter's default `--collector.vmstat.fields`: page-ins/outs, swap-ins/outs, faults
/// and OOM kills. Go's `MatchString` is unanchored, so only the leading `^` anchors it.
pub const DEFAULT_VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

/// Parses `/proc/vmstat` (`name value` per line) and keeps the fields `fields` matches.
/// A line that is not `name number` fails the collector, as in node_exporter.
pub(crate) fn collect(text: &str, fields: &Regex) -> Result<Vec<Family>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_ascii_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            return Err(format!("malformed vmstat line {line:?}"));
        };
        let value: f64 = value
            .parse()
            .map_err(|e| format!("vmstat {name} value {value:?}: {e}"))?;
        if fields.is_match(name) {
            out.push(Family::single(
                format!("node_vmstat_{name}"),
                format!("/proc/vmstat information field {name}."),
                MetricType::Untyped,
                value,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_default_fields() {
        let re = Regex::new(DEFAULT_VMSTAT_FIELDS).unwrap();
        let text = "nr_free_pages 100\npgpgin 5\npgfault 7\npgmajfault 2\noom_kill 0\npswpout 1\nnr_dirty 3\n";
        let names: Vec<String> = collect(text, &re)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            [
                "node_vmstat_pgpgin",
                "node_vmstat_pgfault",
                "node_vmstat_pgmajfault",
                "node_vmstat_oom_kill",
                "node_vmstat_pswpout"
            ]
        );
        let f = &collect("pgmajfault 1030\n", &re).unwrap()[0];
        assert_eq!(f.help, "/proc/vmstat information field pgmajfault.");
        assert_eq!((f.kind, f.points[0].value), (MetricType::Untyped, 1030.0));
        assert!(collect("pgfault x\n", &re).is_err());
    }
}
