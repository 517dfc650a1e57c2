//! `vigil-bench logs`: log ingest through the push API (issue 8's "MiB/s per core through the
//! push API"), measured on a real `vigil server` process.
//!
//! The lines are the log store benchmark's (`logstore/benches/loggen`, one copy shared with
//! `cargo bench -p logstore --bench grep`): nginx, kubelet and JSON container logs over 60
//! streams and six hours. They are cut into pushes of about 1 MiB of lines, as Promtail
//! batches (every stream in every push, each stream's entries in time order), and encoded as
//! Loki's protobuf `PushRequest` in a snappy block — or, with `--json`, as Loki's JSON push
//! body — all before the measured phase, so the client's encoding never competes with the
//! server for the CPU. Then `--pushers` connections push them, each push answered 204.
//!
//! The server's CPU (all threads, from `/proc/<pid>/stat`) is counted from just before the
//! first push until its indexing is done: polled every 100 ms after the last 204 until a 2 s
//! window in which it used less than 2% of a core above its idle rate, the work ending at the
//! last poll interval in which it used more than a clock tick. The idle rate, measured over
//! 2 s before the run, is subtracted. MiB/s per core is raw line bytes (each line plus its newline, as a node
//! keeps them) per server CPU-second. The answers are checked: per-namespace
//! `count_over_time` over the whole span must equal the lines pushed, and a count of the lines
//! holding the needle trace id must equal the generator's.

use crate::http::Client;
use crate::procfs::cpu_seconds;
use crate::report::{num, Table};
use crate::server::{Kind, Server};
use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::Args;
use model::wire::loki::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[path = "../../logstore/benches/loggen/mod.rs"]
mod loggen;

/// Lines per push: about 1 MiB of them, Promtail's default `batchsize`.
const BATCH_BYTES: usize = 1 << 20;
/// The window over which the server must stay quiet for its indexing to count as done, and
/// over which its idle rate is measured. Longer than the store's 1 s commit interval, so the
/// last commit falls inside the wait.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// Above its idle rate, the share of one core under which the server counts as quiet.
const QUIET_CORES: f64 = 0.02;
/// How often the server's CPU is read while waiting for it to go quiet.
const QUIET_POLL: Duration = Duration::from_millis(100);
/// CPU seconds in one poll interval that count as work rather than idling: more than the
/// one 10 ms clock tick an idle process's housekeeping may round up to.
const WORK_CPU_S: f64 = 0.015;
/// Longest the benchmark waits for the server to go quiet after the last push.
const QUIET_TIMEOUT: Duration = Duration::from_secs(600);
/// Issue 8's target for ingest through the push API (Quickwit publishes 7.5 MB/s per core).
const TARGET_MIB_PER_CORE: f64 = 20.0;
/// Longest a push or a check query may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// MiB of raw log lines to push.
    #[arg(long, default_value_t = 1024)]
    pub mib: u64,

    /// Pushes in flight (connections) at once.
    #[arg(long, default_value_t = 2)]
    pub pushers: usize,

    /// Push Loki's JSON body (uncompressed) instead of protobuf in a snappy block.
    #[arg(long)]
    pub json: bool,

    /// The vigil binary to run. Default: target/release/vigil of this workspace (or of
    /// $CARGO_TARGET_DIR); build it first with `cargo build --release`.
    #[arg(long)]
    pub vigil: Option<PathBuf>,

    /// Leave the server's data directory in place (its path is printed last).
    #[arg(long)]
    pub keep: bool,

    /// Directory under which the server's data directory is created (and removed after the
    /// run).
    #[arg(long = "work-dir", default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
}

/// The push bodies, encoded, and what they hold.
#[derive(Debug, Default)]
struct Bodies {
    bodies: Vec<Bytes>,
    /// Lines plus their newlines: the bytes a node's log files would hold.
    raw_bytes: u64,
    lines: u64,
    /// Lines per namespace.
    per_namespace: BTreeMap<String, u64>,
    /// Lines holding the needle trace id.
    needles: u64,
    last_ts_ns: i64,
}

impl Bodies {
    fn encoded_bytes(&self) -> u64 {
        self.bodies.iter().map(|b| b.len() as u64).sum()
    }
}

/// Generates `target` raw bytes of lines and encodes them as pushes of about `batch` bytes
/// of lines each.
fn encode(target: u64, batch: usize, json: bool) -> Bodies {
    let streams = loggen::streams();
    let labels: Vec<model::Labels> = streams.iter().map(|s| s.labels.clone()).collect();
    let mut out = Bodies::default();
    let mut pending: Vec<Vec<EntryAdapter>> = vec![Vec::new(); labels.len()];
    let mut pending_bytes = 0;
    for line in loggen::Generator::new(target) {
        out.raw_bytes += line.text.len() as u64 + 1;
        out.lines += 1;
        *out.per_namespace
            .entry(streams[line.stream].namespace.to_string())
            .or_default() += 1;
        out.needles += u64::from(line.text.contains(loggen::NEEDLE));
        out.last_ts_ns = line.ts_ns;
        pending_bytes += line.text.len();
        pending[line.stream].push(EntryAdapter {
            timestamp: Some(Timestamp::from_nanos(line.ts_ns)),
            line: line.text,
            structured_metadata: Vec::new(),
        });
        if pending_bytes >= batch {
            out.bodies.push(body(&labels, &mut pending, json));
            pending_bytes = 0;
        }
    }
    if pending_bytes > 0 {
        out.bodies.push(body(&labels, &mut pending, json));
    }
    out
}

/// One push of every stream's pending entries (taken), in the chosen encoding.
fn body(labels: &[model::Labels], pending: &mut [Vec<EntryAdapter>], json: bool) -> Bytes {
    let streams = labels
        .iter()
        .zip(pending.iter_mut())
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(labels, entries)| (labels, std::mem::take(entries)));
    if json {
        let streams: Vec<serde_json::Value> = streams
            .map(|(labels, entries)| {
                let stream: serde_json::Map<String, serde_json::Value> = labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone().into()))
                    .collect();
                let values: Vec<serde_json::Value> = entries
                    .into_iter()
                    .map(|e| {
                        let ts = e.timestamp.map_or(0, Timestamp::to_nanos);
                        serde_json::json!([ts.to_string(), e.line])
                    })
                    .collect();
                serde_json::json!({ "stream": stream, "values": values })
            })
            .collect();
        Bytes::from(serde_json::json!({ "streams": streams }).to_string())
    } else {
        let req = PushRequest {
            streams: streams
                .map(|(labels, entries)| StreamAdapter {
                    labels: labels.to_string(),
                    entries,
                    hash: 0,
                })
                .collect(),
        };
        Bytes::from(model::wire::snappy_compress(&req.encode_to_vec()))
    }
}

/// The server's CPU seconds at a moment.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    at: Instant,
    cpu: f64,
}

impl CpuMark {
    fn now(pid: u32) -> anyhow::Result<CpuMark> {
        Ok(CpuMark {
            at: Instant::now(),
            cpu: cpu_seconds(pid)?,
        })
    }

    /// Cores used since `earlier`.
    fn cores_since(&self, earlier: CpuMark) -> f64 {
        let secs = self.at.duration_since(earlier.at).as_secs_f64();
        if secs > 0.0 {
            (self.cpu - earlier.cpu) / secs
        } else {
            0.0
        }
    }
}

/// Waits until the server stays within [`QUIET_CORES`] of its idle rate for a whole
/// [`QUIET_WINDOW`]; returns the mark at which its work ended: the end of the last poll
/// interval in which it used more than one clock tick of CPU.
async fn wait_quiet(pid: u32, idle_cores: f64) -> anyhow::Result<CpuMark> {
    let deadline = Instant::now() + QUIET_TIMEOUT;
    let mut window = VecDeque::from([CpuMark::now(pid)?]);
    let mut last_work = window[0];
    loop {
        tokio::time::sleep(QUIET_POLL).await;
        let now = CpuMark::now(pid)?;
        if window
            .back()
            .is_some_and(|prev| now.cpu - prev.cpu > WORK_CPU_S)
        {
            last_work = now;
        }
        window.push_back(now);
        while window.len() > 2 && now.at.duration_since(window[1].at) >= QUIET_WINDOW {
            window.pop_front();
        }
        let first = window[0];
        if now.at.duration_since(first.at) >= QUIET_WINDOW
            && now.cores_since(first) < idle_cores + QUIET_CORES
        {
            return Ok(last_work);
        }
        if Instant::now() > deadline {
            bail!("the server still used CPU {QUIET_TIMEOUT:?} after the last push");
        }
    }
}

/// Pushes every body with `pushers` connections; each must be answered 204.
async fn push_all(
    base: &str,
    bodies: Arc<Vec<Bytes>>,
    pushers: usize,
    json: bool,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let url = format!("{base}/loki/api/v1/push");
    let content_type = if json {
        "application/json"
    } else {
        // What Promtail sends: the body is a snappy block with no Content-Encoding header.
        "application/x-protobuf"
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..pushers.max(1) {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return anyhow::Ok(());
                };
                let resp = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .with_context(|| format!("push {i}"))?;
                let status = resp.status();
                if status != reqwest::StatusCode::NO_CONTENT {
                    let text = resp.text().await.unwrap_or_default();
                    bail!("push {i}: {status}: {}", text.trim());
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("pusher task")??;
    }
    Ok(())
}

/// Runs an instant LogQL metric query at `time_ns` and returns its vector as
/// (label value of `by`, value) pairs; `by` may be absent from the series (a plain `sum`).
async fn vector(
    client: &Client,
    base: &str,
    query: &str,
    time_ns: i64,
    by: &str,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let params = [("query", query.to_string()), ("time", time_ns.to_string())];
    let (_, answer) = client.query(base, "/loki/api/v1/query", &params).await?;
    parse_vector(&answer, by).with_context(|| format!("{query}: {answer}"))
}

fn parse_vector(answer: &serde_json::Value, by: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    ensure!(answer["status"] == "success", "not a success");
    ensure!(answer["data"]["resultType"] == "vector", "not a vector");
    let mut out = BTreeMap::new();
    for s in answer["data"]["result"].as_array().context("no result")? {
        let key = s["metric"][by].as_str().unwrap_or_default().to_string();
        let value = s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .context("value is not [time, \"number\"]")?;
        out.insert(key, value);
    }
    Ok(out)
}

/// Checks the store holds every line pushed: per-namespace counts over the whole span, and
/// the count of needle lines (which reads the lines' index, not only the streams'). Each
/// answers a cell, `<server's figure> = <pushed>`, or why it does not hold.
async fn check(
    base: &str,
    sent: &Bodies,
) -> anyhow::Result<(anyhow::Result<String>, anyhow::Result<String>)> {
    let client = Client::new()?;
    // The range reaches from a second past the last line back to before the first one.
    let time_ns = sent.last_ts_ns + 1_000_000_000;
    let range_s = (time_ns - loggen::START_NS) / 1_000_000_000 + 1;
    let counts = vector(
        &client,
        base,
        &format!("sum by (namespace) (count_over_time({{namespace=~\".+\"}}[{range_s}s]))"),
        time_ns,
        "namespace",
    )
    .await
    .and_then(|counts| {
        let got: BTreeMap<String, u64> =
            counts.iter().map(|(k, v)| (k.clone(), *v as u64)).collect();
        ensure!(
            got == sent.per_namespace,
            "the server counts {got:?}, {:?} were pushed",
            sent.per_namespace
        );
        Ok(got.values().sum::<u64>())
    });
    let needles = vector(
        &client,
        base,
        &format!(
            "sum(count_over_time({{namespace=~\".+\"}} |= \"{}\" [{range_s}s]))",
            loggen::NEEDLE
        ),
        time_ns,
        "",
    )
    .await
    .and_then(|v| {
        let found = v.values().sum::<f64>() as u64;
        ensure!(
            found == sent.needles,
            "the server finds {found}, {} were pushed",
            sent.needles
        );
        Ok(found)
    });
    let cell = |r: anyhow::Result<u64>, pushed: u64| r.map(|n| format!("{n} = {pushed}"));
    Ok((cell(counts, sent.lines), cell(needles, sent.needles)))
}

/// A check's table cell; the reason of a failure follows the table.
fn check_cell(r: &anyhow::Result<String>) -> String {
    match r {
        Ok(cell) => cell.clone(),
        Err(_) => "FAILED (below)".to_string(),
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_bytes(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

/// Runs the benchmark and returns its report.
pub async fn run(args: LogsArgs) -> anyhow::Result<String> {
    ensure!(args.mib > 0, "--mib must be at least 1");
    let bin = crate::setup::vigil_bin(args.vigil.as_deref())?;
    let root = tempfile::Builder::new()
        .prefix("vigil-bench-logs-")
        .tempdir_in(&args.work_dir)
        .with_context(|| format!("temp dir in {}", args.work_dir.display()))?;
    let server_root = root.path().join("vigil");
    let server = Server::start(Kind::Vigil, &bin, &server_root).await?;
    let pid = server.pid();
    eprintln!(
        "server pid {pid}, data under {}; encoding {} MiB of lines",
        root.path().display(),
        args.mib
    );
    let (mib, json) = (args.mib, args.json);
    let sent = tokio::task::spawn_blocking(move || encode(mib << 20, BATCH_BYTES, json))
        .await
        .context("encoder thread")?;
    eprintln!(
        "{} pushes, {:.0} MiB encoded; measuring the idle server for {QUIET_WINDOW:?}",
        sent.bodies.len(),
        sent.encoded_bytes() as f64 / (1 << 20) as f64
    );
    let idle_start = CpuMark::now(pid)?;
    tokio::time::sleep(QUIET_WINDOW).await;
    let start = CpuMark::now(pid)?;
    let idle_cores = start.cores_since(idle_start);

    let client_start = cpu_seconds(std::process::id())?;
    let bodies = Arc::new(sent.bodies.clone());
    push_all(&server.base(), bodies, args.pushers, args.json).await?;
    let pushed = Instant::now();
    let client_cpu = cpu_seconds(std::process::id())? - client_start;
    eprintln!(
        "pushed in {:.1} s; waiting for the server to go quiet",
        pushed.duration_since(start.at).as_secs_f64()
    );
    let done = wait_quiet(pid, idle_cores).await?;
    let cpu = (done.cpu - start.cpu) - idle_cores * done.at.duration_since(start.at).as_secs_f64();
    let disk = dir_bytes(&server_root.join("logs"))?;
    let (counted, needles) = check(&server.base(), &sent).await?;
    drop(server);

    let raw_mib = sent.raw_bytes as f64 / (1 << 20) as f64;
    let push_wall = pushed.duration_since(start.at).as_secs_f64();
    // The quiet wait starts after the last 204, so the end of work it finds is after it too.
    let done_wall = done.at.duration_since(start.at).as_secs_f64();
    let mut t = Table::new(&["measure", "Vigil", "target"]);
    let mut row = |what: &str, value: String, target: &str| {
        t.row(vec![what.to_string(), value, target.to_string()]);
    };
    row("raw MiB (lines + newlines)", num(raw_mib), "");
    row("lines", sent.lines.to_string(), "");
    row(
        &format!(
            "pushes ({} encoding, MiB on the wire)",
            if args.json {
                "JSON"
            } else {
                "protobuf + snappy"
            }
        ),
        format!(
            "{} ({})",
            sent.bodies.len(),
            num(sent.encoded_bytes() as f64 / (1 << 20) as f64)
        ),
        "",
    );
    row(
        &format!(
            "server CPU s, first push → indexing done (idle {:.3} cores subtracted)",
            idle_cores
        ),
        num(cpu),
        "",
    );
    row(
        "this client's CPU s while pushing (not counted)",
        num(client_cpu),
        "",
    );
    row(
        "**MiB/s per core** (raw MiB / server CPU s)",
        num(raw_mib / cpu),
        &format!("≥ {TARGET_MIB_PER_CORE}"),
    );
    row(
        &format!(
            "MiB/s wall, {} pushers, to the last 204 ({:.1} s)",
            args.pushers, push_wall
        ),
        num(raw_mib / push_wall),
        "",
    );
    row(
        &format!("MiB/s wall, to indexing done ({done_wall:.1} s)"),
        num(raw_mib / done_wall),
        "",
    );
    row(
        &format!(
            "disk bytes per raw byte, logs dir ({} MiB)",
            num(disk as f64 / (1 << 20) as f64)
        ),
        num(disk as f64 / sent.raw_bytes as f64),
        "",
    );
    row(
        "lines the server counts (count_over_time by namespace) = lines pushed",
        check_cell(&counted),
        "",
    );
    row(
        "needle lines it finds (`|= \"<trace id>\"`) = needle lines pushed",
        check_cell(&needles),
        "",
    );
    let mut report = format!(
        "Log ingest through the push API: {raw_mib:.0} MiB of generated container logs, 60 \
         streams, pushes of about {} KiB of lines\n\n{}",
        BATCH_BYTES >> 10,
        t.render()
    );
    for (what, r) in [("line count", &counted), ("needle count", &needles)] {
        if let Err(e) = r {
            report.push_str(&format!("\nCHECK FAILED, {what}: {e:#}\n"));
        }
    }
    if args.keep {
        report.push_str(&format!("\ndata kept in {}\n", root.keep().display()));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four full pushes and a partial one.
    const TARGET: u64 = (4 << 20) + (100 << 10);
    const BATCH: usize = BATCH_BYTES;

    fn decode(body: &[u8]) -> PushRequest {
        let raw = model::wire::snappy_decompress(body, 16 << 20).unwrap();
        PushRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn pushes_hold_every_line_once_in_time_order_per_stream() {
        let sent = encode(TARGET, BATCH, false);
        assert!(sent.raw_bytes >= TARGET && sent.lines > 0);
        assert_eq!(sent.bodies.len(), 5);
        assert_eq!(sent.per_namespace.len(), 10);
        assert_eq!(sent.per_namespace.values().sum::<u64>(), sent.lines);
        let (mut lines, mut raw) = (0u64, 0u64);
        let mut last_ts: BTreeMap<String, i64> = BTreeMap::new();
        for (i, body) in sent.bodies.iter().enumerate() {
            let req = decode(body);
            let line_bytes: usize = req
                .streams
                .iter()
                .flat_map(|s| &s.entries)
                .map(|e| e.line.len())
                .sum();
            assert!(i + 1 < sent.bodies.len() || line_bytes < BATCH);
            if i + 1 < sent.bodies.len() {
                // Every push but the last is a full batch with every stream in it.
                assert_eq!(req.streams.len(), 60);
                assert!((BATCH..BATCH + 4096).contains(&line_bytes));
            }
            for s in &req.streams {
                let last = last_ts.entry(s.labels.clone()).or_insert(i64::MIN);
                for e in &s.entries {
                    let ts = e.timestamp.unwrap().to_nanos();
                    assert!(ts > *last, "{} goes back in time", s.labels);
                    *last = ts;
                    lines += 1;
                    raw += e.line.len() as u64 + 1;
                }
            }
        }
        assert_eq!((lines, raw), (sent.lines, sent.raw_bytes));
        assert_eq!(last_ts.len(), 60);
        assert_eq!(last_ts.values().max(), Some(&sent.last_ts_ns));
    }

    #[test]
    fn json_pushes_carry_the_same_lines_as_protobuf() {
        let (proto, json) = (encode(TARGET, BATCH, false), encode(TARGET, BATCH, true));
        assert_eq!(proto.bodies.len(), json.bodies.len());
        for (p, j) in proto.bodies.iter().zip(&json.bodies) {
            let p = decode(p);
            let j: serde_json::Value = serde_json::from_slice(j).unwrap();
            let j = j["streams"].as_array().unwrap();
            assert_eq!(p.streams.len(), j.len());
            for (ps, js) in p.streams.iter().zip(j) {
                let labels = model::parse_label_set(&ps.labels).unwrap();
                for l in labels.iter() {
                    assert_eq!(js["stream"][&l.name], l.value.as_str());
                }
                let values = js["values"].as_array().unwrap();
                assert_eq!(ps.entries.len(), values.len());
                for (e, v) in ps.entries.iter().zip(values) {
                    let ts = e.timestamp.unwrap().to_nanos().to_string();
                    assert_eq!(v[0], ts.as_str());
                    assert_eq!(v[1], e.line.as_str());
                }
            }
        }
    }

    #[test]
    fn needle_lines_are_counted() {
        // About one line in 20,000 holds the needle: 16 MiB of ~250-byte lines hold a few.
        let sent = encode(16 << 20, BATCH, false);
        let found: u64 = sent
            .bodies
            .iter()
            .flat_map(|b| decode(b).streams)
            .flat_map(|s| s.entries)
            .filter(|e| e.line.contains(loggen::NEEDLE))
            .count() as u64;
        assert_eq!(found, sent.needles);
        assert!(found > 0);
    }

    #[test]
    fn vector_answers_are_read_by_label() {
        let answer = serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"namespace": "auth"}, "value": [1718172000.5, "1200"]},
                {"metric": {"namespace": "web"}, "value": [1718172000.5, "34"]},
            ]}
        });
        let v = parse_vector(&answer, "namespace").unwrap();
        assert_eq!(v["auth"], 1200.0);
        assert_eq!(v["web"], 34.0);
        let plain = serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "7"]}]}
        });
        assert_eq!(parse_vector(&plain, "").unwrap()[""], 7.0);
        let matrix = serde_json::json!({"status": "success", "data": {"resultType": "matrix"}});
        assert!(parse_vector(&matrix, "").is_err());
    }
}
