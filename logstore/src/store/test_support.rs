//! Helpers the store's test modules share.

use super::*;
use model::LogEntry;

/// Options whose background commit never fires during a test, so the tests decide when
/// entries reach tantivy.
pub(super) fn manual() -> LogStoreOptions {
    LogStoreOptions {
        commit_interval: Duration::from_secs(3600),
        ..LogStoreOptions::default()
    }
}

/// Pushes `entries` (timestamp, line) as one stream `{app="<app>"}`.
pub(super) fn push(store: &LogStore, app: &str, entries: &[(i64, &str)]) -> PushOutcome {
    store
        .push(&[LogStream {
            labels: Labels::from_pairs([("app", app)]),
            entries: entries
                .iter()
                .map(|(ts, line)| LogEntry {
                    ts_ns: *ts,
                    line: line.to_string(),
                    metadata: vec![],
                })
                .collect(),
        }])
        .unwrap()
}
