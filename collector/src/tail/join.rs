//! Joining the pieces of a line that a container runtime split (CRI `P` lines, docker's
//! 16 KiB json-file pieces) back into the line the container wrote, up to a bound.
//!
//! A line longer than the bound is emitted in pieces, cut where the runtime cut it (never
//! inside a piece), each numbered by [`Joined::split`]. Cutting only at piece boundaries keeps
//! the checkpoint exact: what is still held always starts at one piece's first byte.

use std::borrow::Cow;

/// One parsed line of a container log, whatever its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    pub ts_ns: i64,
    pub stream: &'a str,
    /// The line continues in the next piece of the same stream.
    pub partial: bool,
    pub msg: &'a str,
}

/// A full line assembled from one or more pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    /// `stdout` or `stderr` (both parsers refuse others), borrowed rather than allocated.
    pub stream: Cow<'static, str>,
    /// The timestamp of the first piece.
    pub ts_ns: i64,
    pub text: String,
    /// For a line longer than the bound: which piece of it this is, from 1.
    pub split: Option<u32>,
}

/// The stream name without an allocation for the two names the parsers accept.
fn stream_name(s: &str) -> Cow<'static, str> {
    match s {
        "stdout" => Cow::Borrowed("stdout"),
        "stderr" => Cow::Borrowed("stderr"),
        other => Cow::Owned(other.to_string()),
    }
}

/// Pieces waiting for the one that ends their line, per stream.
#[derive(Debug)]
struct Partial {
    stream: Cow<'static, str>,
    ts_ns: i64,
    text: String,
    /// The file offset of the first piece: a checkpoint must not pass it, or a restart
    /// would lose the start of the line.
    start: u64,
    /// Pieces of this line already emitted because it outgrew the bound.
    emitted: u32,
}

impl Partial {
    fn into_joined(self, last: bool) -> Joined {
        let split = (!last || self.emitted > 0).then_some(self.emitted + 1);
        Joined {
            stream: self.stream,
            ts_ns: self.ts_ns,
            text: self.text,
            split,
        }
    }
}

/// Joins partial pieces per stream until the piece that ends them.
#[derive(Debug)]
pub(crate) struct Joiner {
    pending: Vec<Partial>,
    /// The longest line built, in bytes (`--logs.max-line-size`).
    max: usize,
}

impl Joiner {
    pub fn new(max: usize) -> Self {
        Joiner {
            pending: Vec::new(),
            max,
        }
    }

    /// Feeds one line that starts at file offset `start`; returns the lines completed by it
    /// (none, one, or two when the bound forced out the pieces before it).
    #[cfg(test)]
    pub fn push(&mut self, line: Piece<'_>, start: u64) -> Vec<Joined> {
        let mut out = Vec::new();
        self.push_into(line, start, &mut out);
        out
    }

    /// [`Joiner::push`], appending the completed lines to `out`.
    pub fn push_into(&mut self, line: Piece<'_>, start: u64, out: &mut Vec<Joined>) {
        if !line.partial && self.pending.is_empty() {
            // The common case, a whole line with nothing pending: no partial to build.
            out.push(Joined {
                stream: stream_name(line.stream),
                ts_ns: line.ts_ns,
                text: line.msg.to_string(),
                split: None,
            });
            return;
        }
        let idx = self.pending.iter().position(|p| p.stream == line.stream);
        let mut emitted = 0;
        if let Some(i) = idx {
            if self.pending[i].text.len() + line.msg.len() > self.max {
                let p = self.pending.remove(i);
                emitted = p.emitted + 1;
                out.push(p.into_joined(false));
            }
        }
        let idx = self.pending.iter().position(|p| p.stream == line.stream);
        match idx {
            Some(i) => {
                self.pending[i].text.push_str(line.msg);
                if !line.partial {
                    out.push(self.pending.remove(i).into_joined(true));
                }
            }
            None => {
                let p = Partial {
                    stream: stream_name(line.stream),
                    ts_ns: line.ts_ns,
                    text: line.msg.to_string(),
                    start,
                    emitted,
                };
                if line.partial {
                    self.pending.push(p);
                } else {
                    out.push(p.into_joined(true));
                }
            }
        }
    }

    /// The offset of the oldest unfinished line, if any: the furthest a checkpoint may go.
    pub fn holds_from(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.start).min()
    }

    /// Forgets unfinished lines (the file was truncated or replaced).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Emits unfinished lines as they are (the file will get no more data).
    pub fn drain(&mut self) -> Vec<Joined> {
        self.pending
            .drain(..)
            .map(|p| p.into_joined(true))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_partials_per_stream() {
        let mut j = Joiner::new(1024);
        let p = |s: &'static str, partial, msg: &'static str, ts| Piece {
            ts_ns: ts,
            stream: s,
            partial,
            msg,
        };
        assert!(j.push(p("stdout", true, "hel", 1), 0).is_empty());
        assert!(j.push(p("stderr", true, "oops ", 2), 10).is_empty());
        assert_eq!(j.holds_from(), Some(0));
        let out = j.push(p("stdout", false, "lo", 3), 20);
        assert_eq!(
            out,
            vec![Joined {
                stream: "stdout".into(),
                ts_ns: 1,
                text: "hello".into(),
                split: None,
            }]
        );
        assert_eq!(j.holds_from(), Some(10));
        let out = j.push(p("stderr", false, "bad", 4), 30);
        assert_eq!(out[0].text, "oops bad");
        assert_eq!(j.holds_from(), None);
    }

    #[test]
    fn joining_is_bounded_and_numbers_the_pieces() {
        const MAX: usize = 1000;
        let mut j = Joiner::new(MAX);
        let big = "x".repeat(MAX / 2 + 1);
        let line = |partial| Piece {
            ts_ns: 0,
            stream: "stdout",
            partial,
            msg: &big,
        };
        assert!(j.push(line(true), 0).is_empty());
        let out = j.push(line(true), 1);
        assert_eq!(out.len(), 1, "the first piece is forced out");
        assert_eq!((out[0].text.len(), out[0].split), (big.len(), Some(1)));
        assert_eq!(
            j.holds_from(),
            Some(1),
            "held from the piece not yet emitted"
        );
        let out = j.push(line(false), 2);
        assert_eq!(out.len(), 2, "the pending piece, then the final one");
        assert!(out.iter().all(|l| l.text.len() == big.len()));
        assert_eq!((out[0].split, out[1].split), (Some(2), Some(3)));
        assert_eq!(j.holds_from(), None);

        let small = Piece {
            ts_ns: 0,
            stream: "stdout",
            partial: true,
            msg: "ab",
        };
        j.push(small.clone(), 3);
        let out = j.push(
            Piece {
                partial: false,
                ..small
            },
            4,
        );
        assert_eq!(out[0].text, "abab", "pieces under the bound join whole");
        assert_eq!(out[0].split, None);
    }
}
