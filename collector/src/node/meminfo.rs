//! The `meminfo` collector: one `node_memory_*` gauge per `/proc/meminfo` field, named as
//! node_exporter's `meminfo_linux.go` names them.

use crate::family::{is_valid_metric_name, Family, MetricType};

/// Parses `/proc/meminfo` into `(field, value)` pairs with node_exporter's naming:
/// `Active(anon):  1556 kB` → `("Active_anon_bytes", 1593344.0)`, and a field without a unit
/// (`HugePages_Total:  0`) keeps its bare name. Lines that are not `Key: value [kB]` are
/// skipped (node_exporter fails the whole collector on them; one odd line should not cost
/// every memory metric).
pub(crate) fn parse_meminfo(text: &str) -> Vec<(String, f64)> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, f64)> {
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let key = parts.first()?.strip_suffix(':')?;
    let value: f64 = parts.get(1)?.parse().ok()?;
    // `Active(anon)` → `Active_anon`, as node_exporter's `\((.*)\)` → `_$1` rewrite does.
    let mut name = key.replace('(', "_").replace(')', "");
    let value = match parts.len() {
        2 => value,
        // The kernel writes every unit as "kB", which means KiB.
        3 => {
            name.push_str("_bytes");
            value * 1024.0
        }
        _ => return None,
    };
    Some((name, value))
}

pub(crate) fn collect(text: &str) -> Result<Vec<Family>, String> {
    let fields = parse_meminfo(text);
    if fields.is_empty() {
        return Err("no fields in meminfo".into());
    }
    Ok(fields
        .into_iter()
        .filter_map(|(field, value)| {
            let name = format!("node_memory_{field}");
            is_valid_metric_name(&name).then(|| {
                Family::single(
                    name,
                    format!("Memory information field {field}."),
                    MetricType::Gauge,
                    value,
                )
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "\
MemTotal:       24684084 kB
MemFree:        22756616 kB
Active(anon):       1556 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
this line is garbage
Broken:         twelve kB
";

    #[test]
    fn names_units_and_malformed_lines() {
        let f = parse_meminfo(MEMINFO);
        assert_eq!(
            f,
            vec![
                ("MemTotal_bytes".to_string(), 24684084.0 * 1024.0),
                ("MemFree_bytes".to_string(), 22756616.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 1593344.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2097152.0),
            ]
        );
    }

    #[test]
    fn families_carry_node_exporter_help() {
        let fams = collect(MEMINFO).unwrap();
        assert_eq!(fams[2].name, "node_memory_Active_anon_bytes");
        assert_eq!(fams[2].help, "Memory information field Active_anon_bytes.");
        assert_eq!(fams[2].kind, MetricType::Gauge);
        assert!(collect("").is_err());
    }
}
