//! Tailer tests of file identity over temporary directories: two rotations between polls,
//! kubelet's gzip of rotated files (not read twice, resumed inside when unfinished),
//! copytruncate, restarts from checkpoints across rotations, deletion, empty files, a last
//! line without its newline, and a 10 MiB line split into pieces.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::tests::{append, last_offset, lines, poll, Fixture, TS, TS_NS};
use super::*;

fn cri(text: &str) -> String {
    format!("{TS} stdout F {text}\n")
}

fn texts(batches: &[LogBatch]) -> Vec<String> {
    lines(batches).into_iter().map(|(_, l)| l).collect()
}

/// One poll whose positions the server acknowledges; the checkpoint file is written.
async fn poll_acked(t: &mut Tailer) -> Vec<String> {
    let got = poll(t).await;
    for b in &got {
        t.apply_acks(b.positions.clone());
    }
    t.save().await;
    texts(&got)
}

/// kubelet's rotation: `0.log` renamed to `0.log.<stamp>`, a fresh `0.log` holding `next`.
fn rotate(log: &Path, stamp: &str, next: &str) -> PathBuf {
    let rotated = log.with_extension(format!("log.{stamp}"));
    std::fs::rename(log, &rotated).unwrap();
    append(log, next.as_bytes());
    rotated
}

/// kubelet's compression of a rotated file: `x` → `x.gz`, then `x` removed.
fn gzip(path: &Path) -> PathBuf {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    gzip_into(path, &gz);
    gz
}

/// Writes `src` gzipped to `gz`, then removes `src`.
fn gzip_into(src: &Path, gz: &Path) {
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(src).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(src).unwrap();
}

/// kubelet's compression of `rotated` as a rescan racing it can see it: one listing has
/// neither the rotated file nor its `.gz` (the directory was read before the `.gz` was renamed
/// into place, the rotated file looked at after it was removed), the next has the `.gz`.
/// The rotated file waits at `aside`, outside the listed tree, meanwhile. Returns what each of
/// the two polls read.
async fn gzip_behind_a_listing(t: &mut Tailer, rotated: &Path, aside: &Path) -> [Vec<String>; 2] {
    std::fs::rename(rotated, aside).unwrap();
    let between = texts(&poll(t).await);
    gzip_into(aside, Path::new(&format!("{}.gz", rotated.display())));
    [between, texts(&poll(t).await)]
}

/// Lines long enough that every file has a full fingerprint.
fn numbered(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| cri(&format!("line {i:04} {}", "x".repeat(60))))
        .collect()
}

fn want(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("line {i:04} {}", "x".repeat(60)))
        .collect()
}

#[tokio::test]
async fn two_rotations_between_polls_lose_nothing() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));

    append(&log, numbered(10, 15).as_bytes());
    rotate(&log, "20240102-000001", &numbered(15, 30));
    rotate(&log, "20240102-000002", &numbered(30, 40));
    assert_eq!(
        poll_acked(&mut t).await,
        want(15 - 5, 40),
        "oldest file first"
    );
    assert!(
        poll(&mut t).await.is_empty(),
        "finished files are not read again"
    );
}

#[tokio::test]
async fn a_gz_of_a_finished_file_is_not_read_again_even_after_a_restart() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    poll_acked(&mut t).await;
    let rotated = rotate(&log, "20240102-000001", &numbered(10, 20));
    assert_eq!(poll_acked(&mut t).await, want(10, 20));

    gzip(&rotated);
    assert!(poll_acked(&mut t).await.is_empty());
    drop(t);
    let mut t = fx.tailer(Vec::new());
    assert!(poll_acked(&mut t).await.is_empty(), "nothing read twice");
    append(&log, numbered(20, 21).as_bytes());
    assert_eq!(poll_acked(&mut t).await, want(20, 21));
}

#[tokio::test]
async fn a_file_gzipped_while_it_is_still_read_is_finished_from_its_descriptor() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    poll_acked(&mut t).await;
    append(&log, numbered(10, 12).as_bytes());
    let rotated = rotate(&log, "20240102-000001", &numbered(12, 14));
    gzip(&rotated);
    assert_eq!(poll_acked(&mut t).await, want(10, 14));
    assert!(poll(&mut t).await.is_empty());
}

#[tokio::test]
async fn a_restart_resumes_a_rotated_file_inside_its_gz_then_reads_the_rest() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    drop(t);

    // While the agent is down: more lines, two rotations, and the older one gzipped.
    append(&log, numbered(10, 15).as_bytes());
    let first = rotate(&log, "20240102-000001", &numbered(15, 30));
    rotate(&log, "20240102-000002", &numbered(30, 40));
    gzip(&first);
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(10, 40));
    drop(t);
    let mut t = fx.tailer(Vec::new());
    assert!(poll(&mut t).await.is_empty(), "and nothing again");
}

#[tokio::test]
async fn unacknowledged_lines_are_read_again_after_a_rotation_and_restart() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    append(&log, numbered(10, 12).as_bytes());
    assert_eq!(
        texts(&poll(&mut t).await),
        want(10, 12),
        "sent, never acknowledged"
    );
    drop(t);
    rotate(&log, "20240102-000001", &numbered(12, 13));
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(10, 13));
}

#[tokio::test]
async fn copytruncate_that_regrew_past_the_offset_is_read_from_the_start() {
    let fx = Fixture::new();
    let var = fx.root.join("var");
    std::fs::create_dir_all(&var).unwrap();
    let app = var.join("app.log");
    append(&app, b"old one\n");
    let mut t = fx.tailer(vec![format!("{}/*.log", var.display())]);
    assert_eq!(poll_acked(&mut t).await, ["old one"]);

    // logrotate's copytruncate, then the application writes more than was there before
    // the tailer looks again.
    std::fs::copy(&app, var.join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, b"new first line\nnew second line\n");
    assert_eq!(
        poll_acked(&mut t).await,
        ["new first line", "new second line"]
    );
    drop(t);
    let mut t = fx.tailer(vec![format!("{}/*.log", var.display())]);
    assert!(
        poll(&mut t).await.is_empty(),
        "the checkpoint is of the new content"
    );
}

#[tokio::test]
async fn empty_files_and_a_last_line_without_newline_wait_until_completed_or_rotated() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, b"");
    let mut t = fx.tailer(Vec::new());
    assert!(poll(&mut t).await.is_empty(), "an empty file sends nothing");
    append(&log, format!("{TS} stdout F half").as_bytes());
    assert!(poll(&mut t).await.is_empty(), "no newline yet");
    append(&log, b" done\n");
    assert_eq!(poll_acked(&mut t).await, ["half done"]);

    append(&log, format!("{TS} stdout F cut off").as_bytes());
    assert!(poll(&mut t).await.is_empty());
    rotate(&log, "20240102-000001", "");
    assert_eq!(
        poll_acked(&mut t).await,
        ["cut off"],
        "the writer moved on: the line is final"
    );
    drop(t);
    let mut t = fx.tailer(Vec::new());
    assert!(poll(&mut t).await.is_empty());
}

#[tokio::test]
async fn a_deleted_pod_is_drained_then_forgotten() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 3).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 3));
    append(
        &log,
        format!("{}{TS} stdout F last words", numbered(3, 5)).as_bytes(),
    );
    std::fs::remove_dir_all(fx.pods.join("prod_web_uid-1")).unwrap();

    // The descriptor still reads the deleted file; its unterminated last line is final once
    // the file has been gone for the grace period.
    assert_eq!(poll_acked(&mut t).await, want(3, 5));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut rest = want(5, 5);
    rest.push("last words".into());
    assert_eq!(poll_acked(&mut t).await, rest);
    assert!(t.files.is_empty(), "the file is let go");
    assert!(poll_acked(&mut t).await.is_empty());
    let saved = std::fs::read_to_string(fx.state.join(POSITIONS_FILE)).unwrap();
    assert!(
        !saved.contains("uid-1"),
        "its checkpoint is forgotten: {saved}"
    );
}

#[tokio::test]
async fn a_10_mib_line_ships_in_numbered_pieces_of_at_most_the_bound() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    // A multi-byte character every 1000 bytes, so some cuts fall inside one.
    let body: String = (0..10 * 1024)
        .map(|i| format!("{:0998}é", i))
        .collect::<String>();
    append(
        &log,
        format!("{}{TS} stderr F {body}\n{}", cri("before"), cri("after")).as_bytes(),
    );
    let mut t = fx.tailer(Vec::new());
    let got = poll(&mut t).await;
    let entries: Vec<&model::LogEntry> = got
        .iter()
        .flat_map(|b| &b.streams)
        .filter(|s| s.labels.get("stream") == Some("stderr"))
        .flat_map(|s| &s.entries)
        .collect();
    assert!(entries.len() >= 40, "{} pieces", entries.len());
    let mut joined = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert!(e.line.len() <= DEFAULT_MAX_LINE_BYTES, "piece {i} too long");
        assert_eq!(e.ts_ns, TS_NS, "every piece has the line's time");
        let n = (i + 1).to_string();
        assert_eq!(e.metadata, [(SPLIT_METADATA.to_string(), n)]);
        joined.extend_from_slice(e.line.as_bytes());
    }
    assert!(
        joined == body.as_bytes(),
        "the pieces make up the line, no character cut"
    );
    let others: Vec<String> = lines(&got)
        .into_iter()
        .filter(|(l, _)| l.contains("stdout"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(others, ["before", "after"]);
    assert!(got
        .iter()
        .flat_map(|b| &b.streams)
        .flat_map(|s| &s.entries)
        .filter(|e| e.line == "before" || e.line == "after")
        .all(|e| e.metadata.is_empty()));
    assert_eq!(
        last_offset(&got),
        Some(std::fs::metadata(&log).unwrap().len())
    );
}

#[tokio::test]
async fn a_line_bound_below_the_minimum_is_refused() {
    let fx = Fixture::new();
    let mut cfg = TailConfig::new("node-1", &fx.state);
    cfg.max_line_bytes = 100;
    let err = cfg.build().unwrap_err();
    assert!(err.to_string().contains("max_line_bytes"), "{err}");
}

#[tokio::test]
async fn a_gz_of_a_file_finished_by_an_unacknowledged_run_is_not_read_again() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    drop(t);
    let rotated = rotate(&log, "20240102-000001", &numbered(10, 20));
    // A run that finishes the rotated file and reads the new one while the receiver is away:
    // its positions stay queued, never acknowledged, and it is killed.
    let mut t = fx.tailer(Vec::new());
    let got = poll(&mut t).await;
    assert_eq!(texts(&got), want(10, 20));
    let queued: Vec<Position> = got.iter().flat_map(|b| b.positions.clone()).collect();
    drop(t);

    let mut t = fx.tailer_resuming(queued);
    assert!(
        poll(&mut t).await.is_empty(),
        "the queued lines are not read again"
    );
    gzip(&rotated);
    assert!(
        poll(&mut t).await.is_empty(),
        "the .gz of the file finished in the queue is not read again"
    );
}

#[tokio::test]
async fn a_gz_of_a_queued_finished_file_is_not_read_again_when_a_listing_missed_both() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    drop(t);
    let rotated = rotate(&log, "20240102-000001", &numbered(10, 20));
    let mut t = fx.tailer(Vec::new());
    let queued: Vec<Position> = poll(&mut t)
        .await
        .iter()
        .flat_map(|b| b.positions.clone())
        .collect();
    drop(t);

    let mut t = fx.tailer_resuming(queued);
    assert!(poll(&mut t).await.is_empty());
    let [between, after] = gzip_behind_a_listing(&mut t, &rotated, &fx.root.join("aside")).await;
    assert!(between.is_empty());
    assert!(
        after.is_empty(),
        "the queued done position outlives one listing without its file: {after:?}"
    );
}

#[tokio::test]
async fn a_gz_of_a_file_finished_in_this_run_is_not_read_again_when_a_listing_missed_both() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    append(&log, numbered(10, 15).as_bytes());
    let rotated = rotate(&log, "20240102-000001", &numbered(15, 20));
    // Finished while the receiver is away: its last positions are not acknowledged yet.
    assert_eq!(texts(&poll(&mut t).await), want(10, 20));
    let [between, after] = gzip_behind_a_listing(&mut t, &rotated, &fx.root.join("aside")).await;
    assert!(between.is_empty());
    assert!(
        after.is_empty(),
        "the finished file is remembered across one listing without it: {after:?}"
    );
}

#[tokio::test]
async fn a_restart_resumes_a_live_file_after_its_queued_lines() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, numbered(0, 10).as_bytes());
    let mut t = fx.tailer(Vec::new());
    assert_eq!(poll_acked(&mut t).await, want(0, 10));
    // Read on; these positions reach the queue but no ack comes before the kill.
    append(&log, numbered(10, 20).as_bytes());
    let got = poll(&mut t).await;
    assert_eq!(texts(&got), want(10, 20));
    let queued: Vec<Position> = got.iter().flat_map(|b| b.positions.clone()).collect();
    drop(t);

    let mut t = fx.tailer_resuming(queued);
    assert!(
        poll(&mut t).await.is_empty(),
        "the queued lines are not read again"
    );
    append(&log, numbered(20, 21).as_bytes());
    assert_eq!(texts(&poll(&mut t).await), want(20, 21));
}

#[test]
fn a_rotation_between_the_walk_and_the_look_walks_again_and_lists_both_files() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, cri("old 1").as_bytes());
    let old = std::fs::metadata(&log).unwrap().ino();
    let mut rotated = None;
    // kubelet rotates right after the directory was read, before the files are looked at.
    let (targets, _) = rescan::list_files(&fx.pods, &[], "node-1", || {
        if rotated.is_none() {
            rotated = Some(rotate(&log, "20240102-000000", &cri("new 1")));
        }
    });
    let rotated = rotated.unwrap();
    let new = std::fs::metadata(&log).unwrap().ino();
    let found: Vec<(PathBuf, u64)> = targets
        .iter()
        .map(|(t, id, _)| (t.path.clone(), id.inode))
        .collect();
    assert_eq!(found, [(log, new), (rotated, old)]);
    // Each listed inode is the one looked at: nothing pairs a name with another file.
    assert!(targets
        .iter()
        .all(|(t, id, _)| t.listed_ino == Some(id.inode)));
}

#[test]
fn a_gzip_between_the_walk_and_the_look_walks_again_and_lists_the_gz() {
    let fx = Fixture::new();
    let log = fx.container_log("app");
    append(&log, cri("old 1").as_bytes());
    let rotated = rotate(&log, "20240102-000000", &cri("new 1"));
    let mut gz = None;
    let (targets, _) = rescan::list_files(&fx.pods, &[], "node-1", || {
        if gz.is_none() {
            gz = Some(gzip(&rotated));
        }
    });
    let paths: Vec<PathBuf> = targets.into_iter().map(|(t, _, _)| t.path).collect();
    assert_eq!(paths, [log, gz.unwrap()]);
}
