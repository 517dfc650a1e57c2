//! Read-only memory maps of block files: the one place in `tsdb` that uses `unsafe`.
//!
//! Blocks are read through mmap rather than `pread` because a query touches a few chunks
//! scattered over a file that can be gigabytes long: the page cache serves them without a
//! copy or a system call per chunk, and pages the kernel evicts cost nothing to keep mapped.

use std::fs::File;
use std::path::Path;

/// A file mapped read-only for the life of the value.
#[derive(Debug)]
pub(crate) struct Mmap {
    /// `None` for an empty file, which cannot be mapped.
    map: Option<memmap2::Mmap>,
}

impl Mmap {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> std::io::Result<Mmap> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Mmap { map: None });
        }
        // SAFETY: memmap2 is unsafe because another process could truncate or rewrite the
        // file while it is mapped, which would make the slice change under us (or fault).
        // Block files are written under a temporary directory name, fsync'd, and only then
        // renamed into place; after that nothing in Vigil opens them for writing again, and
        // the data directory is locked (`lock.rs`) against a second server. Deletion only
        // unlinks the files, which leaves existing mappings intact. The map is read-only.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mmap { map: Some(map) })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}
