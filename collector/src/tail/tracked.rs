//! One followed file: a read step, the turning of its raw lines into labelled entries
//! (format detection, joining, splitting of over-long lines), and the position a batch
//! carries.
//!
//! Lines longer than the bound (`--logs.max-line-size`) are shipped in pieces, each with the
//! structured metadata [`SPLIT_METADATA`] set to its number from 1. Structured metadata rather
//! than a stream label, so the pieces stay in the stream of the line (and in its order) and a
//! query finds them with `| split != ""`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use model::{Labels, LogEntry, LogStream};

use super::checkpoint::{Checkpoint, Position};
use super::cri;
use super::discover::{Format, Target};
use super::docker;
use super::fingerprint::{FileId, Fingerprint};
use super::follow::{Chunk, Follower, PathState, RawLine};
use super::join::{Joined, Joiner, Piece};
use crate::cadvisor::SharedPods;
use crate::ship::LogBatch;

/// The structured-metadata key on each piece of a line longer than the bound; its value is
/// the piece's number, from 1.
pub const SPLIT_METADATA: &str = "split";
/// The stream label naming the pod's application, from its `app.kubernetes.io/name` label, or
/// its `app` label without one (the labels Grafana Agent's and Promtail's Kubernetes examples
/// map to `app`).
pub const APP_LABEL: &str = "app";

/// How long a file whose writer's path names nothing is still read before it counts as
/// finished: the rename-to-reopen window of kubelet's rotation, and its rename back when the
/// reopen fails.
const GONE_GRACE: Duration = Duration::from_secs(2);

/// A file being followed and what its lines need to become entries.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub target: Target,
    pub follower: Follower,
    /// What identifies the file's content; refreshed while the file is shorter than a full
    /// fingerprint, and after a truncation.
    pub fp: Fingerprint,
    /// The checkpoint this file resumed from when it was another file's (a `.gz` resuming
    /// where its original was left): kept while this file exists.
    pub resumed_from: Option<FileId>,
    /// The labels of this file's streams: the target's, plus the pod's `app` once the node's
    /// pod list knows the pod (refreshed every poll: the list may arrive after the file).
    labels: Labels,
    joiner: Joiner,
    /// The longest line shipped whole; longer ones are split.
    max_line: usize,
    /// A container log's format, once a line showed it; `None` before and for plain files.
    framing: Option<Framing>,
    /// The CRI line the follower is cutting into buffer-sized pieces, if any.
    cut: Option<CutLine>,
    /// Pieces of an over-long line that did not parse, shipped so far.
    unparsed_pieces: u32,
    /// The position sent with the last batch, so an unchanged position is not re-sent.
    sent: Option<Position>,
    /// When the writer's path was first seen naming nothing, while this file is still read.
    gone_since: Option<Instant>,
    /// Check for copytruncate before the next read (once per poll).
    check_truncation: bool,
    /// When the tailer began following this file, in order: of two files with the same place
    /// in a container (an old file whose rename was not seen, and its successor), the one
    /// followed first is older and is read first.
    pub seq: u64,
}

/// The next [`Tracked::seq`].
static NEXT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The CRI line a cut began in: its continuation pieces belong to the same stream and time.
#[derive(Debug)]
struct CutLine {
    stream: String,
    ts_ns: i64,
    /// The line's own tag was `P`: it continues after its last cut piece.
    partial: bool,
}

/// The result of one read step on a file.
#[derive(Debug)]
pub(crate) struct Step {
    pub batch: LogBatch,
    /// More may be readable right away.
    pub more: bool,
    /// The writer moved on and the file is fully read: stop following it.
    pub finished: bool,
}

impl Tracked {
    pub fn new(target: Target, follower: Follower, fp: Fingerprint, max_line: usize) -> Self {
        // Where it starts is known (the checkpoint, or the start): nothing to send until it
        // moves.
        let id = follower.id();
        let sent = Some(Position {
            path: follower.path().to_path_buf(),
            dev: id.dev,
            inode: id.inode,
            offset: follower.offset(),
            fp,
            done: false,
        });
        Tracked {
            labels: target.labels.clone(),
            target,
            follower,
            fp,
            resumed_from: None,
            joiner: Joiner::new(max_line),
            max_line,
            framing: None,
            cut: None,
            unparsed_pieces: 0,
            sent,
            gone_since: None,
            check_truncation: false,
            seq: NEXT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Asks the next step to look for copytruncate first, and takes the pod's `app` label
    /// from the node's pod list when it has the pod.
    pub fn start_poll(&mut self, pods: Option<&SharedPods>) {
        self.check_truncation = true;
        let (Some(pods), Some(dir)) = (pods, &self.target.pod) else {
            return;
        };
        let index = pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let app = index
            .pod_of_log_dir(&dir.uid, &dir.namespace, &dir.name)
            .and_then(|p| {
                p.labels
                    .get("app.kubernetes.io/name")
                    .or_else(|| p.labels.get("app"))
            });
        if let Some(app) = app.filter(|a| self.labels.get(APP_LABEL) != Some(a.as_str())) {
            self.labels = self.target.labels.with(APP_LABEL, app);
        }
    }

    /// What this file would be as a checkpoint now, to recognise copies of it.
    pub fn as_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            path: self.follower.path().to_path_buf(),
            id: self.follower.id(),
            fp: self.fp,
            offset: self.follower.offset(),
            done: false,
        }
    }

    /// Reads one chunk and turns it into a batch. At the end of the data, checks whether the
    /// writer's path still names this file: when it names another (the writer reopened) or,
    /// for [`GONE_GRACE`], nothing, the rest of this file (a last unterminated line,
    /// unfinished partials) is flushed and the file is finished.
    pub fn step(&mut self) -> std::io::Result<Step> {
        let read_ns = now_ns();
        let mut truncated = false;
        if std::mem::take(&mut self.check_truncation) {
            truncated = self.follower.check_truncated(&self.fp)?;
        }
        let chunk = self.follower.read(self.max_line, false)?;
        if truncated || chunk.truncated {
            tracing::info!(path = %self.follower.path().display(), "file truncated, reading from the start");
            self.reset_lines();
            self.sent = None;
            if let Some(fp) = self.follower.fingerprint()? {
                self.fp = fp;
            }
        }
        let mut entries = Grouped::default();
        self.entries_of(&chunk, read_ns, &mut entries);
        let mut more = chunk.more;
        let state = if more {
            PathState::Same
        } else {
            self.follower.path_state()
        };
        let moved_on = match state {
            PathState::Same => {
                self.gone_since = None;
                false
            }
            // The runtime creates the new file when it reopens its log, so it writes no more
            // to this one.
            PathState::Replaced => true,
            // Between kubelet's rename and the runtime's reopen the runtime still writes to
            // this file, and a failed reopen renames it back: only a file gone for a while is
            // done.
            PathState::Gone => {
                let since = *self.gone_since.get_or_insert_with(Instant::now);
                since.elapsed() >= GONE_GRACE
            }
        };
        let mut finished = false;
        if moved_on {
            // The writer has moved on, so whatever it left is final: read it with its last
            // unterminated line, one chunk at a time, before letting go of the file.
            let rest = self.follower.read(self.max_line, true)?;
            self.entries_of(&rest, read_ns, &mut entries);
            more = rest.more;
            if !more {
                for j in self.joiner.drain() {
                    entries.push_joined(j);
                }
                self.cut = None;
                finished = true;
            }
        }
        let mut batch = LogBatch {
            streams: entries.into_streams(&self.labels),
            positions: Vec::new(),
        };
        self.push_position(&mut batch, finished)?;
        Ok(Step {
            batch,
            more,
            finished,
        })
    }

    fn reset_lines(&mut self) {
        self.joiner.reset();
        self.cut = None;
        self.unparsed_pieces = 0;
    }

    /// Adds this file's checkpointable position to `batch` when it moved, or when the file
    /// is finished (its last position marks it done), refreshing a short fingerprint first so
    /// the checkpoint identifies the file as well as it can.
    fn push_position(&mut self, batch: &mut LogBatch, last: bool) -> std::io::Result<()> {
        if !self.fp.is_full() {
            if let Some(fp) = self.follower.fingerprint()? {
                self.fp = fp;
            }
        }
        let id = self.follower.id();
        let pos = Position {
            path: self.follower.path().to_path_buf(),
            dev: id.dev,
            inode: id.inode,
            offset: self.joiner.holds_from().unwrap_or(self.follower.offset()),
            fp: self.fp,
            done: last,
        };
        if last || self.sent.as_ref().map(|s| s.offset) != Some(pos.offset) {
            self.sent = Some(pos.clone());
            batch.positions.push(pos);
        }
        Ok(())
    }

    /// Turns raw lines into labelled entries: container lines are parsed and joined (an
    /// unparseable one is kept whole, stamped with the read time); plain lines are stamped
    /// with the read time. Invalid UTF-8 is replaced, never dropped.
    fn entries_of(&mut self, chunk: &Chunk, read_ns: i64, out: &mut Grouped) {
        let mut joined = Vec::new();
        for raw in &chunk.lines {
            let text = utf8_text(chunk.bytes(raw));
            let parsed = match self.target.format {
                Format::Plain => false,
                Format::Container => self.join_container_line(&text, raw, &mut joined),
            };
            if parsed {
                for j in joined.drain(..) {
                    out.push_joined(j);
                }
            } else {
                let n = self.unparsed_pieces;
                let split = (raw.cut || n > 0).then_some(n + 1);
                self.unparsed_pieces = if raw.cut { n + 1 } else { 0 };
                out.push(None, entry(read_ns, text.into_owned(), split));
            }
        }
    }

    /// Parses a container log line in this file's format and feeds it to the joiner; `None`
    /// false when it does not parse. Until a line has shown the format, CRI is tried first and
    /// then docker json-file, the order kubelet's `getParseFunc` tries them. The pieces of a
    /// line the follower cut continue the CRI line they began in.
    fn join_container_line(&mut self, text: &str, raw: &RawLine, out: &mut Vec<Joined>) -> bool {
        if let Some(cut) = &self.cut {
            let piece = Piece {
                ts_ns: cut.ts_ns,
                stream: &cut.stream,
                partial: raw.cut || cut.partial,
                msg: text,
            };
            self.joiner.push_into(piece, raw.start, out);
            if !raw.cut {
                self.cut = None;
            }
            return true;
        }
        if self.unparsed_pieces > 0 {
            // The rest of an over-long line that did not parse: not a line of its own.
            return false;
        }
        if self.framing != Some(Framing::Docker) {
            if let Some(mut p) = cri::parse_line(text) {
                self.framing = Some(Framing::Cri);
                if raw.cut {
                    self.cut = Some(CutLine {
                        stream: p.stream.to_string(),
                        ts_ns: p.ts_ns,
                        partial: p.partial,
                    });
                    p.partial = true;
                }
                self.joiner.push_into(p, raw.start, out);
                return true;
            }
        }
        if self.framing != Some(Framing::Cri) {
            if let Some(d) = docker::parse_line(text) {
                self.framing = Some(Framing::Docker);
                self.joiner.push_into(d.piece(), raw.start, out);
                return true;
            }
        }
        false
    }
}

/// How a container log frames its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `<time> <stream> <P|F> <msg>` (containerd, CRI-O).
    Cri,
    /// `{"log":…,"stream":…,"time":…}` (docker's json-file).
    Docker,
}

fn entry(ts_ns: i64, line: String, split: Option<u32>) -> LogEntry {
    LogEntry {
        ts_ns,
        line,
        metadata: split
            .map(|n| vec![(SPLIT_METADATA.to_string(), n.to_string())])
            .unwrap_or_default(),
    }
}

/// A step's entries by stream (`None` for plain files, which have no `stream` label), each
/// stream's in file order. A file has at most a few streams, so they are found by a scan, and
/// its label set is built once per stream and batch rather than once per line.
#[derive(Default)]
struct Grouped(Vec<(Option<Cow<'static, str>>, Vec<LogEntry>)>);

impl Grouped {
    fn push(&mut self, stream: Option<Cow<'static, str>>, e: LogEntry) {
        match self.0.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, entries)) => entries.push(e),
            None => self.0.push((stream, vec![e])),
        }
    }

    fn push_joined(&mut self, j: Joined) {
        self.push(Some(j.stream), entry(j.ts_ns, j.text, j.split));
    }

    /// The streams, labelled: the file's labels plus `stream`, ordered by label set.
    fn into_streams(self, labels: &Labels) -> Vec<LogStream> {
        let mut streams: Vec<LogStream> = self
            .0
            .into_iter()
            .map(|(stream, entries)| LogStream {
                labels: match stream {
                    Some(s) => labels.with("stream", &s),
                    None => labels.clone(),
                },
                entries,
            })
            .collect();
        streams.sort_by(|a, b| a.labels.cmp(&b.labels));
        streams
    }
}

/// A line's bytes as text: borrowed when they are UTF-8 (checking is much cheaper than the
/// lossy conversion's scan), invalid sequences replaced otherwise.
fn utf8_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}
