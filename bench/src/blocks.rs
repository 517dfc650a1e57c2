//! Persisted blocks in a TSDB directory: every directory holding a `meta.json` in
//! Prometheus's shape (Vigil writes the same shape), with its size on disk and its sample
//! count, for the bytes-per-sample figure.

use anyhow::Context;
use std::path::Path;

/// The blocks found, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Blocks {
    pub count: usize,
    /// Bytes of every file under the block directories.
    pub bytes: u64,
    /// Sum of `stats.numSamples`.
    pub samples: u64,
}

impl Blocks {
    /// Bytes per sample, or `None` when there are no blocks (or no samples in them).
    pub fn bytes_per_sample(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.bytes as f64 / self.samples as f64)
    }
}

/// Sums the blocks under `dir` (searched recursively, so a store may keep its blocks in a
/// subdirectory). Directories still being written (`*.tmp*`, as Prometheus names them
/// until the final rename) and the WAL are skipped.
pub fn scan(dir: &Path) -> anyhow::Result<Blocks> {
    let mut out = Blocks::default();
    if dir.exists() {
        walk(dir, &mut out)?;
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Blocks) -> anyhow::Result<()> {
    let meta = dir.join("meta.json");
    if meta.is_file() {
        let text =
            std::fs::read_to_string(&meta).with_context(|| format!("read {}", meta.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parse {}", meta.display()))?;
        let samples = json["stats"]["numSamples"]
            .as_u64()
            .with_context(|| format!("{}: no stats.numSamples", meta.display()))?;
        out.count += 1;
        out.samples += samples;
        out.bytes += size(dir)?;
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && !name.contains(".tmp") && name != "wal" {
            walk(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Bytes of all regular files under `dir`.
fn size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_blocks_and_skips_unfinished_ones_and_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let block = dir.path().join("01HBLOCK");
        std::fs::create_dir_all(block.join("chunks")).unwrap();
        let meta = r#"{"ulid":"01HBLOCK","minTime":0,"maxTime":7200000,
            "stats":{"numSamples":1000,"numSeries":10,"numChunks":10},"version":1}"#;
        std::fs::write(block.join("meta.json"), meta).unwrap();
        std::fs::write(block.join("chunks/000001"), vec![0u8; 1500]).unwrap();
        std::fs::write(block.join("index"), vec![0u8; 500]).unwrap();
        let tmp = dir.path().join("01HOTHER.tmp-for-creation");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("meta.json"), meta).unwrap();
        std::fs::create_dir_all(dir.path().join("wal")).unwrap();
        let b = scan(dir.path()).unwrap();
        assert_eq!((b.count, b.samples), (1, 1000));
        assert_eq!(b.bytes, 1500 + 500 + meta.len() as u64);
        assert_eq!(b.bytes_per_sample(), Some(b.bytes as f64 / 1000.0));
        assert_eq!(
            scan(&dir.path().join("missing"))
                .unwrap()
                .bytes_per_sample(),
            None
        );
    }
}
