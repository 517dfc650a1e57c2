//! The rescan: matching the files discovery lists to what the tailer knows of them.
//!
//! Each file found is, in this order: a file followed (perhaps renamed by rotation: it is
//! followed on under its new name); a file finished or skipped before, unchanged since; a
//! copy of a file followed (kubelet gzipped a rotated file that is still being read from its
//! open descriptor); a copy of a finished file (skipped: its `.gz` is not read again); or a
//! file to follow, from the checkpoint it matches or from its start. Then what is gone is
//! forgotten: files that two listings in a row did not have (one can miss a rotated file that is
//! being replaced by its `.gz`), and checkpoints no such file can resume from.

use std::collections::HashSet;
use std::path::PathBuf;

use super::checkpoint::{best_match, Checkpoint};
use super::discover::{self, FileKind, Target};
use super::fingerprint::{FileId, Fingerprint, Head};
use super::follow::Follower;
use super::tracked::Tracked;
use super::Tailer;

/// A file found and not followed.
#[derive(Debug)]
pub(crate) struct Seen {
    /// Its size when it was looked at: a change means a second look.
    size: u64,
    /// The file or checkpoint it is a copy of, whose checkpoint must be kept while it exists.
    matched: Option<FileId>,
}

/// The order files are read in: per writer, rotated files (oldest first: kubelet's
/// timestamps sort as text) before the live one.
pub(crate) fn read_order(t: &Target) -> (PathBuf, bool, String) {
    let name = t.path.to_string_lossy();
    let name = name.strip_suffix(".gz").unwrap_or(&name).to_string();
    (t.live_path.clone(), t.kind == FileKind::Live, name)
}

/// Walks for the files to tail more than once only when names keep changing under the walk.
const LIST_ATTEMPTS: usize = 3;

/// Every file to tail with its identity and size, and the directories walked.
///
/// The walk reads each directory, then looks at each file by name. When kubelet rotates a
/// file in between, the name `0.log` read with the old file's inode leads to the new file,
/// and the old one's new name was not in the directory yet: the tailer would start the new
/// file before the rest of the old one, out of order. A look that finds another inode than
/// the directory entry had says a rename happened, so the walk is done again, and then
/// lists both. So does a listed file gone by the look (gzipped under another name, so the
/// walk may have missed the `.gz`). `after_walk` runs between the walk and the looks (tests
/// rotate there).
pub(crate) fn list_files(
    pods: &std::path::Path,
    globs: &[String],
    node: &str,
    mut after_walk: impl FnMut(),
) -> (Vec<(Target, FileId, u64)>, Vec<PathBuf>) {
    let mut attempt = 1;
    loop {
        let listing = discover::discover(pods, globs, node);
        after_walk();
        let mut replaced = false;
        let targets: Vec<(Target, FileId, u64)> = listing
            .targets
            .into_iter()
            .filter_map(|t| {
                let meta = match std::fs::metadata(&t.path) {
                    Ok(meta) => meta,
                    // Renamed away since (to its `.gz`, which the walk missed), or deleted.
                    Err(e) => {
                        replaced |=
                            t.listed_ino.is_some() && e.kind() == std::io::ErrorKind::NotFound;
                        return None;
                    }
                };
                let id = FileId::of(&meta);
                replaced |= t.listed_ino.is_some_and(|ino| ino != id.inode);
                Some((t, id, meta.len()))
            })
            .collect();
        if !replaced || attempt == LIST_ATTEMPTS {
            return (targets, listing.dirs);
        }
        tracing::debug!(
            attempt,
            "a log file was replaced during the walk; walking again"
        );
        attempt += 1;
    }
}

impl Tailer {
    /// Starts following files that appeared (see the module docs) and forgets what is gone.
    pub(crate) async fn rescan(&mut self) {
        let (pods, globs, node) = (
            self.cfg.pods_path.clone(),
            self.cfg.globs.clone(),
            self.cfg.node.clone(),
        );
        let (targets, dirs) =
            tokio::task::spawn_blocking(move || list_files(&pods, &globs, &node, || {}))
                .await
                .unwrap_or_default();
        self.watch_dirs = dirs;

        let mut present = HashSet::new();
        let mut listed_dirs = HashSet::new();
        for (target, id, size) in targets {
            present.insert(id);
            if let Some(dir) = target.path.parent() {
                listed_dirs.insert(dir.to_path_buf());
            }
            if let Some(t) = self.files.get_mut(&id) {
                if t.follower.path() != target.path {
                    tracing::debug!(from = %t.follower.path().display(), to = %target.path.display(), "followed file renamed");
                    t.follower.renamed(&target.path);
                    t.target.path = target.path;
                    t.target.kind = target.kind;
                }
                continue;
            }
            let unchanged = match (self.finished.get(&id), self.seen.get(&id)) {
                (Some((_, finished_size)), _) => *finished_size == Some(size),
                (None, Some(seen)) => seen.size == size,
                (None, None) => false,
            };
            if !unchanged {
                self.consider(target, id, size);
            }
        }

        // A file is gone once two listings in a row missed it. One listing can miss a file
        // that is only being replaced: it read the directory before kubelet renamed the
        // `.gz` into place and looked at the rotated file after kubelet removed it. Forgetting
        // the rotated file's checkpoint then would have its `.gz`, listed next time, read
        // again from the start. The next listing reads the directory after that look, so it
        // has the `.gz`.
        let listed = present.clone();
        present.extend(std::mem::replace(&mut self.listed_before, listed));
        self.seen.retain(|id, _| present.contains(id));
        self.finished.retain(|id, _| present.contains(id));
        let mut keep: HashSet<FileId> = present;
        keep.extend(
            self.files
                .values()
                .flat_map(|t| [Some(t.follower.id()), t.resumed_from])
                .flatten(),
        );
        keep.extend(self.seen.values().filter_map(|s| s.matched));
        // A checkpoint is kept while a file that can resume from it exists. Its directory gone
        // (the pod was deleted), nothing can; a directory that exists but listed no file at
        // all (unreadable for a moment) keeps its checkpoints rather than re-reading later.
        self.checkpoints.retain(|c| {
            keep.contains(&c.id)
                || c.path
                    .parent()
                    .is_some_and(|d| d.is_dir() && !listed_dirs.contains(d))
        });
    }

    /// Decides what to do with a file not followed and not looked at in its current size.
    fn consider(&mut self, target: Target, id: FileId, size: u64) {
        let gz = target.kind == FileKind::Gzip;
        let head = match Head::read(&target.path, gz) {
            Ok(h) => h,
            Err(error) => {
                tracing::debug!(path = %target.path.display(), %error, "cannot read log file yet");
                return;
            }
        };
        let path = target.path.as_path();
        if let Some(original) = self
            .files
            .values()
            .find(|t| t.as_checkpoint().matches(path, id, &head))
        {
            // Followed through its open descriptor, which reads what the copy holds.
            let matched = Some(original.follower.id());
            self.seen.insert(id, Seen { size, matched });
            return;
        }
        let finished = self.finished.values().map(|(c, _)| c);
        let resume = best_match(finished.chain(self.checkpoints.iter()), path, id, &head).cloned();
        // A finished file comes back as its `.gz`, or, after a restart, still rotated and
        // unchanged: either way there is nothing left to read. (A finished file that is live
        // again, renamed back by a failed reopen, is followed on from its checkpoint.)
        let unchanged_rotated =
            |c: &&Checkpoint| target.kind == FileKind::Rotated && c.offset == size;
        if let Some(c) = resume
            .as_ref()
            .filter(|c| c.done && (gz || unchanged_rotated(c)))
        {
            tracing::debug!(path = %path.display(), "already read");
            let matched = Some(c.id);
            self.seen.insert(id, Seen { size, matched });
            return;
        }
        let live = (!gz).then_some(target.live_path.as_path());
        match Follower::open(path, live, gz, resume.as_ref()) {
            // The name was taken by another file since it was looked at (rotation): following
            // that one now could read it before the file rotated away; the next rescan, which
            // lists both, puts them in order.
            Ok(follower) if follower.id() != id => {
                tracing::debug!(path = %path.display(), "log file replaced since it was listed");
            }
            Ok(follower) => {
                tracing::info!(path = %path.display(), offset = follower.offset(), "following log file");
                let mut t = Tracked::new(
                    target,
                    follower,
                    Fingerprint::of(&head.bytes),
                    self.cfg.max_line_bytes,
                );
                t.resumed_from = resume.map(|c| c.id).filter(|c| *c != id);
                self.files.insert(t.follower.id(), t);
            }
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "cannot open log file yet");
            }
        }
    }
}
