//! Writing a block: series in label order in, `<ULID>/` out, made durable under a temporary
//! name and renamed into place, so a crash leaves either the whole block or a `.tmp`
//! directory that the next open removes.

use super::chunks::ChunkWriter;
use super::index::{self, ChunkMeta};
use super::meta::{BlockMeta, BlockStats, Compaction, BLOCK_VERSION};
use crate::chunk::{self, SAMPLES_PER_CHUNK};
use crate::error::Error;
use model::{Labels, Sample};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Suffix of a block directory being written.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// What the new block is: its name, time range and lineage.
pub(crate) struct NewBlock {
    pub(crate) ulid: String,
    pub(crate) min_time: i64,
    /// Exclusive.
    pub(crate) max_time: i64,
    pub(crate) compaction: Compaction,
}

/// Writes `series` (sorted by labels, no repeats; samples ascending and inside the block's
/// range) as block `new.ulid` in `parent`. Returns `None`, writing nothing, when no series
/// has a sample.
pub(crate) fn write(
    parent: &Path,
    new: NewBlock,
    series: impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>>,
) -> Result<Option<BlockMeta>, Error> {
    let tmp = parent.join(format!("{}{TMP_SUFFIX}", new.ulid));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io("remove", &tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
    let result = write_into(&tmp, parent, new, series);
    if !matches!(result, Ok(Some(_))) {
        // Nothing worth keeping; an error removing it is not worth reporting over the
        // original error, and the next open removes `.tmp` directories anyway.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(
    tmp: &Path,
    parent: &Path,
    new: NewBlock,
    series: impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>>,
) -> Result<Option<BlockMeta>, Error> {
    let mut chunks = ChunkWriter::new(tmp)?;
    let mut entries: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    let mut stats = BlockStats::default();
    for item in series {
        let (labels, samples) = item?;
        if samples.is_empty() {
            continue;
        }
        let mut metas = Vec::with_capacity(samples.len().div_ceil(SAMPLES_PER_CHUNK));
        for part in samples.chunks(SAMPLES_PER_CHUNK) {
            let (Some(first), Some(last)) = (part.first(), part.last()) else {
                continue;
            };
            let reference = chunks.write(&chunk::encode(part))?;
            metas.push(ChunkMeta {
                min_t: first.t,
                max_t: last.t,
                reference,
            });
        }
        stats.num_samples += samples.len() as u64;
        stats.num_chunks += metas.len() as u64;
        stats.num_series += 1;
        entries.push((labels, metas));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    chunks.finish()?;
    index::write(&tmp.join("index"), &entries)?;
    let meta = BlockMeta {
        ulid: new.ulid,
        min_time: new.min_time,
        max_time: new.max_time,
        stats,
        compaction: new.compaction,
        version: BLOCK_VERSION,
    };
    meta.write(tmp)?;
    sync_dir(tmp)?;
    let dest = parent.join(&meta.ulid);
    std::fs::rename(tmp, &dest).map_err(Error::io("rename", &dest))?;
    sync_dir(parent)?;
    Ok(Some(meta))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync", dir))
}

/// Removes a block directory so that a crash midway cannot leave a half-deleted block that
/// looks whole: it is renamed out of the block namespace first (Prometheus does the same).
pub(crate) fn delete(dir: &Path) -> Result<(), Error> {
    let mut gone = PathBuf::from(dir);
    gone.set_extension("tmp-for-deletion");
    std::fs::rename(dir, &gone).map_err(Error::io("rename", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    std::fs::remove_dir_all(&gone).map_err(Error::io("remove", &gone))
}
