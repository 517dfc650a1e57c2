//! The CRI log format (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <msg>`.
//! Its `P` (partial) lines are joined by `join.rs`.

use super::join::Piece;

/// Parses one CRI line (without its `\n`). The tag field is split on `:` and only its first
/// element counts (`P` partial, `F` full), as kubelet's `parseCRILog` does; the message may
/// be empty.
pub(crate) fn parse_line(line: &str) -> Option<Piece<'_>> {
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
    Some(Piece {
        ts_ns,
        stream,
        partial,
        msg,
    })
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
}
