//! The `sockstat` collector: socket counts per protocol from `/proc/net/sockstat` and
//! `sockstat6`, as node_exporter's `sockstat_linux.go` names them
//! (`node_sockstat_<PROTO>_<state>`, plus `_mem_bytes` from pages).

use crate::family::{Family, MetricType};

/// Parses one sockstat file: `sockets: used 43` and lines like
/// `TCP: inuse 9 orphan 0 tw 0 alloc 9 mem 258`. `ipv6` leaves out `sockets_used`, which
/// only the IPv4 file carries. `page_size` turns `mem` (pages) into `mem_bytes`.
pub(crate) fn families(text: &str, ipv6: bool, page_size: u64) -> Result<Vec<Family>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (proto, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed sockstat line {line:?}"))?;
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let chunks = fields.chunks_exact(2);
        if !chunks.remainder().is_empty() {
            return Err(format!("odd number of fields in sockstat line {line:?}"));
        }
        let mut pairs = Vec::with_capacity(fields.len() / 2 + 1);
        for kv in chunks {
            let v: u64 = kv[1]
                .parse()
                .map_err(|e| format!("sockstat {proto} {} value {:?}: {e}", kv[0], kv[1]))?;
            pairs.push((kv[0], v as f64));
        }
        if proto == "sockets" {
            if !ipv6 {
                if let Some(&(_, used)) = pairs.iter().find(|(k, _)| *k == "used") {
                    out.push(Family::single(
                        "node_sockstat_sockets_used",
                        "Number of IPv4 sockets in use.",
                        MetricType::Gauge,
                        used,
                    ));
                }
            }
            continue;
        }
        if let Some(&(_, mem)) = pairs.iter().find(|(k, _)| *k == "mem") {
            pairs.push(("mem_bytes", mem * page_size as f64));
        }
        for (state, v) in pairs {
            // node_exporter knows these states; anything else a future kernel adds is not
            // part of its output, so it is not part of ours.
            if !matches!(
                state,
                "inuse" | "orphan" | "tw" | "alloc" | "mem" | "memory" | "mem_bytes"
            ) {
                continue;
            }
            out.push(Family::single(
                format!("node_sockstat_{proto}_{state}"),
                format!("Number of {proto} sockets in state {state}."),
                MetricType::Gauge,
                v,
            ));
        }
    }
    Ok(out)
}

/// The system page size from the auxiliary vector (`AT_PAGESZ`) in `auxv`, the binary file
/// `/proc/self/auxv`: pairs of native-endian machine words. 4096 when absent.
pub(crate) fn page_size(auxv: &[u8]) -> u64 {
    const AT_PAGESZ: u64 = 6;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| -> u64 {
        let mut buf = [0u8; 8];
        if WORD == 8 {
            buf.copy_from_slice(b);
            u64::from_ne_bytes(buf)
        } else {
            let mut small = [0u8; 4];
            small.copy_from_slice(b);
            u64::from(u32::from_ne_bytes(small))
        }
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|&(k, _)| k == AT_PAGESZ)
        .map(|(_, v)| v)
        .filter(|&v| v > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "sockets: used 43\nTCP: inuse 9 orphan 0 tw 1 alloc 9 mem 258\nUDP: inuse 0 mem 0\nFRAG: inuse 0 memory 0\n";

    #[test]
    fn names_states_and_mem_bytes() {
        let f = families(V4, false, 4096).unwrap();
        let got: Vec<(&str, f64)> = f
            .iter()
            .map(|f| (f.name.as_str(), f.points[0].value))
            .collect();
        assert!(got.contains(&("node_sockstat_sockets_used", 43.0)));
        assert!(got.contains(&("node_sockstat_TCP_tw", 1.0)));
        assert!(got.contains(&("node_sockstat_TCP_mem_bytes", 258.0 * 4096.0)));
        assert!(got.contains(&("node_sockstat_FRAG_memory", 0.0)));
        assert_eq!(got.len(), 12);
        let tcp = f
            .iter()
            .find(|f| f.name == "node_sockstat_TCP_inuse")
            .unwrap();
        assert_eq!(tcp.help, "Number of TCP sockets in state inuse.");
        let v6 = families("TCP6: inuse 2\n", true, 4096).unwrap();
        assert_eq!(v6[0].name, "node_sockstat_TCP6_inuse");
        assert!(families("TCP: inuse\n", false, 4096).is_err());
        assert!(families("TCP inuse 1\n", false, 4096).is_err());
    }

    #[test]
    fn page_size_from_auxv() {
        let mut auxv = Vec::new();
        for (k, v) in [(3usize, 64usize), (6, 16384), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(page_size(&auxv), 16384);
        assert_eq!(page_size(&[]), 4096);
        let real = std::fs::read("/proc/self/auxv").unwrap_or_default();
        assert!(page_size(&real).is_power_of_two());
    }
}
