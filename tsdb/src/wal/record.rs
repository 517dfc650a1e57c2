//! WAL records: framing with length and CRC, and the two record types (series, samples).
//!
//! A frame is `len: u32 LE | crc32: u32 LE | payload`, where the CRC (IEEE, as `crc32fast`
//! computes it) covers the payload and the payload is a type byte and a body
//! (`FORMAT.md` §WAL). Integers in bodies are LEB128 varints; values are raw `f64` bits, so a
//! replayed sample is bit-for-bit the one appended.

use crate::postings::SeriesRef;
use crate::varint::{get_uvarint, put_uvarint, unzigzag, zigzag};
use model::{Labels, Sample};

/// Bytes of a frame before its payload.
pub(crate) const FRAME_HEADER: usize = 8;

/// The largest payload a reader accepts. Writers stay far below it (samples records are cut
/// at [`SAMPLES_RECORD_TARGET`]); a larger length can only come from a damaged frame, and
/// bounding it keeps a corrupt length from allocating gigabytes.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// Samples records are cut once their body passes this size.
const SAMPLES_RECORD_TARGET: usize = 1 << 20;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;

/// A decoded record.
#[derive(Debug, PartialEq)]
pub(crate) enum Record {
    /// Series created: their WAL-local id and labels.
    Series(Vec<(u64, Labels)>),
    /// Samples appended, per series id, in ascending time order.
    Samples(Vec<(u64, Vec<Sample>)>),
}

/// Why a payload does not decode. Its CRC matched, so this means a writer bug or a format
/// from another version, and replay treats it like corruption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable WAL record: {0}")]
pub(crate) struct RecordError(pub(crate) &'static str);

/// Appends a frame holding `payload_type` and `body` to `out`.
fn frame(out: &mut Vec<u8>, payload_type: u8, body: &[u8]) {
    let len = (body.len() + 1) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[payload_type]);
    crc.update(body);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(payload_type);
    out.extend_from_slice(body);
}

/// The CRC a frame must carry for `payload`.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Appends one series record naming every series in `series` to `out`.
pub(crate) fn encode_series<'a>(
    out: &mut Vec<u8>,
    series: impl ExactSizeIterator<Item = (SeriesRef, &'a Labels)>,
) {
    let mut body = Vec::new();
    put_uvarint(&mut body, series.len() as u64);
    for (id, labels) in series {
        put_uvarint(&mut body, u64::from(id));
        put_uvarint(&mut body, labels.len() as u64);
        for l in labels {
            put_str(&mut body, &l.name);
            put_str(&mut body, &l.value);
        }
    }
    frame(out, TYPE_SERIES, &body);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Builds samples records from a batch, series by series, cutting a new record whenever
/// the current one passes [`SAMPLES_RECORD_TARGET`].
#[derive(Debug, Default)]
pub(crate) struct SamplesEncoder {
    /// Finished frames.
    out: Vec<u8>,
    /// The body being filled, and how many entries it holds.
    body: Vec<u8>,
    entries: u64,
}

impl SamplesEncoder {
    /// Adds one series' samples (non-empty, strictly ascending in time).
    pub(crate) fn add(&mut self, id: SeriesRef, samples: &[Sample]) {
        let Some(first) = samples.first() else { return };
        put_uvarint(&mut self.body, u64::from(id));
        put_uvarint(&mut self.body, samples.len() as u64);
        put_uvarint(&mut self.body, zigzag(first.t));
        self.body
            .extend_from_slice(&first.v.to_bits().to_le_bytes());
        let mut prev = first.t;
        for s in &samples[1..] {
            put_uvarint(&mut self.body, zigzag(s.t.wrapping_sub(prev)));
            self.body.extend_from_slice(&s.v.to_bits().to_le_bytes());
            prev = s.t;
        }
        self.entries += 1;
        if self.body.len() >= SAMPLES_RECORD_TARGET {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.entries == 0 {
            return;
        }
        let mut body = Vec::with_capacity(self.body.len() + 10);
        put_uvarint(&mut body, self.entries);
        body.extend_from_slice(&self.body);
        frame(&mut self.out, TYPE_SAMPLES, &body);
        self.body.clear();
        self.entries = 0;
    }

    /// The framed records, empty when no samples were added.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.cut();
        self.out
    }
}

/// Decodes a payload whose CRC already matched.
pub(crate) fn decode(payload: &[u8]) -> Result<Record, RecordError> {
    let (&kind, mut body) = payload.split_first().ok_or(RecordError("empty payload"))?;
    let buf = &mut body;
    let count = uvarint(buf)?;
    match kind {
        TYPE_SERIES => {
            let mut out = Vec::new();
            for _ in 0..count {
                let id = uvarint(buf)?;
                let n = uvarint(buf)?;
                let mut pairs = Vec::new();
                for _ in 0..n {
                    pairs.push((get_str(buf)?, get_str(buf)?));
                }
                let labels = Labels::try_from_pairs(pairs)
                    .map_err(|_| RecordError("invalid labels in series record"))?;
                out.push((id, labels));
            }
            Ok(Record::Series(out))
        }
        TYPE_SAMPLES => {
            let mut out = Vec::new();
            for _ in 0..count {
                let id = uvarint(buf)?;
                let n = uvarint(buf)?;
                // Each sample takes at least 9 bytes, which bounds `n` by what is left.
                if n > (buf.len() / 9) as u64 {
                    return Err(RecordError("sample count exceeds the record"));
                }
                let mut samples = Vec::with_capacity(n as usize);
                let mut t = 0i64;
                for i in 0..n {
                    let d = unzigzag(uvarint(buf)?);
                    t = if i == 0 { d } else { t.wrapping_add(d) };
                    samples.push(Sample {
                        t,
                        v: f64::from_bits(get_u64(buf)?),
                    });
                }
                out.push((id, samples));
            }
            Ok(Record::Samples(out))
        }
        _ => Err(RecordError("unknown record type")),
    }
}

fn uvarint(buf: &mut &[u8]) -> Result<u64, RecordError> {
    get_uvarint(buf).ok_or(RecordError("truncated varint"))
}

fn get_u64(buf: &mut &[u8]) -> Result<u64, RecordError> {
    let (head, rest) = buf
        .split_first_chunk::<8>()
        .ok_or(RecordError("truncated value"))?;
    *buf = rest;
    Ok(u64::from_le_bytes(*head))
}

fn get_str(buf: &mut &[u8]) -> Result<String, RecordError> {
    let len = usize::try_from(uvarint(buf)?).map_err(|_| RecordError("string too long"))?;
    if len > buf.len() {
        return Err(RecordError("truncated string"));
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    String::from_utf8(s.to_vec()).map_err(|_| RecordError("label is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits framed bytes back into payloads, checking each CRC.
    fn payloads(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            let payload = &bytes[FRAME_HEADER..FRAME_HEADER + len];
            assert_eq!(checksum(payload), crc);
            out.push(payload);
            bytes = &bytes[FRAME_HEADER + len..];
        }
        out
    }

    #[test]
    fn series_and_samples_round_trip() {
        let a = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let b = Labels::from_pairs([("x", "é")]);
        let mut out = Vec::new();
        encode_series(&mut out, [(7, &a), (9, &b)].into_iter());
        let weird = [
            Sample {
                t: -5,
                v: f64::from_bits(model::STALE_NAN_BITS),
            },
            Sample { t: 3, v: -0.0 },
            Sample {
                t: i64::MAX,
                v: f64::NAN,
            },
        ];
        let mut enc = SamplesEncoder::default();
        enc.add(7, &weird);
        enc.add(9, &weird[1..2]);
        enc.add(3, &[]);
        out.extend(enc.finish());

        let got: Vec<Record> = payloads(&out)
            .into_iter()
            .map(|p| decode(p).unwrap())
            .collect();
        assert_eq!(got[0], Record::Series(vec![(7, a), (9, b)]));
        let Record::Samples(entries) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(entries.len(), 2);
        let bits = |s: &[Sample]| s.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&entries[0].1), bits(&weird));
        assert_eq!(entries[1].0, 9);
    }

    #[test]
    fn large_batches_are_cut_into_several_records() {
        let samples: Vec<Sample> = (0..1000).map(|i| Sample { t: i, v: i as f64 }).collect();
        let mut enc = SamplesEncoder::default();
        for id in 0..300 {
            enc.add(id, &samples);
        }
        let out = enc.finish();
        let records = payloads(&out);
        assert!(records.len() >= 2, "{} records", records.len());
        let total: usize = records
            .iter()
            .map(|p| match decode(p).unwrap() {
                Record::Samples(e) => e.iter().map(|(_, s)| s.len()).sum::<usize>(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(total, 300_000);
    }

    #[test]
    fn damaged_bodies_are_errors() {
        assert!(decode(&[]).is_err());
        assert!(
            decode(&[TYPE_SAMPLES, 1, 0, 200]).is_err(),
            "count beyond the body"
        );
        assert!(
            decode(&[TYPE_SERIES, 1, 0, 1, 5, b'a']).is_err(),
            "truncated string"
        );
        assert!(
            decode(&[TYPE_SERIES, 1, 0, 1, 1, b'1', 0]).is_err(),
            "invalid name"
        );
        assert!(decode(&[9, 0]).is_err());
    }
}
