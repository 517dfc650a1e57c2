//! Immutable blocks: the head's older samples, cut into block-range windows and written as
//! `<ULID>/{meta.json, index, chunks/}` (`FORMAT.md` §Blocks).
//!
//! [`Block::open`] checks everything a query would trust (meta.json, every index section's
//! CRC, symbol and series references, every chunk frame's CRC, chunk references in range),
//! so a damaged block is found and moved aside at start-up rather than answering queries
//! with garbage. Reading goes through read-only mmaps (`mmap.rs`).

pub(crate) mod chunks;
mod index;
pub(crate) mod meta;
pub(crate) mod writer;

pub use meta::{BlockDesc, BlockMeta, BlockStats, Compaction};

use crate::chunk;
use crate::error::Error;
use crate::postings::SeriesRef;
use chunks::ChunkReader;
use index::{ChunkMeta, IndexReader};
use model::{Labels, Matcher, Sample, Series, StorageError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// An open block.
#[derive(Debug)]
pub(crate) struct Block {
    dir: PathBuf,
    pub(crate) meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
}

impl Block {
    /// Opens and checks the block in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Block, Error> {
        let meta = BlockMeta::read(dir)?;
        let chunks = ChunkReader::open(dir)?;
        let index = IndexReader::open(&dir.join("index"), &chunks)?;
        if index.len() as u64 != meta.stats.num_series {
            return Err(Error::CorruptBlock {
                path: dir.join("index"),
                reason: format!(
                    "{} series where meta.json says {}",
                    index.len(),
                    meta.stats.num_series
                ),
            });
        }
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk: index and chunk files (meta.json is noise).
    pub(crate) fn size(&self) -> u64 {
        self.index.size() + self.chunks.size()
    }

    /// Whether the block's range `[min_time, max_time)` meets `[mint, maxt]`.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && mint < self.meta.max_time
    }

    fn storage_error(&self, e: Error) -> StorageError {
        StorageError::Other(format!("block {}: {e}", self.meta.ulid))
    }

    fn samples(&self, metas: &[ChunkMeta], mint: i64, maxt: i64) -> Result<Vec<Sample>, Error> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for m in metas.iter().filter(|m| m.min_t <= maxt && mint <= m.max_t) {
            let bytes = self.chunks.chunk(m.reference)?;
            scratch.clear();
            chunk::decode_into(bytes, &mut scratch).map_err(|e| Error::CorruptBlock {
                path: self.dir.clone(),
                reason: format!("chunk {:#x}: {e}", m.reference),
            })?;
            out.extend(scratch.iter().filter(|s| mint <= s.t && s.t <= maxt));
        }
        Ok(out)
    }

    /// Whether a series with these chunks has a sample in `[mint, maxt]`: decided from the
    /// chunk bounds when a chunk lies inside the range, by decoding only the chunks that
    /// straddle its edges otherwise.
    fn has_sample_in(&self, metas: &[ChunkMeta], mint: i64, maxt: i64) -> Result<bool, Error> {
        let mut straddling = Vec::new();
        for m in metas.iter().filter(|m| m.min_t <= maxt && mint <= m.max_t) {
            if mint <= m.min_t || m.max_t <= maxt {
                // The chunk's first or last sample is inside the range.
                return Ok(true);
            }
            straddling.push(*m);
        }
        Ok(!self.samples(&straddling, mint, maxt)?.is_empty())
    }

    fn ids(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        self.index.postings.for_matchers(matchers)
    }

    /// The block's series matching `matchers` with their samples in `[mint, maxt]`, sorted
    /// by labels (series numbers are in label order).
    pub(crate) fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        let mut out = Vec::new();
        if !self.overlaps(mint, maxt) {
            return Ok(out);
        }
        for id in self.ids(matchers) {
            let (labels, metas) = self.index.series(id).map_err(|e| self.storage_error(e))?;
            let samples = self
                .samples(&metas, mint, maxt)
                .map_err(|e| self.storage_error(e))?;
            if !samples.is_empty() {
                out.push(Series { labels, samples });
            }
        }
        Ok(out)
    }

    /// The label sets of the matching series with a sample in `[mint, maxt]`, sorted.
    pub(crate) fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        let mut out = Vec::new();
        if !self.overlaps(mint, maxt) {
            return Ok(out);
        }
        for id in self.ids(matchers) {
            let (labels, metas) = self.index.series(id).map_err(|e| self.storage_error(e))?;
            if self
                .has_sample_in(&metas, mint, maxt)
                .map_err(|e| self.storage_error(e))?
            {
                out.push(labels);
            }
        }
        Ok(out)
    }

    /// Whether every sample of the block is inside `[mint, maxt]`, so that the postings
    /// alone answer label queries.
    fn inside(&self, mint: i64, maxt: i64) -> bool {
        mint <= self.meta.min_time && self.meta.max_time - 1 <= maxt
    }

    pub(crate) fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<BTreeSet<String>, StorageError> {
        if matchers.is_empty() && self.inside(mint, maxt) {
            return Ok(self.index.postings.names().map(str::to_string).collect());
        }
        let mut names = BTreeSet::new();
        for labels in self.series(mint, maxt, matchers)? {
            names.extend(labels.iter().map(|l| l.name.clone()));
        }
        Ok(names)
    }

    pub(crate) fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<BTreeSet<String>, StorageError> {
        if matchers.is_empty() && self.inside(mint, maxt) {
            return Ok(self
                .index
                .postings
                .values(name)
                .map(str::to_string)
                .collect());
        }
        let mut values = BTreeSet::new();
        for labels in self.series(mint, maxt, matchers)? {
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values)
    }

    /// Every series with all its samples, in label order, one at a time: the input of a
    /// compaction.
    pub(crate) fn all_series(
        &self,
    ) -> impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>> + '_ {
        (0..self.index.len() as SeriesRef).map(move |id| {
            let (labels, metas) = self.index.series(id)?;
            let samples = self.samples(&metas, i64::MIN, i64::MAX)?;
            Ok((labels, samples))
        })
    }
}

#[cfg(test)]
mod tests;
