//! The `netdev` collector: per-interface counters from `/proc/net/dev`, named as
//! node_exporter's `netdev_linux.go` names them (`node_network_receive_bytes_total{device}`).
//!
//! node_exporter 1.5 reads the same counters over netlink by default; `/proc/net/dev` is its
//! fallback and needs no host network namespace when the host's `/proc` is mounted.

use std::collections::BTreeMap;

use crate::family::{is_valid_metric_name, Family, MetricType};

/// The counters of one interface: `("receive_bytes", 1234.0)`, … in the file's column order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DeviceStats {
    pub device: String,
    pub stats: Vec<(String, f64)>,
}

/// Parses `/proc/net/dev`. The column names come from the second header line, so a kernel
/// that adds a column is read correctly; a device line whose field count does not match the
/// header, or with a non-numeric field, is skipped.
pub(crate) fn parse_net_dev(text: &str) -> Result<Vec<DeviceStats>, String> {
    let mut lines = text.lines();
    let _title = lines.next();
    let header = lines.next().ok_or("net/dev has no column header")?;
    let parts: Vec<&str> = header.split('|').collect();
    let [_, rx, tx] = parts.as_slice() else {
        return Err(format!("invalid net/dev header {header:?}"));
    };
    let columns: Vec<String> = rx
        .split_ascii_whitespace()
        .map(|c| format!("receive_{c}"))
        .chain(tx.split_ascii_whitespace().map(|c| format!("transmit_{c}")))
        .collect();
    Ok(lines
        .filter_map(|line| parse_device_line(line, &columns))
        .collect())
}

fn parse_device_line(line: &str, columns: &[String]) -> Option<DeviceStats> {
    // The kernel pads the name and may leave no space after the colon (`eth0:123`).
    let (device, values) = line.rsplit_once(':')?;
    let device = device.trim();
    if device.is_empty() {
        return None;
    }
    let values: Vec<f64> = values
        .split_ascii_whitespace()
        .map(|v| v.parse::<u64>().map(|n| n as f64))
        .collect::<Result<_, _>>()
        .ok()?;
    if values.len() != columns.len() {
        return None;
    }
    Some(DeviceStats {
        device: device.to_string(),
        stats: columns.iter().cloned().zip(values).collect(),
    })
}

/// One `node_network_<column>_total` family per column, devices in `exclude` left out.
pub(crate) fn families(devices: &[DeviceStats], exclude: &[String]) -> Vec<Family> {
    let mut by_name: BTreeMap<String, Family> = BTreeMap::new();
    for d in devices.iter().filter(|d| !exclude.contains(&d.device)) {
        for (column, value) in &d.stats {
            let name = format!("node_network_{column}_total");
            if !is_valid_metric_name(&name) {
                continue;
            }
            by_name
                .entry(name.clone())
                .or_insert_with(|| {
                    Family::new(
                        name,
                        format!("Network device statistic {column}."),
                        MetricType::Counter,
                    )
                })
                .push(vec![("device", d.device.clone())], *value);
        }
    }
    by_name.into_values().collect()
}

pub(crate) fn collect(text: &str, exclude: &[String]) -> Result<Vec<Family>, String> {
    Ok(families(&parse_net_dev(text)?, exclude))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0:101999032 2593    1    2    0     0          0         0   178042    1732    3    4    0     0       0          0
 bad0: 1 2 3
 bad1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x
veth1:7 8 0 0 0 0 0 0 9 10 0 0 0 0 0 0
";

    #[test]
    fn parses_devices_and_skips_malformed_lines() {
        let devs = parse_net_dev(NET_DEV).unwrap();
        let names: Vec<&str> = devs.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "veth1"]);
        assert_eq!(devs[1].stats[0], ("receive_bytes".to_string(), 101999032.0));
        assert_eq!(devs[1].stats[10], ("transmit_errs".to_string(), 3.0));
        assert_eq!(devs[2].stats[8], ("transmit_bytes".to_string(), 9.0));
    }

    #[test]
    fn families_exclude_lo_and_follow_node_exporter_names() {
        let fams = collect(NET_DEV, &["lo".to_string()]).unwrap();
        let rx = fams
            .iter()
            .find(|f| f.name == "node_network_receive_bytes_total")
            .unwrap();
        assert_eq!(rx.help, "Network device statistic receive_bytes.");
        assert_eq!(rx.points.len(), 2);
        assert_eq!(rx.points[0].labels, vec![("device", "eth0".to_string())]);
        for name in [
            "node_network_transmit_bytes_total",
            "node_network_receive_packets_total",
            "node_network_transmit_packets_total",
            "node_network_receive_errs_total",
            "node_network_transmit_errs_total",
            "node_network_receive_drop_total",
            "node_network_transmit_drop_total",
            "node_network_transmit_colls_total",
        ] {
            assert!(fams.iter().any(|f| f.name == name), "{name}");
        }
    }

    #[test]
    fn a_broken_header_is_an_error() {
        assert!(parse_net_dev("").is_err());
        assert!(parse_net_dev("a\nno pipes here\n").is_err());
    }
}
