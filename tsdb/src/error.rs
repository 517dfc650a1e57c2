//! The TSDB's errors: opening and replaying the store ([`Error`]) and decoding chunks
//! ([`ChunkError`]). Appends and queries report through `model`'s `AppendError` and
//! `StorageError`, which the HTTP API already maps to status codes.

use std::path::PathBuf;

/// Opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was written by a newer (or unknown) version of the on-disk format.
    #[error("{path}: format version {found} is not supported (this build reads version {supported}); see tsdb/FORMAT.md")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// Another process (or another open store in this one) holds the directory's lock.
    #[error(
        "data directory {dir} is locked: another Vigil server is using it (lock file {dir}/lock)"
    )]
    Locked { dir: PathBuf },
    /// A file is not one of ours at all.
    #[error("{path}: not a Vigil WAL segment (bad magic bytes)")]
    BadMagic { path: PathBuf },
    /// A block file fails its checks (checksum, structure, references); the block is moved
    /// aside rather than read.
    #[error("{path}: corrupt block file: {reason}")]
    CorruptBlock { path: PathBuf, reason: String },
    /// A WAL checkpoint or a head chunk file it refers to fails its checks; the store then
    /// replays the whole WAL instead.
    #[error("{path}: corrupt checkpoint: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// A chunk's bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk is truncated")]
    Truncated,
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
}
