//! The remote-write request body tests send (protobuf `WriteRequest`, snappy block), shared by
//! the e2e and UI test binaries (each includes this file with `#[path]`).

use model::wire::prom::{Label, TimeSeries, WireSample, WriteRequest};
use prost::Message;

/// Builds a remote-write body from `(label pairs, (t_ms, value) samples)` series.
pub fn write_body<'a, L: AsRef<[(&'a str, &'a str)]>>(series: &[(L, Vec<(i64, f64)>)]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels
                    .as_ref()
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| WireSample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}
