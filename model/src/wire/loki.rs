//! Loki push messages (`pkg/push/push.proto`, package `logproto`).

use crate::{parse_label_set, LabelsError, LogEntry, LogStream};

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// Labels in Prometheus's text form, `{app="x", ns="y"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_nanos(ns: i64) -> Self {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }

    pub fn to_nanos(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nanos))
    }
}

impl StreamAdapter {
    /// Converts to the model, parsing the label text.
    pub fn to_stream(&self) -> Result<LogStream, LabelsError> {
        self.clone().into_stream()
    }

    /// Converts to the model, parsing the label text; the lines move, uncopied.
    pub fn into_stream(self) -> Result<LogStream, LabelsError> {
        let labels = parse_label_set(&self.labels)?;
        let entries = self
            .entries
            .into_iter()
            .map(|e| LogEntry {
                ts_ns: e.timestamp.map(Timestamp::to_nanos).unwrap_or(0),
                line: e.line,
                metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            })
            .collect();
        Ok(LogStream { labels, entries })
    }

    /// Builds the wire form of a model stream.
    pub fn from_stream(s: &LogStream) -> Self {
        StreamAdapter {
            labels: s.labels.to_string(),
            entries: s
                .entries
                .iter()
                .map(|e| EntryAdapter {
                    timestamp: Some(Timestamp::from_nanos(e.ts_ns)),
                    line: e.line.clone(),
                    structured_metadata: e
                        .metadata
                        .iter()
                        .map(|(n, v)| LabelPairAdapter {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                })
                .collect(),
            hash: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;
    use prost::Message;

    #[test]
    fn stream_round_trips_through_protobuf() {
        let s = LogStream {
            labels: Labels::from_pairs([("app", "web"), ("namespace", "prod")]),
            entries: vec![LogEntry {
                ts_ns: 1_700_000_000_123_456_789,
                line: "hello \"world\"".into(),
                metadata: vec![("trace_id".into(), "abc".into())],
            }],
        };
        let req = PushRequest {
            streams: vec![StreamAdapter::from_stream(&s)],
        };
        let bytes = req.encode_to_vec();
        let back = PushRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.streams[0].to_stream().unwrap(), s);
    }

    #[test]
    fn negative_timestamps_split_euclidean() {
        let t = Timestamp::from_nanos(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_999));
        assert_eq!(t.to_nanos(), -1);
    }
}
