//! The engine's error type. Each variant is one class of failure that the HTTP layer maps to
//! one Prometheus `errorType`, so the variant is chosen by *who is at fault*, not by which
//! module noticed.

use model::StorageError;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text or a query parameter is malformed (Prometheus `bad_data`, HTTP 400).
    #[error("{0}")]
    Parse(String),
    /// The query is well-formed but cannot be executed: a type error found at evaluation,
    /// many-to-many matching, too many samples, or a feature this engine does not have yet
    /// (Prometheus `execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (Prometheus `timeout`, HTTP 503).
    #[error("{0}")]
    Timeout(String),
    /// Whoever asked for the query went away (Prometheus `canceled`, HTTP 499).
    #[error("{0}")]
    Canceled(String),
    /// The store failed to read (Prometheus `internal`, HTTP 500).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Error {
    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        Error::Execution(msg.into())
    }

    /// A feature that parses but that this engine does not evaluate yet. A clear refusal is
    /// better than an answer that silently ignores part of the query.
    pub(crate) fn unsupported(what: impl std::fmt::Display) -> Self {
        Error::Execution(format!("not supported by this engine yet: {what}"))
    }
}

/// Prometheus's wording, kept verbatim because clients and alert runbooks match on it.
pub(crate) const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// Prometheus's wording for a query whose client went away.
pub(crate) const CANCELED: &str = "query was canceled in query execution";

/// Prometheus's wording for a query that ran past `--query.timeout`.
pub(crate) const TIMEOUT: &str = "query timed out in query execution";
