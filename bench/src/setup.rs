//! What every benchmark starts with: the flags naming the binaries and the data directory,
//! and the two servers started side by side on fresh directories.

use crate::server::{Kind, Server, PROMETHEUS};
use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The vigil binary to run. Default: target/release/vigil of this workspace (or of
    /// $CARGO_TARGET_DIR); build it first with `cargo build --release`.
    #[arg(long)]
    pub vigil: Option<PathBuf>,

    /// The Prometheus binary to compare with (2.42 from Debian's `prometheus` package).
    #[arg(long, default_value = PROMETHEUS)]
    pub prometheus: PathBuf,

    /// Directory under which the servers' data directories are created (and removed after
    /// the run).
    #[arg(long = "work-dir", default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,

    /// Seed of the data generator.
    #[arg(long, default_value_t = crate::gen::DEFAULT_SEED)]
    pub seed: u64,

    /// Remote-write requests in flight per server.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,

    /// About this many samples per remote-write request.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,

    /// Scrapes per remote-write window: each request carries this many consecutive samples
    /// of each of its series.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
}

/// Both servers, on data directories that are removed when this is dropped (after the
/// servers, which are declared first and so dropped first).
#[derive(Debug)]
pub struct Pair {
    pub vigil: Server,
    pub prometheus: Server,
    _root: tempfile::TempDir,
}

impl Common {
    pub fn vigil_bin(&self) -> anyhow::Result<PathBuf> {
        vigil_bin(self.vigil.as_deref())
    }

    pub fn ingest_options(&self) -> crate::ingest::Options {
        crate::ingest::Options {
            window: self.window,
            batch: self.batch,
            concurrency: self.concurrency,
        }
    }

    /// Starts Vigil and Prometheus, each ready, on fresh directories under --work-dir.
    pub async fn start_pair(&self) -> anyhow::Result<Pair> {
        let vigil_bin = self.vigil_bin()?;
        if !self.prometheus.is_file() {
            bail!(
                "{} not found: install Debian's `prometheus` package or pass --prometheus",
                self.prometheus.display()
            );
        }
        let root = tempfile::Builder::new()
            .prefix("vigil-bench-")
            .tempdir_in(&self.work_dir)
            .with_context(|| format!("temp dir in {}", self.work_dir.display()))?;
        eprintln!("data under {}", root.path().display());
        let vigil = Server::start(Kind::Vigil, &vigil_bin, &root.path().join("vigil")).await?;
        let prometheus = Server::start(
            Kind::Prometheus,
            &self.prometheus,
            &root.path().join("prometheus"),
        )
        .await?;
        Ok(Pair {
            vigil,
            prometheus,
            _root: root,
        })
    }
}

/// The vigil binary: `explicit` (a `--vigil` flag) if given, else target/release/vigil of
/// this workspace (or of $CARGO_TARGET_DIR), which must exist.
pub fn vigil_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/vigil");
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release` or pass --vigil",
            bin.display()
        );
    }
    Ok(bin)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
