//! The collector's error type: what can stop the agent from starting or make it fail.
//!
//! Trouble at run time (a server away, a file unreadable, a batch rejected) is not an error
//! here: components log it, retry or skip, and keep running.

use std::path::PathBuf;

/// Why the agent could not start or stopped abnormally.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A setting is out of range or malformed.
    #[error("invalid agent configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The HTTP client could not be built.
    #[error("building the http client")]
    HttpClient(#[source] reqwest::Error),
    /// The state directory (checkpoints) could not be created or read.
    #[error("state directory {path}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The agent's HTTP endpoint could not listen (address in use, no permission).
    #[error("listen on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A component's task panicked.
    #[error("agent component {component} failed")]
    Task {
        component: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}
