//! Remote write's protobuf `WriteRequest`, written straight from the model's series: the same
//! bytes as building `model::wire::prom::WriteRequest` and encoding it, without the
//! intermediate `TimeSeries` (two `String`s per label, built and dropped for every series of
//! every request — a node with 200 containers sends some 15,000 series per collection).

use model::wire::prom::MetricMetadata;
use model::{Label, Sample, Series};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

/// The protobuf bytes of `WriteRequest { timeseries: series, metadata }`, exactly as prost
/// encodes it (proto3: fields at their default value are left out), in one buffer sized up
/// front. Each series' length is measured once, for both the buffer's size and the series'
/// length prefix: measuring walks every label.
pub(crate) fn encode_write_request(series: &[Series], metadata: &[MetricMetadata]) -> Vec<u8> {
    let lens: Vec<usize> = series.iter().map(series_len).collect();
    let total = lens.iter().map(|&n| framed(n)).sum::<usize>()
        + metadata
            .iter()
            .map(|m| framed(m.encoded_len()))
            .sum::<usize>();
    let mut buf = Vec::with_capacity(total);
    for (s, len) in series.iter().zip(lens) {
        // WriteRequest.timeseries = 1; TimeSeries.labels = 1, samples = 2.
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        for l in s.labels.iter() {
            encode_key(1, WireType::LengthDelimited, &mut buf);
            encode_varint(label_len(l) as u64, &mut buf);
            put_string(1, &l.name, &mut buf);
            put_string(2, &l.value, &mut buf);
        }
        for x in &s.samples {
            encode_key(2, WireType::LengthDelimited, &mut buf);
            encode_varint(sample_len(x) as u64, &mut buf);
            // Sample.value = 1 (double), timestamp = 2 (int64).
            if x.v != 0.0 {
                encode_key(1, WireType::SixtyFourBit, &mut buf);
                buf.extend_from_slice(&x.v.to_le_bytes());
            }
            if x.t != 0 {
                encode_key(2, WireType::Varint, &mut buf);
                encode_varint(x.t as u64, &mut buf);
            }
        }
    }
    for m in metadata {
        // WriteRequest.metadata = 3.
        encode_key(3, WireType::LengthDelimited, &mut buf);
        encode_varint(m.encoded_len() as u64, &mut buf);
        // Encoding into a Vec cannot fail: it grows as needed.
        let _ = m.encode(&mut buf);
    }
    buf
}

/// A length-delimited field of `n` bytes with a one-byte key.
fn framed(n: usize) -> usize {
    1 + encoded_len_varint(n as u64) + n
}

fn string_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        framed(s.len())
    }
}

fn put_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

fn label_len(l: &Label) -> usize {
    string_len(&l.name) + string_len(&l.value)
}

fn sample_len(s: &Sample) -> usize {
    // -0.0 == 0.0, so it is left out, as prost leaves it out.
    let value = if s.v != 0.0 { 9 } else { 0 };
    let time = if s.t != 0 {
        1 + encoded_len_varint(s.t as u64)
    } else {
        0
    };
    value + time
}

fn series_len(s: &Series) -> usize {
    let labels: usize = s.labels.iter().map(|l| framed(label_len(l))).sum();
    let samples: usize = s.samples.iter().map(|x| framed(sample_len(x))).sum();
    labels + samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::wire::prom::{TimeSeries, WriteRequest};
    use model::Labels;

    #[test]
    fn equals_what_prost_encodes_for_every_kind_of_value() {
        let long = "x".repeat(300);
        let series = vec![
            Series {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "node")]),
                samples: vec![
                    Sample { t: 0, v: 0.0 },
                    Sample { t: -1, v: -0.0 },
                    Sample {
                        t: i64::MIN,
                        v: f64::NAN,
                    },
                    Sample {
                        t: i64::MAX,
                        v: f64::INFINITY,
                    },
                    Sample {
                        t: 1_700_000_000_000,
                        v: f64::NEG_INFINITY,
                    },
                ],
            },
            Series {
                labels: Labels::from_pairs([("__name__", "long"), ("value", long.as_str())]),
                samples: vec![Sample { t: 5, v: 1.5 }],
            },
            Series {
                labels: Labels::from_pairs([("__name__", "no_samples")]),
                samples: Vec::new(),
            },
            Series {
                labels: Labels::default(),
                samples: vec![Sample { t: 1, v: 2.0 }],
            },
        ];
        let metadata = vec![MetricMetadata {
            r#type: 2,
            metric_family_name: "up".into(),
            help: "h".repeat(300),
            unit: String::new(),
        }];
        for meta in [Vec::new(), metadata] {
            let want = WriteRequest {
                timeseries: series.iter().map(TimeSeries::from_series).collect(),
                metadata: meta.clone(),
            }
            .encode_to_vec();
            let got = encode_write_request(&series, &meta);
            assert_eq!(got, want);
            assert_eq!(got.capacity(), got.len(), "sized up front");
        }
        assert!(encode_write_request(&[], &[]).is_empty());
    }
}
