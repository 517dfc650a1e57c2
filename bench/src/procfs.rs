//! What the kernel says a server process has used: CPU time (all threads) from
//! `/proc/<pid>/stat` and resident memory from `/proc/<pid>/status`.

use anyhow::{anyhow, Context};

/// Clock ticks per second of `utime`/`stime`. Linux fixes USER_HZ at 100 in its user ABI on
/// every architecture Vigil targets (`getconf CLK_TCK`), whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds the process has used so far, across all its threads.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_cpu_seconds(&text).with_context(|| format!("parse {path}"))
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2) may hold spaces and
/// parentheses, so counting starts after its last `)`.
fn parse_cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("no command name"))?;
    // After the name come field 3 (state) onwards: utime is the 12th of them.
    let mut fields = rest.split_whitespace().skip(11);
    let mut tick = || -> anyhow::Result<f64> {
        let f = fields.next().ok_or_else(|| anyhow!("too few fields"))?;
        Ok(f.parse::<u64>().with_context(|| format!("field {f:?}"))? as f64)
    };
    let (utime, stime) = (tick()?, tick()?);
    Ok((utime + stime) / USER_HZ)
}

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_rss(&text).with_context(|| format!("parse {path}"))
}

fn parse_rss(status: &str) -> anyhow::Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line"))?;
    let kb = line.trim().trim_end_matches("kB").trim();
    Ok(kb.parse::<u64>().with_context(|| format!("VmRSS {kb:?}"))? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_counted_after_the_command_name() {
        let stat =
            "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 5000 0 12 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_cpu_seconds(stat).unwrap(), 3.25);
        assert!(parse_cpu_seconds("4242 (x) S 1").is_err());
    }

    #[test]
    fn rss_in_bytes() {
        let status = "Name:\tprometheus\nVmPeak:\t  9000 kB\nVmRSS:\t  123456 kB\nThreads:\t12\n";
        assert_eq!(parse_rss(status).unwrap(), 123_456 * 1024);
        assert!(parse_rss("Name:\tx\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_bytes(pid).unwrap() > 0);
    }
}
