//! A block's `meta.json`, in Prometheus's shape, and the ULIDs that name blocks.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The block format version this build writes and reads (`FORMAT.md` §Blocks); `meta.json`
/// carries it, and the index and chunk files carry it in their headers.
pub(crate) const BLOCK_VERSION: u32 = 1;

/// Largest `meta.json` read: a real one is a few hundred bytes plus 27 per source block.
const MAX_META_BYTES: u64 = 16 << 20;

/// What `meta.json` says about a block. Times are milliseconds; `max_time` is exclusive, as
/// Prometheus's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

/// How the block came to be: level 1 is cut from the head; a compaction of level-`n` blocks
/// is level `n + 1`, listing the level-1 blocks it holds (`sources`) and the blocks it
/// replaced (`parents`), which is how a restart after a crash mid-compaction finds the
/// parents to delete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDesc {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
}

impl BlockMeta {
    /// Reads and checks `<dir>/meta.json`: it parses, its version is ours, its ULID is the
    /// directory's name, and its time range is not empty.
    pub(crate) fn read(dir: &Path) -> Result<BlockMeta, Error> {
        let path = dir.join("meta.json");
        let corrupt = |reason: String| Error::CorruptBlock {
            path: path.clone(),
            reason,
        };
        let len = std::fs::metadata(&path)
            .map_err(Error::io("stat", &path))?
            .len();
        if len > MAX_META_BYTES {
            return Err(corrupt(format!("{len} bytes is too large for a meta.json")));
        }
        let text = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let meta: BlockMeta =
            serde_json::from_slice(&text).map_err(|e| corrupt(format!("does not parse: {e}")))?;
        if meta.version != BLOCK_VERSION {
            return Err(Error::UnsupportedVersion {
                path,
                found: meta.version,
                supported: BLOCK_VERSION,
            });
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if meta.ulid != name {
            return Err(corrupt(format!(
                "ulid {} does not match the directory name",
                meta.ulid
            )));
        }
        if meta.min_time >= meta.max_time {
            return Err(corrupt(format!(
                "empty time range [{}, {})",
                meta.min_time, meta.max_time
            )));
        }
        Ok(meta)
    }

    /// Writes `<dir>/meta.json` and fsyncs it.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join("meta.json");
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| Error::Io {
            op: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push(b'\n');
        std::fs::write(&path, &text).map_err(Error::io("write", &path))?;
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("sync", &path))
    }

    pub(crate) fn desc(&self) -> BlockDesc {
        BlockDesc {
            ulid: self.ulid.clone(),
            min_time: self.min_time,
            max_time: self.max_time,
        }
    }
}

/// Crockford's base32 alphabet, which ULIDs are written in.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID: 48 bits of milliseconds since the epoch, then 80 random bits, as 26
/// characters. Block names sort by creation time, as Prometheus's do.
pub(crate) fn new_ulid() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ulid_from(ms, fastrand::u128(..))
}

fn ulid_from(ms: u64, random: u128) -> String {
    let value: u128 = (u128::from(ms & ((1 << 48) - 1)) << 80) | (random & ((1 << 80) - 1));
    // 26 characters of 5 bits is 130 bits; the first character carries the top 3 bits.
    (0..26)
        .map(|i| {
            let shift = 5 * (25 - i);
            char::from(CROCKFORD[((value >> shift) & 0x1f) as usize])
        })
        .collect()
}

/// Whether `name` looks like a ULID, so other directories in the data directory are left
/// alone.
pub(crate) fn is_ulid(name: &str) -> bool {
    name.len() == 26 && name.bytes().all(|b| CROCKFORD.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_crockford_and_sort_by_time() {
        assert_eq!(ulid_from(0, 0), "00000000000000000000000000");
        // The ULID spec's example time prefix: 1469918176385 ms is "01ARYZ6S41".
        assert!(ulid_from(1_469_918_176_385, 0).starts_with("01ARYZ6S41"));
        let (a, b) = (ulid_from(1000, u128::MAX), ulid_from(1001, 0));
        assert!(a < b && is_ulid(&a) && is_ulid(&new_ulid()));
        assert!(!is_ulid("wal") && !is_ulid("01ARYZ6S41TSV4RRFFQ69G5FA!"));
    }

    #[test]
    fn meta_json_has_prometheus_field_names_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ulid = new_ulid();
        let block = dir.path().join(&ulid);
        std::fs::create_dir(&block).unwrap();
        let meta = BlockMeta {
            ulid: ulid.clone(),
            min_time: 0,
            max_time: 7_200_000,
            stats: BlockStats {
                num_samples: 10,
                num_series: 2,
                num_chunks: 2,
            },
            compaction: Compaction {
                level: 1,
                sources: vec![ulid.clone()],
                parents: Vec::new(),
            },
            version: BLOCK_VERSION,
        };
        meta.write(&block).unwrap();
        let text = std::fs::read_to_string(block.join("meta.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["maxTime"], 7_200_000);
        assert_eq!(json["stats"]["numSeries"], 2);
        assert_eq!(json["compaction"]["sources"][0], ulid.as_str());
        assert_eq!(BlockMeta::read(&block).unwrap(), meta);

        std::fs::write(block.join("meta.json"), &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            BlockMeta::read(&block),
            Err(Error::CorruptBlock { .. })
        ));
    }
}
