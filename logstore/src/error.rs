//! The log store's error type, and how each variant maps to an HTTP status.

use crate::logql::QueryError;
use std::path::PathBuf;

/// Everything the log store can fail with.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The query is not valid LogQL; the text is Loki's (`parse error at line 1, col 5: ...`).
    #[error("{0}")]
    Parse(String),
    /// Valid LogQL that this version cannot run yet (metric queries, parser stages, ...).
    #[error("{0}")]
    Unsupported(String),
    /// A query failed while evaluating: a pipeline error (`__error__` reaching a metric), a
    /// vector matching conflict, a limit. The caller's query is at fault: 400.
    #[error("{0}")]
    Eval(String),
    /// A push was refused before anything was written (for example a stream without labels).
    #[error("{0}")]
    Invalid(String),
    /// The index failed; the text is tantivy's.
    #[error("index error: {0}")]
    Index(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Another log store (in this or another process) holds the directory.
    #[error("log store directory {} is locked by another process", dir.display())]
    Locked { dir: PathBuf },
    /// A WAL segment this build cannot read (not ours, or a newer format).
    #[error("log WAL segment {}: {reason}", path.display())]
    Wal { path: PathBuf, reason: String },
}

impl Error {
    /// The HTTP status Loki would answer with: 400 for the caller's mistakes, 500 for ours.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Parse(_) | Error::Unsupported(_) | Error::Invalid(_) | Error::Eval(_) => 400,
            Error::Index(_) | Error::Io(_) | Error::Locked { .. } | Error::Wal { .. } => 500,
        }
    }
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Parse { .. } => Error::Parse(e.to_string()),
            QueryError::Unsupported { .. } => Error::Unsupported(e.to_string()),
        }
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Self {
        Error::Index(e.to_string())
    }
}

impl From<tantivy::directory::error::OpenDirectoryError> for Error {
    fn from(e: tantivy::directory::error::OpenDirectoryError) -> Self {
        Error::Index(e.to_string())
    }
}
