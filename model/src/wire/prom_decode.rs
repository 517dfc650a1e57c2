//! A decoder of remote write 1.0's `prometheus.WriteRequest` that borrows label names and
//! values from the decompressed body instead of allocating two `String`s per label per series
//! per request, as the prost-derived [`super::prom::WriteRequest`] does. Ingest profiles put
//! that churn at 40% of a remote write's CPU.
//!
//! It accepts and refuses exactly what prost + [`super::prom::TimeSeries::to_series`] + the
//! receiver's empty-set and label-count checks do, in the same order: the whole body must be
//! valid protobuf (every field of the right wire type, every string UTF-8, exemplars
//! included, unknown fields skipped) before any label set is judged, and label sets are then
//! judged series by series. Metadata is decoded into owned messages; it is small.

use super::prom::MetricMetadata;
use crate::labels::is_valid_label_name;
use crate::{Labels, LabelsError, Sample, SeriesBatch};

/// Why a remote-write body was refused. The `Display` of each is the 400 message the
/// receiver answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteDecodeError {
    /// Not a valid `WriteRequest` message.
    #[error("decode protobuf WriteRequest: failed to decode Protobuf message: {0}")]
    Protobuf(String),
    /// A series' label set is invalid (a bad or repeated name).
    #[error("invalid series: {0}")]
    Labels(#[from] LabelsError),
    /// A series has no label with a non-empty value.
    #[error("invalid series: empty label set")]
    EmptyLabelSet,
    /// A series has more labels than the receiver takes.
    #[error("series {labels} has {count} labels, more than the limit of {limit}")]
    TooManyLabels {
        labels: Labels,
        count: usize,
        limit: usize,
    },
}

/// Decodes `body` (an uncompressed `WriteRequest`), refusing a series with more than
/// `max_labels` labels. The batch's label pairs are in the form of [`Labels`].
pub fn decode_write_request(
    body: &[u8],
    max_labels: usize,
) -> Result<(SeriesBatch<'_>, Vec<MetricMetadata>), WriteDecodeError> {
    let mut raw = RawRequest::default();
    parse_request(body, &mut raw).map_err(WriteDecodeError::Protobuf)?;
    let mut batch = SeriesBatch::new();
    // Scratch for one series' pairs, reused so a request sorts without allocating per series.
    let mut sorted: Vec<(&str, &str)> = Vec::new();
    let mut label_start = 0;
    let mut sample_start = 0;
    for &(label_end, sample_end) in &raw.ends {
        let pairs = &raw.pairs[label_start..label_end];
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !is_valid_label_name(n)) {
            return Err(LabelsError::InvalidName(name.to_string()).into());
        }
        sorted.clear();
        sorted.extend_from_slice(pairs);
        // Senders sort their labels, so the sort is almost always skipped.
        if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LabelsError::DuplicateName(w[0].0.to_string()).into());
        }
        sorted.retain(|(_, v)| !v.is_empty());
        if sorted.is_empty() {
            return Err(WriteDecodeError::EmptyLabelSet);
        }
        if sorted.len() > max_labels {
            return Err(WriteDecodeError::TooManyLabels {
                labels: Labels::from_pairs(sorted.iter().copied()),
                count: sorted.len(),
                limit: max_labels,
            });
        }
        batch.push(
            sorted.iter().copied(),
            raw.samples[sample_start..sample_end].iter().copied(),
        );
        label_start = label_end;
        sample_start = sample_end;
    }
    Ok((batch, raw.metadata))
}

/// The request as parsed, before label sets are judged: each series' pairs as sent.
#[derive(Default)]
struct RawRequest<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    ends: Vec<(usize, usize)>,
    metadata: Vec<MetricMetadata>,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// How deep groups may nest in skipped fields, as prost's recursion limit.
const MAX_DEPTH: u32 = 100;

type Parsed<T> = Result<T, String>;

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        if n > self.buf.len() {
            return Err("buffer underflow".to_string());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Parsed<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| "invalid varint".to_string())?;
            self.buf = rest;
            // The tenth byte holds the 64th bit only.
            if i == 9 && byte > 1 {
                return Err("invalid varint".to_string());
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("invalid varint".to_string())
    }

    /// A field key: its number and wire type.
    fn key(&mut self) -> Parsed<(u32, u8)> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| format!("invalid key value: {key}"))?;
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err(format!("invalid wire type value: {wire_type}"));
        }
        let field = key >> 3;
        if field == 0 {
            return Err("invalid tag value: 0".to_string());
        }
        Ok((field, wire_type))
    }

    fn fixed64(&mut self) -> Parsed<u64> {
        let bytes = self.take(8)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn bytes(&mut self) -> Parsed<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| "buffer underflow".to_string())?;
        self.take(len)
    }

    fn string(&mut self) -> Parsed<&'a str> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| "invalid string value: data is not UTF-8 encoded".to_string())
    }

    /// Skips a field this decoder does not keep, checking its framing as prost does.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Parsed<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            FIXED32 => self.take(4).map(drop),
            LEN => self.bytes().map(drop),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err("recursion limit reached".to_string());
                }
                loop {
                    let (inner, inner_type) = self.key()?;
                    if inner_type == END_GROUP {
                        if inner != field {
                            return Err("unexpected end group tag".to_string());
                        }
                        return Ok(());
                    }
                    self.skip(inner, inner_type, depth + 1)?;
                }
            }
            _ => Err("unexpected end group tag".to_string()),
        }
    }
}

/// Refuses a known field sent with another wire type.
fn expect(found: u8, expected: u8, at: &str) -> Parsed<()> {
    if found == expected {
        return Ok(());
    }
    Err(format!(
        "{at}: invalid wire type: {} (expected {})",
        wire_type_name(found),
        wire_type_name(expected)
    ))
}

fn wire_type_name(t: u8) -> &'static str {
    match t {
        VARINT => "Varint",
        FIXED64 => "SixtyFourBit",
        LEN => "LengthDelimited",
        START_GROUP => "StartGroup",
        END_GROUP => "EndGroup",
        _ => "ThirtyTwoBit",
    }
}

fn parse_request<'a>(body: &'a [u8], out: &mut RawRequest<'a>) -> Parsed<()> {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, LEN, "WriteRequest.timeseries")?;
                parse_series(r.bytes()?, out)
                    .map_err(|e| format!("WriteRequest.timeseries: {e}"))?;
            }
            (3, t) => {
                expect(t, LEN, "WriteRequest.metadata")?;
                let m = parse_metadata(r.bytes()?)
                    .map_err(|e| format!("WriteRequest.metadata: {e}"))?;
                out.metadata.push(m);
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    Ok(())
}

fn parse_series<'a>(buf: &'a [u8], out: &mut RawRequest<'a>) -> Parsed<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, LEN, "TimeSeries.labels")?;
                let pair =
                    parse_label(r.bytes()?).map_err(|e| format!("TimeSeries.labels: {e}"))?;
                out.pairs.push(pair);
            }
            (2, t) => {
                expect(t, LEN, "TimeSeries.samples")?;
                let sample =
                    parse_sample(r.bytes()?).map_err(|e| format!("TimeSeries.samples: {e}"))?;
                out.samples.push(sample);
            }
            (3, t) => {
                // Exemplars are not stored, but prost would refuse a malformed one, so they
                // are checked all the same.
                expect(t, LEN, "TimeSeries.exemplars")?;
                check_exemplar(r.bytes()?).map_err(|e| format!("TimeSeries.exemplars: {e}"))?;
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    out.ends.push((out.pairs.len(), out.samples.len()));
    Ok(())
}

/// A `Label`; a field sent twice keeps its last value, as protobuf requires.
fn parse_label(buf: &[u8]) -> Parsed<(&str, &str)> {
    let mut r = Reader::new(buf);
    let (mut name, mut value) = ("", "");
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, LEN, "Label.name")?;
                name = r.string().map_err(|e| format!("Label.name: {e}"))?;
            }
            (2, t) => {
                expect(t, LEN, "Label.value")?;
                value = r.string().map_err(|e| format!("Label.value: {e}"))?;
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    Ok((name, value))
}

fn parse_sample(buf: &[u8]) -> Parsed<Sample> {
    let mut r = Reader::new(buf);
    let mut sample = Sample { t: 0, v: 0.0 };
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, FIXED64, "Sample.value")?;
                sample.v = f64::from_bits(r.fixed64()?);
            }
            (2, t) => {
                expect(t, VARINT, "Sample.timestamp")?;
                // int64 is the varint's bits as two's complement.
                sample.t = r.varint()? as i64;
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    Ok(sample)
}

fn check_exemplar(buf: &[u8]) -> Parsed<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, LEN, "Exemplar.labels")?;
                parse_label(r.bytes()?).map_err(|e| format!("Exemplar.labels: {e}"))?;
            }
            (2, t) => {
                expect(t, FIXED64, "Exemplar.value")?;
                r.fixed64()?;
            }
            (3, t) => {
                expect(t, VARINT, "Exemplar.timestamp")?;
                r.varint()?;
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    Ok(())
}

fn parse_metadata(buf: &[u8]) -> Parsed<MetricMetadata> {
    let mut r = Reader::new(buf);
    let mut m = MetricMetadata {
        r#type: 0,
        metric_family_name: String::new(),
        help: String::new(),
        unit: String::new(),
    };
    while !r.is_empty() {
        match r.key()? {
            (1, t) => {
                expect(t, VARINT, "MetricMetadata.type")?;
                // int32 keeps the low 32 bits of the varint, as prost does.
                m.r#type = r.varint()? as i32;
            }
            (2, t) => {
                expect(t, LEN, "MetricMetadata.metric_family_name")?;
                m.metric_family_name = r.string()?.to_string();
            }
            (4, t) => {
                expect(t, LEN, "MetricMetadata.help")?;
                m.help = r.string()?.to_string();
            }
            (5, t) => {
                expect(t, LEN, "MetricMetadata.unit")?;
                m.unit = r.string()?.to_string();
            }
            (field, t) => r.skip(field, t, 0)?,
        }
    }
    Ok(m)
}

#[cfg(test)]
#[path = "prom_decode_tests.rs"]
mod tests;
