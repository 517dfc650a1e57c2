//! Log WAL records: the frame (length, CRC, payload) and the one record type, a push.
//!
//! A frame is `len: u32 LE | crc32: u32 LE | payload`; the CRC (IEEE, as `crc32fast` computes
//! it) covers the payload, which is a type byte and a body (`FORMAT.md` §WAL). A push record
//! holds the streams of one acknowledged push exactly as they were accepted, so replay feeds
//! them through the same indexing path as a live push.

use model::{Labels, LogEntry, LogStream};

/// Bytes of a frame before its payload.
pub(crate) const FRAME_HEADER: usize = 8;

/// The largest payload a writer produces and a reader accepts. Push bodies are bounded well
/// below it by the API's limits; a larger length read back can only come from a damaged frame,
/// and bounding it keeps a corrupt length from allocating gigabytes.
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

const TYPE_PUSH: u8 = 1;

/// Why a payload does not decode. Its CRC matched, so this is a writer bug or a record of
/// another format; replay treats it as corruption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable WAL record: {0}")]
pub(crate) struct RecordError(pub(crate) String);

/// The CRC a frame must carry for `payload`.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Encodes `streams` (entries-less streams included, harmlessly) as one framed push record.
/// `None` when the payload would exceed [`MAX_PAYLOAD`].
pub(crate) fn encode_push(streams: &[LogStream]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; FRAME_HEADER];
    out.push(TYPE_PUSH);
    put_uvarint(&mut out, streams.len() as u64);
    for s in streams {
        put_uvarint(&mut out, s.labels.len() as u64);
        for l in &s.labels {
            put_str(&mut out, &l.name);
            put_str(&mut out, &l.value);
        }
        put_uvarint(&mut out, s.entries.len() as u64);
        for e in &s.entries {
            put_uvarint(&mut out, zigzag(e.ts_ns));
            put_str(&mut out, &e.line);
            put_uvarint(&mut out, e.metadata.len() as u64);
            for (k, v) in &e.metadata {
                put_str(&mut out, k);
                put_str(&mut out, v);
            }
        }
    }
    let len = out.len() - FRAME_HEADER;
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = checksum(&out[FRAME_HEADER..]);
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// Decodes a push record's payload (type byte included).
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<LogStream>, RecordError> {
    let mut r = Reader(payload);
    match r.byte()? {
        TYPE_PUSH => {}
        t => return Err(RecordError(format!("unknown record type {t}"))),
    }
    let n_streams = r.count()?;
    let mut streams = Vec::with_capacity(n_streams.min(4096));
    for _ in 0..n_streams {
        let n_labels = r.count()?;
        let mut pairs = Vec::with_capacity(n_labels.min(64));
        for _ in 0..n_labels {
            pairs.push((r.string()?, r.string()?));
        }
        let labels = Labels::try_from_pairs(pairs)
            .map_err(|e| RecordError(format!("invalid stream labels: {e}")))?;
        let n_entries = r.count()?;
        let mut entries = Vec::with_capacity(n_entries.min(1 << 16));
        for _ in 0..n_entries {
            let ts_ns = unzigzag(r.uvarint()?);
            let line = r.string()?;
            let n_meta = r.count()?;
            let mut metadata = Vec::with_capacity(n_meta.min(64));
            for _ in 0..n_meta {
                metadata.push((r.string()?, r.string()?));
            }
            entries.push(LogEntry {
                ts_ns,
                line,
                metadata,
            });
        }
        streams.push(LogStream { labels, entries });
    }
    if !r.0.is_empty() {
        return Err(RecordError(format!("{} trailing bytes", r.0.len())));
    }
    Ok(streams)
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, RecordError> {
        let (&b, rest) = self
            .0
            .split_first()
            .ok_or_else(|| RecordError("truncated".into()))?;
        self.0 = rest;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(RecordError("varint overflows 64 bits".into()))
    }

    /// A count of items that each take at least one byte, so it cannot exceed what is left;
    /// checking that keeps a damaged count from reserving memory it will never fill.
    fn count(&mut self) -> Result<usize, RecordError> {
        let n = self.uvarint()?;
        if n > self.0.len() as u64 {
            return Err(RecordError(format!(
                "count {n} exceeds the {} bytes left",
                self.0.len()
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let len = self.count()?;
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError("string is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<LogStream> {
        vec![
            LogStream {
                labels: Labels::from_pairs([("app", "api"), ("pod", "a-1")]),
                entries: vec![
                    LogEntry {
                        ts_ns: 1_700_000_000_123_456_789,
                        line: "GET / 200 é".into(),
                        metadata: vec![("trace_id".into(), "abc".into())],
                    },
                    LogEntry {
                        ts_ns: -5,
                        line: String::new(),
                        metadata: vec![],
                    },
                ],
            },
            LogStream {
                labels: Labels::from_pairs([("app", "db")]),
                entries: vec![],
            },
        ]
    }

    #[test]
    fn push_round_trips() {
        let framed = encode_push(&sample()).unwrap();
        let len = u32::from_le_bytes(framed[..4].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - FRAME_HEADER);
        let payload = &framed[FRAME_HEADER..];
        assert_eq!(
            u32::from_le_bytes(framed[4..8].try_into().unwrap()),
            checksum(payload)
        );
        assert_eq!(decode(payload).unwrap(), sample());
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let framed = encode_push(&sample()).unwrap();
        let payload = &framed[FRAME_HEADER..];
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = payload.to_vec();
        other[0] = 9;
        assert!(decode(&other).is_err());
        // A count far beyond the payload fails without allocating for it.
        assert!(decode(&[TYPE_PUSH, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1_700_000_000_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
