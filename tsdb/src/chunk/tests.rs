//! Round-trip tests for the chunk encodings: exact bits back for arbitrary values and
//! timestamps, the encoding choice, and corrupt input refused without a panic.

use super::*;
use model::STALE_NAN_BITS;
use proptest::prelude::*;

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

fn series(ts: &[i64], vs: &[f64]) -> Vec<Sample> {
    ts.iter().zip(vs).map(|(&t, &v)| Sample { t, v }).collect()
}

/// Values a chunk must carry exactly: every special float, plus arbitrary bit patterns
/// (which include NaNs with any payload) and decimal-looking numbers.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        any::<u64>().prop_map(f64::from_bits),
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| n as f64),
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| n as f64 / 100.0),
    ]
}

/// Ascending timestamps starting anywhere, with steps from 1 ms to about 12 days and the
/// occasional huge jump.
fn timestamps(n: usize) -> impl Strategy<Value = Vec<i64>> {
    (
        any::<i64>().prop_map(|t| t / 4),
        proptest::collection::vec(
            prop_oneof![1i64..100_000, 1i64..1_000_000_000, Just(15_000)],
            n,
        ),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            steps
                .into_iter()
                .map(|d| {
                    t = t.saturating_add(d);
                    t
                })
                .collect()
        })
}

fn samples() -> impl Strategy<Value = Vec<Sample>> {
    (1usize..=SAMPLES_PER_CHUNK * 2).prop_flat_map(|n| {
        (timestamps(n), proptest::collection::vec(value(), n)).prop_map(|(ts, vs)| series(&ts, &vs))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_samples_round_trip_exactly(samples in samples()) {
        let xor = encode_xor(&samples);
        prop_assert_eq!(bits(&decode(&xor).unwrap()), bits(&samples));
        let best = encode(&samples);
        prop_assert!(best.len() <= xor.len());
        prop_assert_eq!(bits(&decode(&best).unwrap()), bits(&samples));
    }

    #[test]
    fn decimal_values_round_trip_exactly(
        ts in timestamps(120),
        ints in proptest::collection::vec(-10_000_000_000i64..10_000_000_000, 120),
        k in 0u32..=4,
    ) {
        let scale = 10f64.powi(k as i32);
        let vs: Vec<f64> = ints.iter().map(|&n| n as f64 / scale).collect();
        let samples = series(&ts, &vs);
        let enc = decimal::encode(&samples).expect("decimal values qualify");
        prop_assert_eq!(bits(&decode(&enc).unwrap()), bits(&samples));
    }

    #[test]
    fn corrupt_chunks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn specials_round_trip_in_both_positions() {
    let specials = [
        f64::from_bits(STALE_NAN_BITS),
        f64::from_bits(0x7ff8_0000_dead_beef),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        1.5,
    ];
    let ts: Vec<i64> = (0..specials.len() as i64).map(|i| i * 15_000).collect();
    for rotate in 0..specials.len() {
        let mut vs = specials.to_vec();
        vs.rotate_left(rotate);
        let s = series(&ts, &vs);
        assert_eq!(bits(&decode(&encode(&s)).unwrap()), bits(&s));
    }
}

#[test]
fn appender_bytes_decode_after_every_append() {
    let mut app = XorAppender::new();
    let mut want = Vec::new();
    for i in 0..SAMPLES_PER_CHUNK as i64 {
        let s = Sample {
            t: 1_700_000_000_000 + i * 15_000 + (i % 3),
            v: (i as f64).sin(),
        };
        app.append(s.t, s.v);
        want.push(s);
        assert_eq!(bits(&decode(app.bytes()).unwrap()), bits(&want));
    }
    assert_eq!(app.len(), SAMPLES_PER_CHUNK);
}

#[test]
fn encode_picks_decimal_for_counters_and_xor_for_noise() {
    let ts: Vec<i64> = (0..120).map(|i| 1_700_000_000_000 + i * 15_000).collect();
    let cpu: Vec<f64> = (0..120)
        .map(|i| (1_234_567 + i * 1_493 + i % 7) as f64 / 100.0)
        .collect();
    let chunk = encode(&series(&ts, &cpu));
    assert_eq!(header(&chunk).unwrap(), (Encoding::Decimal, 120));
    assert!(chunk.len() < encode_xor(&series(&ts, &cpu)).len() / 2);

    let noise: Vec<f64> = (0..120).map(|i| (i as f64 * 0.37).sin() * 1e-3).collect();
    let chunk = encode(&series(&ts, &noise));
    assert_eq!(header(&chunk).unwrap(), (Encoding::Xor, 120));
}

#[test]
fn constant_series_costs_about_two_bits_per_sample() {
    let ts: Vec<i64> = (0..120).map(|i| 1_700_000_000_000 + i * 15_000).collect();
    let chunk = encode(&series(&ts, &[1.0; 120]));
    // Header, first timestamp and value (19 bytes), the first delta, then 2 bits a sample.
    assert!(
        chunk.len() <= 19 + 3 + 119 * 2 / 8 + 1,
        "{} bytes",
        chunk.len()
    );
}

#[test]
fn damaged_header_and_truncated_stream_are_errors() {
    assert_eq!(decode(&[]), Err(ChunkError::Truncated));
    assert_eq!(decode(&[9, 0, 1]), Err(ChunkError::UnknownEncoding(9)));
    let ts: Vec<i64> = (0..50).map(|i| i * 1000).collect();
    let vs: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
    let chunk = encode(&series(&ts, &vs));
    assert_eq!(
        decode(&chunk[..chunk.len() - 4]),
        Err(ChunkError::Truncated)
    );
}
