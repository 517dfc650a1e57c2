//! The CRI log format (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <msg>`,
//! and the joining of `P` (partial) lines into the full line the container wrote.

/// The longest line the joiner builds: Loki's default `max_line_size` (256 KiB). A longer
/// run of partials is emitted in pieces of at most this size rather than held without bound.
pub(crate) const MAX_JOINED_BYTES: usize = 256 * 1024;

/// One parsed CRI line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CriLine<'a> {
    pub ts_ns: i64,
    pub stream: &'a str,
    pub partial: bool,
    pub msg: &'a str,
}

/// Parses one CRI line (without its `\n`). The tag field is split on `:` and only its first
/// element counts (`P` partial, `F` full), as kubelet's `parseCRILog` does; the message may
/// be empty.
pub(crate) fn parse_line(line: &str) -> Option<CriLine<'_>> {
    let (ts, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let (tags, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    let ts_ns = chrono::DateTime::parse_from_rfc3339(ts)
        .ok()?
        .timestamp_nanos_opt()?;
    Some(CriLine {
        ts_ns,
        stream,
        partial,
        msg,
    })
}

/// A full line assembled from one or more CRI lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub stream: String,
    /// The timestamp of the first piece.
    pub ts_ns: i64,
    pub text: String,
}

/// Partials waiting for their `F`, per stream.
#[derive(Debug)]
struct Partial {
    stream: String,
    ts_ns: i64,
    text: String,
    /// The file offset of the first piece: a checkpoint must not pass it, or a restart
    /// would lose the start of the line.
    start: u64,
}

/// Joins `P` lines per stream until the `F` that ends them.
#[derive(Debug, Default)]
pub(crate) struct Joiner {
    pending: Vec<Partial>,
}

impl Joiner {
    /// Feeds one line that starts at file offset `start`; returns the lines completed by it
    /// (none, one, or two when the 256 KiB bound forced out the pieces before it).
    pub fn push(&mut self, line: CriLine<'_>, start: u64) -> Vec<Joined> {
        let mut out = Vec::new();
        let idx = self.pending.iter().position(|p| p.stream == line.stream);
        if let Some(i) = idx {
            if self.pending[i].text.len() + line.msg.len() > MAX_JOINED_BYTES {
                let p = self.pending.remove(i);
                out.push(Joined {
                    stream: p.stream,
                    ts_ns: p.ts_ns,
                    text: p.text,
                });
            }
        }
        let idx = self.pending.iter().position(|p| p.stream == line.stream);
        match (idx, line.partial) {
            (Some(i), true) => self.pending[i].text.push_str(line.msg),
            (Some(i), false) => {
                let mut p = self.pending.remove(i);
                p.text.push_str(line.msg);
                out.push(Joined {
                    stream: p.stream,
                    ts_ns: p.ts_ns,
                    text: p.text,
                });
            }
            (None, true) => self.pending.push(Partial {
                stream: line.stream.to_string(),
                ts_ns: line.ts_ns,
                text: line.msg.to_string(),
                start,
            }),
            (None, false) => out.push(Joined {
                stream: line.stream.to_string(),
                ts_ns: line.ts_ns,
                text: line.msg.to_string(),
            }),
        }
        out
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
            .map(|p| Joined {
                stream: p.stream,
                ts_ns: p.ts_ns,
                text: p.text,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let l = parse_line("2016-10-06T00:17:09.669794202Z stdout P log content 1").unwrap();
        assert_eq!(l.ts_ns, 1_475_713_029_669_794_202);
        assert_eq!(
            (l.stream, l.partial, l.msg),
            ("stdout", true, "log content 1")
        );
        let l = parse_line("2016-10-06T00:17:09.5+02:00 stderr F:x:y  two spaces").unwrap();
        assert_eq!(l.ts_ns, 1_475_705_829_500_000_000, "offsets are applied");
        assert_eq!(
            (l.stream, l.partial, l.msg),
            ("stderr", false, " two spaces")
        );
        assert_eq!(parse_line("2016-10-06T00:17:09Z stdout F").unwrap().msg, "");
    }

    #[test]
    fn malformed_lines_are_none() {
        for bad in [
            "",
            "plain text line",
            "2016-10-06T00:17:09Z stdin F x",
            "2016-10-06T00:17:09Z stdout X x",
            "yesterday stdout F x",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn joins_partials_per_stream() {
        let mut j = Joiner::default();
        let p = |s: &'static str, partial, msg: &'static str, ts| CriLine {
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
                text: "hello".into()
            }]
        );
        assert_eq!(j.holds_from(), Some(10));
        let out = j.push(p("stderr", false, "bad", 4), 30);
        assert_eq!(out[0].text, "oops bad");
        assert_eq!(j.holds_from(), None);
    }

    #[test]
    fn joining_is_bounded() {
        let mut j = Joiner::default();
        let big = "x".repeat(MAX_JOINED_BYTES / 2 + 1);
        let line = |partial| CriLine {
            ts_ns: 0,
            stream: "stdout",
            partial,
            msg: &big,
        };
        assert!(j.push(line(true), 0).is_empty());
        let out = j.push(line(true), 1);
        assert_eq!(out.len(), 1, "the first piece is forced out");
        assert_eq!(out[0].text.len(), big.len());
        let out = j.push(line(false), 2);
        assert_eq!(out.len(), 2, "the pending piece, then the final one");
        assert!(out.iter().all(|l| l.text.len() == big.len()));
        assert_eq!(j.holds_from(), None);

        let small = CriLine {
            ts_ns: 0,
            stream: "stdout",
            partial: true,
            msg: "ab",
        };
        j.push(small.clone(), 3);
        let out = j.push(
            CriLine {
                partial: false,
                ..small
            },
            4,
        );
        assert_eq!(out[0].text, "abab", "pieces under the bound join whole");
    }
}
