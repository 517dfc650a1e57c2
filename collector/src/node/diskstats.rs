//! The `diskstats` collector: block device I/O counters from `/proc/diskstats`, with
//! node_exporter's names, units and device filter (`diskstats_linux.go`), and
//! `node_disk_info` labelled from udev's database when it is mounted.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::family::{Family, MetricType};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions, RAM disks,
/// loop devices and floppies, so each physical disk is counted once.
pub const DEFAULT_DISKSTATS_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// Where udev keeps device properties unless configured (`--path.udev.data`).
pub const DEFAULT_UDEV_DATA: &str = "/run/udev/data";

/// The kernel counts sectors of 512 bytes in diskstats whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;
/// Times in diskstats are milliseconds.
const MS: f64 = 0.001;

/// The per-field families in `/proc/diskstats` column order (after major, minor, name): name,
/// HELP, type and the factor from the kernel's unit to node_exporter's.
const FIELDS: &[(&str, &str, MetricType, f64)] = &[
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricType::Counter,
        SECTOR_BYTES,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricType::Counter,
        SECTOR_BYTES,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        MS,
    ),
];

/// One line of `/proc/diskstats`.
#[derive(Debug, PartialEq)]
pub(crate) struct Disk<'a> {
    pub major: &'a str,
    pub minor: &'a str,
    pub name: &'a str,
    /// The counters present on this kernel: 11 before 4.18, 15 until 5.5, 17 since.
    pub counters: Vec<f64>,
}

/// Parses `/proc/diskstats`; a line with fewer than 14 fields or a non-numeric counter fails
/// the collector (the file is not a diskstats file).
pub(crate) fn parse(text: &str) -> Result<Vec<Disk<'_>>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 14 {
            return Err(format!(
                "diskstats line has {} fields: {line:?}",
                fields.len()
            ));
        }
        let counters = fields[3..]
            .iter()
            .map(|f| f.parse::<u64>().map(|v| v as f64))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("diskstats counter in {line:?}: {e}"))?;
        out.push(Disk {
            major: fields[0],
            minor: fields[1],
            name: fields[2],
            counters,
        });
    }
    Ok(out)
}

/// Reads udev's `E:KEY=value` properties of a block device (`b<major>:<minor>`), empty when
/// udev's database is not there (a container without `/run/udev` mounted).
pub(crate) fn udev_properties(
    udev_data: &Path,
    major: &str,
    minor: &str,
) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(udev_data.join(format!("b{major}:{minor}"))) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The families for the disks `exclude` does not match; `udev(major, minor)` gives each
/// disk's udev properties.
pub(crate) fn families(
    disks: &[Disk<'_>],
    exclude: &Regex,
    udev: impl Fn(&str, &str) -> HashMap<String, String>,
) -> Vec<Family> {
    let mut info = Family::new(
        "node_disk_info",
        "Info of /sys/block/<block_device>.",
        MetricType::Gauge,
    );
    let mut fs_info = Family::new(
        "node_disk_filesystem_info",
        "Info about disk filesystem.",
        MetricType::Gauge,
    );
    let mut dm_info = Family::new(
        "node_disk_device_mapper_info",
        "Info about disk device mapper.",
        MetricType::Gauge,
    );
    let mut per_field: Vec<Family> = FIELDS
        .iter()
        .map(|&(name, help, kind, _)| Family::new(name, help, kind))
        .collect();
    for d in disks.iter().filter(|d| !exclude.is_match(d.name)) {
        let props = udev(d.major, d.minor);
        let prop = |k: &str| props.get(k).cloned().unwrap_or_default();
        let dev = || ("device", d.name.to_string());
        info.push(
            vec![
                dev(),
                ("major", d.major.to_string()),
                ("minor", d.minor.to_string()),
                ("path", prop("ID_PATH")),
                ("wwn", prop("ID_WWN")),
                ("model", prop("ID_MODEL")),
                ("serial", prop("ID_SERIAL_SHORT")),
                ("revision", prop("ID_REVISION")),
            ],
            1.0,
        );
        for ((fam, &(_, _, _, factor)), &v) in per_field.iter_mut().zip(FIELDS).zip(&d.counters) {
            fam.push(vec![dev()], v * factor);
        }
        if !prop("ID_FS_TYPE").is_empty() {
            fs_info.push(
                vec![
                    dev(),
                    ("type", prop("ID_FS_TYPE")),
                    ("usage", prop("ID_FS_USAGE")),
                    ("uuid", prop("ID_FS_UUID")),
                    ("version", prop("ID_FS_VERSION")),
                ],
                1.0,
            );
        }
        if !prop("DM_NAME").is_empty() {
            dm_info.push(
                vec![
                    dev(),
                    ("name", prop("DM_NAME")),
                    ("uuid", prop("DM_UUID")),
                    ("vg_name", prop("DM_VG_NAME")),
                    ("lv_name", prop("DM_LV_NAME")),
                    ("lv_layer", prop("DM_LV_LAYER")),
                ],
                1.0,
            );
        }
    }
    std::iter::once(info)
        .chain(per_field)
        .chain([fs_info, dm_info])
        .filter(|f| !f.points.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = "\
 254       0 vda 30732 6043 3562298 24238 8753 29613 6004168 56310 0 12624 81714 4017 40 219408 1118 995 46
 254       1 vda1 100 0 800 10 0 0 0 0 0 5 10 0 0 0 0 0 0
   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0
   8       0 sda 10 1 20 30 4 5 6 7 0 8 9
";

    fn exclude() -> Regex {
        Regex::new(DEFAULT_DISKSTATS_EXCLUDE).unwrap()
    }

    #[test]
    fn units_filter_and_old_kernels() {
        let disks = parse(DISKSTATS).unwrap();
        let fams = families(&disks, &exclude(), |_, _| HashMap::new());
        let value = |name: &str, dev: &str| {
            fams.iter()
                .find(|f| f.name == name)
                .and_then(|f| f.points.iter().find(|p| p.labels[0].1 == dev))
                .map(|p| p.value)
        };
        assert_eq!(
            value("node_disk_read_bytes_total", "vda"),
            Some(3562298.0 * 512.0)
        );
        assert_eq!(
            value("node_disk_io_time_seconds_total", "vda"),
            Some(12.624)
        );
        assert_eq!(
            value("node_disk_discarded_sectors_total", "vda"),
            Some(219408.0)
        );
        assert_eq!(value("node_disk_flush_requests_total", "vda"), Some(995.0));
        assert_eq!(
            value("node_disk_reads_completed_total", "vda1"),
            None,
            "partition"
        );
        assert_eq!(value("node_disk_reads_completed_total", "loop0"), None);
        // An 11-field (pre-4.18) line has no discard or flush counters. Milliseconds times
        // 0.001, as node_exporter computes it, so the floats agree to the bit.
        assert_eq!(
            value("node_disk_io_time_weighted_seconds_total", "sda"),
            Some(9.0 * 0.001)
        );
        assert_eq!(value("node_disk_discards_completed_total", "sda"), None);
        assert!(fams.iter().all(|f| f.name != "node_disk_filesystem_info"));
        let info = fams.iter().find(|f| f.name == "node_disk_info").unwrap();
        let names: Vec<&str> = info.points[0].labels.iter().map(|l| l.0).collect();
        assert_eq!(
            names,
            ["device", "major", "minor", "path", "wwn", "model", "serial", "revision"]
        );
    }

    #[test]
    fn udev_properties_label_info_and_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b8:0"),
            "S:disk/by-id/x\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=abc\nE:DM_NAME=vg-root\n",
        )
        .unwrap();
        let disks = parse(DISKSTATS).unwrap();
        let fams = families(&disks, &exclude(), |a, b| udev_properties(dir.path(), a, b));
        let info = fams.iter().find(|f| f.name == "node_disk_info").unwrap();
        let sda = info.points.iter().find(|p| p.labels[0].1 == "sda").unwrap();
        assert!(sda.labels.contains(&("model", "QEMU_HARDDISK".to_string())));
        let fs = fams
            .iter()
            .find(|f| f.name == "node_disk_filesystem_info")
            .unwrap();
        assert!(fs.points[0].labels.contains(&("uuid", "abc".to_string())));
        assert!(fams
            .iter()
            .any(|f| f.name == "node_disk_device_mapper_info"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse("8 0 sda 1 2 3\n").is_err());
        assert!(parse("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n").is_err());
    }
}
