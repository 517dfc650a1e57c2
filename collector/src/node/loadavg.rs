//! The `loadavg` collector: `node_load1`, `node_load5`, `node_load15` from `/proc/loadavg`
//! (node_exporter's `loadavg_linux.go`).

use crate::family::{Family, MetricType};

/// Parses the first three fields of `/proc/loadavg`.
pub(crate) fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let mut fields = text.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for slot in &mut out {
        let f = fields
            .next()
            .ok_or_else(|| format!("loadavg has fewer than 3 fields: {text:?}"))?;
        *slot = f
            .parse()
            .map_err(|_| format!("loadavg field {f:?} is not a number"))?;
    }
    Ok(out)
}

pub(crate) fn collect(text: &str) -> Result<Vec<Family>, String> {
    let [l1, l5, l15] = parse_loadavg(text)?;
    Ok(vec![
        Family::single("node_load1", "1m load average.", MetricType::Gauge, l1),
        Family::single("node_load15", "15m load average.", MetricType::Gauge, l15),
        Family::single("node_load5", "5m load average.", MetricType::Gauge, l5),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_averages() {
        assert_eq!(
            parse_loadavg("0.73 0.43 0.16 1/123 4567\n").unwrap(),
            [0.73, 0.43, 0.16]
        );
        let fams = collect("0.73 0.43 0.16 1/123 4567\n").unwrap();
        assert_eq!(fams[1].name, "node_load15");
        assert_eq!(fams[1].points[0].value, 0.16);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        assert!(parse_loadavg("0.73 zero").is_err());
        assert!(parse_loadavg("").is_err());
    }
}
