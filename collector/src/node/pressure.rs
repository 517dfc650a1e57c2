//! The `pressure` collector: pressure stall information from `/proc/pressure/{cpu,io,memory}`
//! as node_exporter's `pressure_linux.go` reports it (the `total=` microsecond counters, in
//! seconds).

use crate::family::{Family, MetricType};

/// The `some`/`full` totals of one PSI file, in microseconds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Psi {
    pub some: Option<u64>,
    pub full: Option<u64>,
}

/// Parses one PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` and a `full` line.
pub(crate) fn parse(text: &str) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_ascii_whitespace();
        let kind = parts.next().unwrap_or_default();
        let total = parts
            .find_map(|p| p.strip_prefix("total="))
            .ok_or_else(|| format!("no total= in pressure line {line:?}"))?;
        let total: u64 = total
            .parse()
            .map_err(|e| format!("pressure total {total:?}: {e}"))?;
        match kind {
            "some" => psi.some = Some(total),
            "full" => psi.full = Some(total),
            other => return Err(format!("unknown pressure line kind {other:?}")),
        }
    }
    Ok(psi)
}

/// The families for the three resources, given each file's text. `cpu` reports only `some`
/// (its `full` line, on newer kernels, is not exported by node_exporter 1.5).
pub(crate) fn collect(cpu: &str, io: &str, memory: &str) -> Result<Vec<Family>, String> {
    let secs = |us: Option<u64>, what: &str| {
        us.map(|v| v as f64 / 1e6)
            .ok_or_else(|| format!("no {what} line in pressure file"))
    };
    let (cpu, io, memory) = (parse(cpu)?, parse(io)?, parse(memory)?);
    let fam = |name: &str, help: &str, v: f64| Family::single(name, help, MetricType::Counter, v);
    Ok(vec![
        fam(
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
            secs(cpu.some, "cpu some")?,
        ),
        fam(
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            secs(io.full, "io full")?,
        ),
        fam(
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            secs(io.some, "io some")?,
        ),
        fam(
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            secs(memory.full, "memory full")?,
        ),
        fam(
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
            secs(memory.some, "memory some")?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "some avg10=1.00 avg60=0.50 avg300=0.10 total=19798532\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const IO: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=7118304\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4671300\n";

    #[test]
    fn totals_become_seconds() {
        let f = collect(CPU, IO, IO).unwrap();
        assert_eq!(f[0].name, "node_pressure_cpu_waiting_seconds_total");
        assert_eq!(f[0].points[0].value, 19.798532);
        assert_eq!(f[1].points[0].value, 4.6713);
        assert_eq!(f[2].points[0].value, 7.118304);
        assert_eq!(f[0].kind, MetricType::Counter);
    }

    #[test]
    fn missing_lines_and_bad_totals_are_errors() {
        assert!(collect(CPU, "some total=1\n", IO).is_err());
        assert!(parse("some avg10=0 total=x\n").is_err());
        assert!(parse("half total=1\n").is_err());
    }
}
