//! Following one file by identity (device, inode) rather than by path: reading complete
//! lines from an offset, noticing truncation (the file shrank below the offset, or its first
//! bytes changed: copytruncate), and noticing when the path its writer appends to now names
//! another file (rotation by rename-and-create) or nothing (deletion).
//!
//! A gzipped rotated file is read through a streaming decoder; its offsets count
//! decompressed bytes, which are the bytes of the file it was made from, so a checkpoint taken
//! on the uncompressed file resumes inside the `.gz`.
//!
//! The reads are synchronous `std::fs` calls; the tailer runs them on the blocking pool.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::checkpoint::Checkpoint;
use super::fingerprint::{self, FileId, Fingerprint};

/// One line read from the file, without its `\n`: where its bytes lie in its [`Chunk`]'s
/// buffer. Lines are not copied out of the buffer one by one; the copy that becomes the log
/// entry's text is the only one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawLine {
    /// The offset of the line's first byte in the file.
    pub start: u64,
    /// The line's bytes in the chunk's buffer.
    pub span: std::ops::Range<usize>,
    /// The line was longer than the read buffer and was cut: it continues in the next one.
    pub cut: bool,
}

/// What one read step found.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// The bytes read; [`RawLine::span`] points into them.
    pub buf: Vec<u8>,
    pub lines: Vec<RawLine>,
    /// The file had shrunk below the offset and was read again from the start.
    pub truncated: bool,
    /// The read filled its buffer: there may be more to read right away.
    pub more: bool,
}

impl Chunk {
    /// The bytes of one of this chunk's lines.
    pub fn bytes(&self, line: &RawLine) -> &[u8] {
        &self.buf[line.span.clone()]
    }
}

/// What the path the writer appends to names now, compared with the file being followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathState {
    /// This file: the writer may still append.
    Same,
    /// Another file (or, for a `.gz`, none is expected): the writer has moved on.
    Replaced,
    /// Nothing: deleted, or between kubelet's rename and the runtime's reopen.
    Gone,
}

/// Where the bytes come from.
#[derive(Debug)]
enum Source {
    File(File),
    Gz {
        decoder: Box<MultiGzDecoder<File>>,
        /// Decompressed bytes past the offset, not yet returned as lines.
        carry: Vec<u8>,
        /// Decompressed bytes still to be skipped to reach the resumed offset.
        skip: u64,
        eof: bool,
    },
}

/// An open file and how far its complete lines have been read.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    /// The writer's path; `None` for a gzipped file, which nobody writes.
    live_path: Option<PathBuf>,
    source: Source,
    id: FileId,
    offset: u64,
}

impl Follower {
    /// Opens `path` at `resume`'s offset when given (the caller matched the checkpoint to
    /// this file), else from the start. An uncompressed file shorter than the offset was
    /// truncated since and is read from the start.
    pub fn open(
        path: &Path,
        live_path: Option<&Path>,
        gz: bool,
        resume: Option<&Checkpoint>,
    ) -> std::io::Result<Follower> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        let wanted = resume.map_or(0, |c| c.offset);
        let (source, offset) = if gz {
            let source = Source::Gz {
                decoder: Box::new(MultiGzDecoder::new(file)),
                carry: Vec::new(),
                skip: wanted,
                eof: false,
            };
            (source, wanted)
        } else {
            let offset = if wanted <= meta.len() { wanted } else { 0 };
            (Source::File(file), offset)
        };
        Ok(Follower {
            path: path.to_path_buf(),
            live_path: live_path.map(Path::to_path_buf),
            source,
            id,
            offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file was found under another name (rotation renamed it).
    pub fn renamed(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    /// The offset just past the last complete line read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The fingerprint of the file's first bytes as they are now; `None` for a `.gz`,
    /// whose fingerprint is taken once when it is found.
    pub fn fingerprint(&self) -> std::io::Result<Option<Fingerprint>> {
        match &self.source {
            Source::File(f) => Ok(Some(Fingerprint::of(&fingerprint::read_head(f)?))),
            Source::Gz { .. } => Ok(None),
        }
    }

    /// Detects copytruncate: the file shrank below the offset, or its first bytes are no
    /// longer the ones `known` hashed (it was truncated and has grown past the offset again
    /// since the last look). Then reading restarts from the start; true when it does.
    pub fn check_truncated(&mut self, known: &Fingerprint) -> std::io::Result<bool> {
        let Source::File(f) = &self.source else {
            return Ok(false);
        };
        let shrank = f.metadata()?.len() < self.offset;
        let rewritten = !known.is_prefix_of(&fingerprint::read_head(f)?);
        let truncated = self.offset > 0 && (shrank || rewritten);
        if truncated {
            self.offset = 0;
        }
        Ok(truncated)
    }

    /// Reads up to `max` bytes of complete lines from the offset. A trailing line without
    /// its `\n` is left for a later read, unless it fills the whole buffer (then it is cut)
    /// or `final_read` says the file will not grow again (then it is returned as is). A `.gz`
    /// is complete, so its reads are always final.
    pub fn read(&mut self, max: usize, final_read: bool) -> std::io::Result<Chunk> {
        let mut chunk = Chunk::default();
        let (buf, final_read) = match &mut self.source {
            Source::File(file) => {
                let len = file.metadata()?.len();
                if len < self.offset {
                    chunk.truncated = true;
                    self.offset = 0;
                }
                file.seek(SeekFrom::Start(self.offset))?;
                let mut buf =
                    Vec::with_capacity(max.min(usize::try_from(len - self.offset).unwrap_or(max)));
                file.by_ref().take(max as u64).read_to_end(&mut buf)?;
                chunk.more = buf.len() == max;
                (buf, final_read)
            }
            Source::Gz {
                decoder,
                carry,
                skip,
                eof,
            } => {
                if *skip > 0 {
                    let skipped =
                        std::io::copy(&mut decoder.by_ref().take(*skip), &mut std::io::sink())?;
                    if skipped < *skip {
                        // The checkpoint lies past the end: everything was read before.
                        self.offset -= *skip - skipped;
                        *eof = true;
                    }
                    *skip = 0;
                }
                if !*eof && carry.len() < max {
                    let want = (max - carry.len()) as u64;
                    let got = decoder.by_ref().take(want).read_to_end(carry)?;
                    *eof = (got as u64) < want;
                }
                chunk.more = carry.len() >= max;
                let take = carry.len().min(max);
                (carry.drain(..take).collect(), true)
            }
        };
        let consumed = split_lines(&buf, self.offset, chunk.more, final_read, &mut chunk.lines);
        if let Source::Gz { carry, .. } = &mut self.source {
            // Put back what was not a complete line, in front of what is still buffered.
            let mut rest = buf[consumed..].to_vec();
            rest.append(carry);
            *carry = rest;
        }
        self.offset += consumed as u64;
        chunk.buf = buf;
        Ok(chunk)
    }

    /// Whether the writer's path still names the file being followed.
    pub fn path_state(&self) -> PathState {
        let Some(live) = &self.live_path else {
            return PathState::Replaced;
        };
        match std::fs::metadata(live) {
            Ok(meta) if FileId::of(&meta) == self.id => PathState::Same,
            Ok(_) => PathState::Replaced,
            Err(_) => PathState::Gone,
        }
    }
}

/// Splits `buf` (read at file offset `base`) into lines, returning how many bytes they
/// consumed. A full buffer (`more`) without any newline is cut; a final read ends the file,
/// but only once the buffer did not fill, or a line would be cut at the chunk boundary.
fn split_lines(
    buf: &[u8],
    base: u64,
    more: bool,
    final_read: bool,
    out: &mut Vec<RawLine>,
) -> usize {
    let mut pos = 0;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        out.push(RawLine {
            start: base + pos as u64,
            span: pos..pos + nl,
            cut: false,
        });
        pos += nl + 1;
    }
    let cut = out.is_empty() && more;
    if pos < buf.len() && (cut || (final_read && !more)) {
        let end = if cut { utf8_cut(buf) } else { buf.len() };
        out.push(RawLine {
            start: base + pos as u64,
            span: pos..end,
            cut,
        });
        pos = end;
    }
    pos
}

/// Where to cut a full buffer so that a UTF-8 character is not split across pieces (each
/// piece is decoded on its own, and a split character would become two U+FFFD): before a
/// multi-byte sequence that the buffer ends inside. Bytes that are not UTF-8 anyway are cut
/// where the buffer ends.
fn utf8_cut(buf: &[u8]) -> usize {
    for back in 1..=buf.len().min(4) {
        let i = buf.len() - back;
        let b = buf[i];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: the lead byte is further back
        }
        let needed = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        return if back < needed && i > 0 { i } else { buf.len() };
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn texts(c: &Chunk) -> Vec<String> {
        c.lines
            .iter()
            .map(|l| String::from_utf8_lossy(c.bytes(l)).into_owned())
            .collect()
    }

    fn open(path: &Path) -> Follower {
        Follower::open(path, Some(path), false, None).unwrap()
    }

    fn at(offset: u64) -> Checkpoint {
        Checkpoint {
            path: PathBuf::new(),
            id: FileId { dev: 0, inode: 0 },
            fp: Fingerprint::default(),
            offset,
            done: false,
        }
    }

    #[test]
    fn reads_complete_lines_and_waits_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        let mut f = open(&path);
        let c = f.read(1024, false).unwrap();
        assert_eq!(texts(&c), ["one", "two"]);
        assert_eq!((c.lines[1].start, f.offset()), (4, 8));

        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"ee\nfour").unwrap();
        assert_eq!(texts(&f.read(1024, false).unwrap()), ["three"]);
        assert_eq!(
            texts(&f.read(1024, true).unwrap()),
            ["four"],
            "a final read flushes"
        );
    }

    #[test]
    fn truncation_rereads_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\nbbbb\n").unwrap();
        let mut f = open(&path);
        f.read(1024, false).unwrap();
        std::fs::write(&path, "c\n").unwrap();
        let c = f.read(1024, false).unwrap();
        assert!(c.truncated);
        assert_eq!(texts(&c), ["c"]);
        assert_eq!(f.path_state(), PathState::Same);
    }

    #[test]
    fn copytruncate_that_regrew_past_the_offset_is_noticed_by_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old 1\n").unwrap();
        let mut f = open(&path);
        f.read(1024, false).unwrap();
        let fp = f.fingerprint().unwrap().unwrap();
        assert!(!f.check_truncated(&fp).unwrap());
        std::fs::write(&path, "new line 1\nnew line 2\n").unwrap();
        assert!(f.check_truncated(&fp).unwrap());
        assert_eq!(
            texts(&f.read(1024, false).unwrap()),
            ["new line 1", "new line 2"]
        );
    }

    #[test]
    fn an_overlong_line_is_cut_at_the_buffer_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "abcdefgh\n").unwrap();
        let mut f = open(&path);
        let c = f.read(4, false).unwrap();
        assert!(c.more && c.lines[0].cut);
        assert_eq!(texts(&c), ["abcd"]);
        let c = f.read(4, false).unwrap();
        assert_eq!(
            (texts(&c), c.lines[0].cut),
            (vec!["efgh".to_string()], true)
        );
        let c = f.read(4, false).unwrap();
        assert_eq!((texts(&c), c.lines[0].cut), (vec![String::new()], false));
    }

    #[test]
    fn cuts_fall_between_characters() {
        assert_eq!(utf8_cut(b"abc"), 3);
        assert_eq!(utf8_cut("abé".as_bytes()), 4);
        assert_eq!(utf8_cut(&"abé".as_bytes()[..3]), 2);
        assert_eq!(utf8_cut(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut(&"€".as_bytes()[..2]), 2, "never an empty piece");
        assert_eq!(utf8_cut(b"ab\xff"), 3);
    }

    #[test]
    fn a_final_read_does_not_cut_at_the_chunk_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "ab\ncdef").unwrap();
        let mut f = open(&path);
        let c = f.read(5, true).unwrap();
        assert!(c.more);
        assert_eq!(texts(&c), ["ab"]);
        assert_eq!(texts(&f.read(5, true).unwrap()), ["cdef"]);
    }

    #[test]
    fn resumes_at_the_checkpoint_unless_the_file_is_shorter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let f = Follower::open(&path, Some(&path), false, Some(&at(4))).unwrap();
        assert_eq!(f.offset(), 4);
        let f = Follower::open(&path, Some(&path), false, Some(&at(99))).unwrap();
        assert_eq!(f.offset(), 0);
    }

    #[test]
    fn a_gzipped_file_resumes_inside_the_decompressed_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log.20240101-000000.gz");
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.write_all(b"unterminated").unwrap();
        enc.finish().unwrap();

        let mut f = Follower::open(&path, None, true, Some(&at(9 * 98))).unwrap();
        assert_eq!(f.path_state(), PathState::Replaced, "nobody writes a .gz");
        let c = f.read(13, false).unwrap();
        assert_eq!(texts(&c), ["line 098"]);
        assert_eq!((c.lines[0].start, c.more), (9 * 98, true));
        let mut rest = Vec::new();
        loop {
            let c = f.read(13, false).unwrap();
            rest.extend(texts(&c));
            if !c.more {
                break;
            }
        }
        assert_eq!(rest, ["line 099", "unterminated"]);
        assert_eq!(f.offset() as usize, text.len() + "unterminated".len());

        let mut past = Follower::open(&path, None, true, Some(&at(1 << 20))).unwrap();
        assert!(past.read(64, false).unwrap().lines.is_empty());
        assert_eq!(past.offset() as usize, text.len() + "unterminated".len());
    }

    #[test]
    fn notices_replacement_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n").unwrap();
        let f = open(&path);
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        assert_eq!(f.path_state(), PathState::Gone);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(f.path_state(), PathState::Replaced);
    }
}
