//! Prometheus remote write 1.0 messages (`prompb/types.proto`, `prompb/remote.proto`).
//! Native histograms (field 4 of `TimeSeries`) are not decoded: prost skips unknown fields.

use crate::{Labels, LabelsError, Sample, Series};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `MetricMetadata.MetricType`: UNKNOWN=0 COUNTER=1 GAUGE=2 HISTOGRAM=3 GAUGEHISTOGRAM=4
/// SUMMARY=5 INFO=6 STATESET=7.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

impl TimeSeries {
    /// Converts to the model, validating label names and refusing duplicates.
    pub fn to_series(&self) -> Result<Series, LabelsError> {
        let labels = Labels::try_from_pairs(
            self.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )?;
        let samples = self
            .samples
            .iter()
            .map(|s| Sample {
                t: s.timestamp,
                v: s.value,
            })
            .collect();
        Ok(Series { labels, samples })
    }

    /// Builds the wire form of a model series.
    pub fn from_series(s: &Series) -> Self {
        TimeSeries {
            labels: s
                .labels
                .iter()
                .map(|l| Label {
                    name: l.name.clone(),
                    value: l.value.clone(),
                })
                .collect(),
            samples: s
                .samples
                .iter()
                .map(|x| WireSample {
                    value: x.v,
                    timestamp: x.t,
                })
                .collect(),
            exemplars: Vec::new(),
        }
    }
}
