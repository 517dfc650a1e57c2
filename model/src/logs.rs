//! Log lines as they travel from the agent's tailer to the log store.

use crate::Labels;

/// One log line; `ts_ns` is nanoseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub ts_ns: i64,
    pub line: String,
    /// Loki's structured metadata: per-line key/value pairs that are not stream labels.
    pub metadata: Vec<(String, String)>,
}

/// The lines of one stream, identified by its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}
