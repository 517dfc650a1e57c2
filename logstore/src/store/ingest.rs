//! Indexing accepted entries into their partitions, with duplicates suppressed: the second
//! half of a live push (after its WAL fsync) and the whole of WAL replay.

use crate::dedup::{Candidate, StreamHash};
use crate::document::{EntryDoc, StreamDoc};
use crate::partition::Partitions;
use crate::pending::PendingEntry;
use crate::schema::Fields;
use crate::store::PushOutcome;
use crate::Error;
use model::{Labels, LogEntry, LogStream};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Replay commits once this many line bytes are pending, so a long WAL never holds all of
/// its entries in writer memory and pending sets at once.
const REPLAY_COMMIT_BYTES: usize = 256 << 20;

/// Adds the entries of `streams` to the partitions their timestamps fall in, skipping every
/// entry identical (stream, timestamp, line) to one stored, pending, or earlier in the same
/// push. Until the partitions' next commit, queries find the entries among the pending ones. When `stored` is given,
/// every entry added is appended to it with its stream's labels (for live tails).
pub(super) fn index<'a>(
    parts: &mut Partitions,
    fields: &Fields,
    streams: &'a [LogStream],
    mut stored_out: Option<&mut Vec<(&'a Labels, &'a LogEntry)>>,
) -> Result<PushOutcome, Error> {
    struct Prepared<'a> {
        labels: &'a Labels,
        /// The same labels, shared by the stream's pending entries.
        shared: Arc<Labels>,
        /// What the stream's documents share.
        doc: Arc<StreamDoc>,
        hash: StreamHash,
    }
    let prepared: Vec<Prepared<'_>> = streams
        .iter()
        .map(|s| {
            let doc = StreamDoc::new(&s.labels);
            Prepared {
                labels: &s.labels,
                shared: Arc::new(s.labels.clone()),
                hash: StreamHash::new(&doc.canonical),
                doc: Arc::new(doc),
            }
        })
        .collect();
    // Entries grouped by the partition they belong in, so each partition is searched once.
    let mut by_partition: BTreeMap<i64, Vec<(usize, &'a LogEntry, u64)>> = BTreeMap::new();
    for (i, s) in streams.iter().enumerate() {
        for entry in &s.entries {
            let hash = prepared[i].hash.entry(entry.ts_ns, &entry.line);
            by_partition
                .entry(parts.route(entry.ts_ns)?)
                .or_default()
                .push((i, entry, hash));
        }
    }
    let mut outcome = PushOutcome::default();
    // Which of the push's streams had an entry stored.
    let mut receiving = vec![false; streams.len()];
    for (start, entries) in by_partition {
        let Some(partition) = parts.get_mut(start) else {
            return Err(Error::Index(format!("partition {start} vanished")));
        };
        let candidates: Vec<Candidate<'_>> = entries
            .iter()
            .map(|(i, e, hash)| Candidate {
                hash: *hash,
                stream: &prepared[*i].doc.canonical,
                ts_ns: e.ts_ns,
                line: &e.line,
            })
            .collect();
        let stored = partition.committed(fields, &candidates)?;
        // Documents go to the writer after the loop, together; the pending entries added in
        // the loop are the same entries in the same order, and are cut back to what the writer
        // took if it fails, so that a retry is not taken for a duplicate of a lost entry.
        let mut docs = Vec::with_capacity(entries.len());
        let mut failed = None;
        for (((i, entry, hash), c), stored) in entries.iter().zip(&candidates).zip(stored) {
            // `pending` also holds the entries of this push added a moment ago.
            if stored || partition.pending.contains(c) {
                outcome.duplicates += 1;
                continue;
            }
            let p = &prepared[*i];
            // One copy of the line, shared by the document and the pending entry.
            let line: Arc<str> = entry.line.as_str().into();
            match EntryDoc::new(*fields, p.doc.clone(), entry, line.clone(), *hash) {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            partition.pending.insert(
                *hash,
                PendingEntry {
                    stream: p.doc.canonical.clone(),
                    labels: p.shared.clone(),
                    ts_ns: entry.ts_ns,
                    line,
                    metadata: entry.metadata.clone(),
                },
            );
            receiving[*i] = true;
            if let Some(out) = stored_out.as_deref_mut() {
                out.push((p.labels, entry));
            }
            outcome.entries += 1;
        }
        if let Err((sent, e)) = partition.add(docs) {
            partition.pending.truncate_open(sent);
            failed.get_or_insert(e);
        }
        partition.pending.seal();
        if let Some(e) = failed {
            return Err(e);
        }
    }
    // Streams of one push may repeat labels: count distinct label sets.
    let received: HashSet<&Labels> = streams
        .iter()
        .zip(&receiving)
        .filter(|(_, r)| **r)
        .map(|(s, _)| &s.labels)
        .collect();
    outcome.streams = received.len();
    Ok(outcome)
}

/// WAL replay's running totals.
#[derive(Debug, Default)]
pub(super) struct Replay {
    pub entries: usize,
    pub duplicates: usize,
    pending_bytes: usize,
}

impl Replay {
    /// Indexes one WAL record; entries already committed before the crash are duplicates.
    pub fn record(
        &mut self,
        parts: &mut Partitions,
        fields: &Fields,
        streams: &[LogStream],
    ) -> Result<(), Error> {
        let outcome = index(parts, fields, streams, None)?;
        self.entries += outcome.entries;
        self.duplicates += outcome.duplicates;
        self.pending_bytes += streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.len())
            .sum::<usize>();
        if self.pending_bytes > REPLAY_COMMIT_BYTES {
            parts.commit()?;
            self.pending_bytes = 0;
        }
        Ok(())
    }
}
