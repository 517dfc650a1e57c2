//! The `netstat` collector: protocol counters from `/proc/net/netstat`, `/proc/net/snmp` and
//! `/proc/net/snmp6`, filtered by node_exporter's default `--collector.netstat.fields`, each
//! an untyped `node_netstat_<Proto>_<Field>` (`netstat_linux.go`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::family::{Family, MetricType};

/// node_exporter's default `--collector.netstat.fields`: the counters dashboards use.
pub const DEFAULT_NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// `protocol → field → value`, as the three files give them.
type Stats = BTreeMap<String, BTreeMap<String, f64>>;

/// Parses `netstat`/`snmp`: pairs of lines, a header `Tcp: RtoAlgorithm RtoMin …` and the
/// values `Tcp: 1 200 …`, with the same protocol and as many fields.
fn parse_paired(text: &str, file: &str, into: &mut Stats) -> Result<(), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(header) = lines.next() {
        let values = lines
            .next()
            .ok_or_else(|| format!("{file}: header without values: {header:?}"))?;
        let names: Vec<&str> = header.split_ascii_whitespace().collect();
        let vals: Vec<&str> = values.split_ascii_whitespace().collect();
        let proto = names
            .first()
            .and_then(|p| p.strip_suffix(':'))
            .ok_or_else(|| format!("{file}: malformed header {header:?}"))?;
        if vals.first() != names.first() || names.len() != vals.len() {
            return Err(format!("{file}: field count mismatch for {proto}"));
        }
        let entry = into.entry(proto.to_string()).or_default();
        for (name, value) in names[1..].iter().zip(&vals[1..]) {
            let v: f64 = value
                .parse()
                .map_err(|e| format!("{file}: {proto} {name} value {value:?}: {e}"))?;
            entry.insert((*name).to_string(), v);
        }
    }
    Ok(())
}

/// Parses `snmp6`: `Ip6InReceives 128` per line; the protocol is the name up to its first `6`.
fn parse_snmp6(text: &str, into: &mut Stats) -> Result<(), String> {
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(six) = key.find('6') else { continue };
        let (proto, name) = key.split_at(six + 1);
        let v: f64 = value
            .parse()
            .map_err(|e| format!("snmp6: {key} value {value:?}: {e}"))?;
        into.entry(proto.to_string())
            .or_default()
            .insert(name.to_string(), v);
    }
    Ok(())
}

/// The families for the fields `fields` matches. `snmp6` is `None` on a kernel without IPv6.
pub(crate) fn collect(
    netstat: &str,
    snmp: &str,
    snmp6: Option<&str>,
    fields: &Regex,
) -> Result<Vec<Family>, String> {
    let mut stats = Stats::new();
    parse_paired(netstat, "netstat", &mut stats)?;
    parse_paired(snmp, "snmp", &mut stats)?;
    if let Some(text) = snmp6 {
        parse_snmp6(text, &mut stats)?;
    }
    let mut out = Vec::new();
    for (proto, values) in &stats {
        for (name, &v) in values {
            let key = format!("{proto}_{name}");
            if fields.is_match(&key) {
                out.push(Family::single(
                    format!("node_netstat_{key}"),
                    format!("Statistic {proto}{name}."),
                    MetricType::Untyped,
                    v,
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenDrops TCPTimeouts PruneCalled\nTcpExt: 0 3 2 9\nIpExt: InOctets OutOctets\nIpExt: 101966200 156592\n";
    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 2 64 100\nTcp: RtoAlgorithm MaxConn CurrEstab InErrs\nTcp: 1 -1 2 0\n";
    const SNMP6: &str = "Ip6InReceives 5\nIp6InOctets 128\nIcmp6OutMsgs 9\nUdpLite6InErrors 0\n";

    #[test]
    fn default_fields_from_all_three_files() {
        let re = Regex::new(DEFAULT_NETSTAT_FIELDS).unwrap();
        let f = collect(NETSTAT, SNMP, Some(SNMP6), &re).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_netstat_Icmp6_OutMsgs",
                "node_netstat_Ip_Forwarding",
                "node_netstat_Ip6_InOctets",
                "node_netstat_IpExt_InOctets",
                "node_netstat_IpExt_OutOctets",
                "node_netstat_Tcp_CurrEstab",
                "node_netstat_Tcp_InErrs",
                "node_netstat_TcpExt_ListenDrops",
                "node_netstat_TcpExt_SyncookiesSent",
                "node_netstat_TcpExt_TCPTimeouts",
                "node_netstat_UdpLite6_InErrors",
            ]
        );
        let ip = f
            .iter()
            .find(|f| f.name == "node_netstat_IpExt_InOctets")
            .unwrap();
        assert_eq!(ip.help, "Statistic IpExtInOctets.");
        assert_eq!(
            (ip.kind, ip.points[0].value),
            (MetricType::Untyped, 101966200.0)
        );
    }

    #[test]
    fn mismatched_or_bad_lines_are_errors() {
        let re = Regex::new(DEFAULT_NETSTAT_FIELDS).unwrap();
        assert!(collect("Tcp: A B\nTcp: 1\n", SNMP, None, &re).is_err());
        assert!(collect("Tcp: A\n", SNMP, None, &re).is_err());
        assert!(collect(NETSTAT, "Ip: A\nIp: x\n", None, &re).is_err());
    }
}
