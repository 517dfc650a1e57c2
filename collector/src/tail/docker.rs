//! Docker's json-file log format (cri-dockerd and older kubelets):
//! `{"log":"content\n","stream":"stderr","time":"2016-10-20T18:39:20.57606443Z"}` per line.
//!
//! Docker cuts lines longer than its 16 KiB copy buffer into pieces; a piece is a `log`
//! value of at least [`DOCKER_PIECE_BYTES`] without the trailing `\n` that a finished line
//! has. A shorter `log` without `\n` is what a stream wrote last before it closed, so it
//! stands alone rather than waiting for a continuation that never comes.

use serde_json::Value;

use super::join::Piece;

/// Docker's copy buffer (`daemon/logger/copier.go`): a line longer than this is written in
/// pieces of this many bytes. A piece cut inside a multi-byte character decodes a little
/// longer (each stray byte becomes U+FFFD), hence "at least".
pub(crate) const DOCKER_PIECE_BYTES: usize = 16 * 1024;

/// One parsed json-file line, owning its unescaped strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DockerLine {
    pub ts_ns: i64,
    pub stream: String,
    /// The `log` value as written, with its `\n` if it has one.
    pub log: String,
}

impl DockerLine {
    /// The line as a piece for the joiner: the `\n` that ends a finished line is dropped.
    pub fn piece(&self) -> Piece<'_> {
        let (msg, partial) = match self.log.strip_suffix('\n') {
            Some(msg) => (msg, false),
            None => (self.log.as_str(), self.log.len() >= DOCKER_PIECE_BYTES),
        };
        Piece {
            ts_ns: self.ts_ns,
            stream: &self.stream,
            partial,
            msg,
        }
    }
}

/// Parses one json-file line (without its `\n`): an object with string fields `log`,
/// `stream` (`stdout` or `stderr`) and an RFC 3339 `time`; other fields are ignored, as
/// kubelet's `parseDockerJSONLog` ignores them. Anything else is `None`.
pub(crate) fn parse_line(line: &str) -> Option<DockerLine> {
    // Cheap rejection before a JSON parse: CRI and plain lines never start with `{`.
    if !line.trim_start().starts_with('{') {
        return None;
    }
    let Value::Object(mut obj) = serde_json::from_str::<Value>(line).ok()? else {
        return None;
    };
    let Value::String(log) = obj.remove("log")? else {
        return None;
    };
    let Value::String(stream) = obj.remove("stream")? else {
        return None;
    };
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let time = obj.get("time")?.as_str()?;
    let ts_ns = chrono::DateTime::parse_from_rfc3339(time)
        .ok()?
        .timestamp_nanos_opt()?;
    Some(DockerLine { ts_ns, stream, log })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::join::{Joined, Joiner};

    #[test]
    fn parses_lines() {
        let l = parse_line(
            r#"{"log":"content \"q\" \u00e9\n","stream":"stderr","time":"2016-10-20T18:39:20.57606443Z"}"#,
        )
        .unwrap();
        assert_eq!(l.ts_ns, 1_476_988_760_576_064_430);
        let p = l.piece();
        assert_eq!(
            (p.stream, p.partial, p.msg),
            ("stderr", false, "content \"q\" é")
        );
        let l =
            parse_line(r#"{"time":"2016-10-20T18:39:20Z","stream":"stdout","log":"","attrs":{}}"#)
                .unwrap();
        assert_eq!((l.piece().msg, l.piece().partial), ("", false));
    }

    #[test]
    fn malformed_lines_are_none() {
        for bad in [
            "",
            "plain text",
            "2016-10-06T00:17:09Z stdout F x",
            r#"{"log":"x\n","stream":"stdout","time":"2016-10-20T18:39:20Z""#,
            r#"{"log":"x\n","stream":"stdin","time":"2016-10-20T18:39:20Z"}"#,
            r#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
            r#"{"log":"x\n","stream":"stdout"}"#,
            r#"{"log":7,"stream":"stdout","time":"2016-10-20T18:39:20Z"}"#,
            r#"["log","stream","time"]"#,
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pieces_of_a_long_line_are_joined_and_a_short_unterminated_log_stands_alone() {
        let big = "x".repeat(DOCKER_PIECE_BYTES);
        let line = |log: &str, t: u32| DockerLine {
            ts_ns: i64::from(t),
            stream: "stdout".into(),
            log: log.to_string(),
        };
        let mut j = Joiner::new(256 * 1024);
        assert!(j.push(line(&big, 1).piece(), 0).is_empty());
        assert!(j.push(line(&big, 2).piece(), 100).is_empty());
        assert_eq!(j.holds_from(), Some(0));
        let out = j.push(line("end\n", 3).piece(), 200);
        assert_eq!(
            out,
            vec![Joined {
                stream: "stdout".into(),
                ts_ns: 1,
                text: format!("{big}{big}end"),
                split: None,
            }]
        );
        let out = j.push(line("no newline at exit", 4).piece(), 300);
        assert_eq!(
            out[0].text, "no newline at exit",
            "not held for a continuation"
        );
        assert_eq!(j.holds_from(), None);
    }
}
