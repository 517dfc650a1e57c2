//! The `filefd` collector: allocated and maximum file handles from `/proc/sys/fs/file-nr`
//! (node_exporter's `filefd_linux.go`).

use crate::family::{Family, MetricType};

/// Parses `file-nr`: three tab-separated numbers, allocated, unused (always 0 since 2.6) and
/// maximum.
pub(crate) fn collect(text: &str) -> Result<Vec<Family>, String> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [allocated, _, maximum] = parts[..] else {
        return Err(format!("file-nr has {} fields, want 3", parts.len()));
    };
    let num = |name: &str, v: &str| {
        v.parse::<f64>()
            .map_err(|e| format!("file-nr {name} value {v:?}: {e}"))
    };
    Ok(vec![
        Family::single(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricType::Gauge,
            num("allocated", allocated)?,
        ),
        Family::single(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricType::Gauge,
            num("maximum", maximum)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_nr() {
        let f = collect("1116\t0\t2466177\n").unwrap();
        assert_eq!(f[0].name, "node_filefd_allocated");
        assert_eq!(f[0].points[0].value, 1116.0);
        assert_eq!(f[1].points[0].value, 2466177.0);
        assert!(collect("1 2\n").is_err());
        assert!(collect("1 0 x\n").is_err());
    }
}
