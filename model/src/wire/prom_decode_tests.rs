//! The borrowing decoder against the reference it replaces: prost's `WriteRequest` decode,
//! `TimeSeries::to_series` and the receiver's empty-set and label-count checks, on generated
//! requests, on mutations of them, and on a table of hand-framed bodies.

use super::*;
use crate::wire::prom::{Exemplar, Label, TimeSeries, WireSample, WriteRequest};
use crate::Series;
use prost::Message;

const MAX_LABELS: usize = 6;

/// Whether a request was accepted, and with what; errors compared by kind where the texts
/// are prost's own.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Vec<Series>, Vec<MetricMetadata>),
    Protobuf,
    Refused(WriteDecodeError),
}

/// What the receiver did before this decoder existed.
fn reference(body: &[u8]) -> Outcome {
    let Ok(req) = WriteRequest::decode(body) else {
        return Outcome::Protobuf;
    };
    let mut out = Vec::new();
    for ts in &req.timeseries {
        let series = match ts.to_series() {
            Ok(s) => s,
            Err(e) => return Outcome::Refused(WriteDecodeError::Labels(e)),
        };
        if series.labels.is_empty() {
            return Outcome::Refused(WriteDecodeError::EmptyLabelSet);
        }
        if series.labels.len() > MAX_LABELS {
            return Outcome::Refused(WriteDecodeError::TooManyLabels {
                count: series.labels.len(),
                labels: series.labels,
                limit: MAX_LABELS,
            });
        }
        out.push(series);
    }
    Outcome::Ok(out, req.metadata)
}

fn borrowed(body: &[u8]) -> Outcome {
    match decode_write_request(body, MAX_LABELS) {
        Ok((batch, metadata)) => Outcome::Ok(batch.to_series(), metadata),
        Err(WriteDecodeError::Protobuf(_)) => Outcome::Protobuf,
        Err(e) => Outcome::Refused(e),
    }
}

fn assert_same(body: &[u8], what: &str) {
    assert_eq!(borrowed(body), reference(body), "{what}: body {body:02x?}");
}

/// One of `items`, chosen by `rng`.
fn pick<'x>(rng: &mut fastrand::Rng, items: &[&'x str]) -> &'x str {
    items[rng.usize(..items.len())]
}

const NAMES: &[&str] = &[
    "__name__", "job", "instance", "le", "a", "b_2", "zone", "_x", "0bad", "", "a-b", "é",
];
const VALUES: &[&str] = &["", "1", "node", "x\"y", "ünï", "http_requests_total", "a b"];

fn generated(rng: &mut fastrand::Rng) -> WriteRequest {
    let series = (0..rng.usize(..5))
        .map(|_| {
            // Mostly valid label sets, so that the valid path is exercised as often as the
            // refusals.
            let valid = rng.usize(..3) > 0;
            let names = if valid { &NAMES[..8] } else { NAMES };
            let labels = (0..rng.usize(..9))
                .map(|_| Label {
                    name: pick(rng, names).to_string(),
                    value: pick(rng, VALUES).to_string(),
                })
                .collect::<Vec<_>>();
            let mut labels = labels;
            if valid {
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                labels.dedup_by(|a, b| a.name == b.name);
            }
            TimeSeries {
                labels,
                samples: (0..rng.usize(..4))
                    .map(|_| WireSample {
                        // Any bits but NaN's, which would not compare equal to themselves.
                        value: Some(f64::from_bits(rng.u64(..)))
                            .filter(|v| !v.is_nan())
                            .unwrap_or(0.5),
                        timestamp: rng.u64(..) as i64,
                    })
                    .collect(),
                exemplars: (0..rng.usize(..2))
                    .map(|_| Exemplar {
                        labels: vec![Label {
                            name: "trace_id".to_string(),
                            value: "abc".to_string(),
                        }],
                        value: 1.5,
                        timestamp: 7,
                    })
                    .collect(),
            }
        })
        .collect();
    let metadata = (0..rng.usize(..2))
        .map(|_| MetricMetadata {
            r#type: rng.usize(..8) as i32,
            metric_family_name: pick(rng, VALUES).to_string(),
            help: "help text".to_string(),
            unit: pick(rng, VALUES).to_string(),
        })
        .collect();
    WriteRequest {
        timeseries: series,
        metadata,
    }
}

#[test]
fn generated_requests_decode_as_prost_and_to_series_do() {
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..3000 {
        let body = generated(&mut rng).encode_to_vec();
        assert_same(&body, &format!("request {i}"));
        match reference(&body) {
            Outcome::Ok(..) => accepted += 1,
            _ => refused += 1,
        }
    }
    // The generator must reach both sides, or the comparison proves little.
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn mutated_requests_are_refused_or_accepted_as_prost_does() {
    let mut rng = fastrand::Rng::with_seed(0xD1B5_4A32_D192_ED03);
    for i in 0..3000 {
        let mut body = generated(&mut rng).encode_to_vec();
        if body.is_empty() {
            continue;
        }
        match rng.usize(..4) {
            0 => {
                let at = rng.usize(..body.len());
                body[at] ^= 1 << rng.usize(..8);
            }
            1 => body.truncate(rng.usize(..body.len())),
            2 => {
                let at = rng.usize(..body.len());
                body[at] = rng.u64(..) as u8;
            }
            _ => {
                let at = rng.usize(..body.len() + 1);
                body.insert(at, rng.u64(..) as u8);
            }
        }
        assert_same(&body, &format!("mutation {i}"));
    }
}

/// Protobuf framing by hand, for bodies prost's encoder would never write.
fn key(field: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(field << 3 | u32::from(wire_type)))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    [
        key(number, LEN),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}

fn label(name: &[u8], value: &[u8]) -> Vec<u8> {
    [field(1, name), field(2, value)].concat()
}

#[test]
fn hand_framed_bodies_decode_as_prost_does() {
    let up = field(1, &label(b"__name__", b"up"));
    let sample = field(2, &[key(1, FIXED64), 1f64.to_le_bytes().to_vec()].concat());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        (
            "one series",
            field(1, &[up.clone(), sample.clone()].concat()),
        ),
        (
            "unknown fields everywhere (varint, fixed32, fixed64, bytes, group)",
            [
                [key(9, VARINT), varint(300)].concat(),
                field(
                    1,
                    &[
                        up.clone(),
                        field(4, b"native histogram"),
                        [key(7, FIXED32), vec![1, 2, 3, 4]].concat(),
                        sample.clone(),
                    ]
                    .concat(),
                ),
                [
                    key(5, START_GROUP),
                    key(1, VARINT),
                    vec![1],
                    key(5, END_GROUP),
                ]
                .concat(),
                [key(6, FIXED64), vec![0; 8]].concat(),
            ]
            .concat(),
        ),
        (
            "a group closed by another field's end tag",
            [key(5, START_GROUP), key(6, END_GROUP)].concat(),
        ),
        ("a stray end group", key(5, END_GROUP)),
        ("wire type 6", key(5, 6)),
        ("field number 0", key(0, VARINT)),
        ("series as a varint", [key(1, VARINT), varint(1)].concat()),
        (
            "sample value as a varint",
            field(
                1,
                &[up.clone(), field(2, &[key(1, VARINT), vec![1]].concat())].concat(),
            ),
        ),
        (
            "label name not UTF-8",
            field(
                1,
                &[field(1, &label(b"\xff", b"x")), sample.clone()].concat(),
            ),
        ),
        (
            "label value not UTF-8",
            field(
                1,
                &[field(1, &label(b"a", b"\xc3")), sample.clone()].concat(),
            ),
        ),
        (
            "exemplar label not UTF-8",
            field(
                1,
                &[up.clone(), field(3, &field(1, &label(b"t", b"\xff")))].concat(),
            ),
        ),
        (
            "metadata help not UTF-8",
            field(3, &[key(1, VARINT), vec![2], field(4, b"\xfe")].concat()),
        ),
        (
            "a label name sent twice keeps the last",
            field(
                1,
                &field(
                    1,
                    &[field(1, b"0bad"), field(1, b"job"), field(2, b"x")].concat(),
                ),
            ),
        ),
        (
            "length past the end",
            [key(1, LEN), varint(50), up.clone()].concat(),
        ),
        (
            "an eleven-byte varint",
            [key(9, VARINT), vec![0xff; 10], vec![1]].concat(),
        ),
        (
            "a ten-byte varint over 64 bits",
            [key(9, VARINT), vec![0xff; 9], vec![2]].concat(),
        ),
        (
            "a ten-byte varint",
            [key(9, VARINT), vec![0xff; 9], vec![1]].concat(),
        ),
        ("series without labels", field(1, &sample)),
        (
            "series whose labels are all empty",
            field(1, &[field(1, &label(b"a", b"")), sample.clone()].concat()),
        ),
        (
            "an invalid name with an empty value still refuses",
            field(1, &[up.clone(), field(1, &label(b"1x", b""))].concat()),
        ),
        (
            "duplicate name, one of them empty",
            field(
                1,
                &[field(1, &label(b"a", b"")), field(1, &label(b"a", b"1"))].concat(),
            ),
        ),
        (
            "unsorted labels are sorted",
            field(
                1,
                &[field(1, &label(b"z", b"1")), up.clone(), sample.clone()].concat(),
            ),
        ),
        (
            "a bad label set in a later series loses to bad protobuf after it",
            [field(1, &field(1, &label(b"0", b"1"))), key(5, 7)].concat(),
        ),
    ];
    for (what, body) in cases {
        assert_same(&body, what);
    }
}

#[test]
fn refusals_read_as_the_receiver_always_answered() {
    let too_many = TimeSeries {
        labels: (0..7)
            .map(|i| Label {
                name: format!("l{i}"),
                value: "v".to_string(),
            })
            .collect(),
        samples: vec![],
        exemplars: vec![],
    };
    let body = WriteRequest {
        timeseries: vec![too_many],
        metadata: vec![],
    }
    .encode_to_vec();
    let err = decode_write_request(&body, MAX_LABELS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series {l0=\"v\", l1=\"v\", l2=\"v\", l3=\"v\", l4=\"v\", l5=\"v\", l6=\"v\"} has 7 labels, more than the limit of 6"
    );
    let err = decode_write_request(&field(1, &field(1, &label(b"a.b", b"1"))), 6).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid series: invalid label name \"a.b\""
    );
    let err = decode_write_request(&field(1, &[]), 6).unwrap_err();
    assert_eq!(err.to_string(), "invalid series: empty label set");
    let err = decode_write_request(&key(5, END_GROUP), 6).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("decode protobuf WriteRequest: "),
        "{err}"
    );
}
