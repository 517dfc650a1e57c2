//! The document the index writer is handed for one log entry: it borrows what the entry
//! shares with the rest of its push instead of copying it.
//!
//! tantivy's own `TantivyDocument` owns a copy of every value. For a log entry that meant
//! copying the stream's `name=value` terms and its canonical label string into every document
//! (most of its bytes besides the line), and dropping them again once indexed: 8% and 3% of an ingest
//! profile's samples (`perf record` on `cargo bench -p logstore --bench grep -- --mib 512`). An [`EntryDoc`] holds the stream's [`StreamDoc`], built once per stream of a
//! push, and the line in the same `Arc<str>` the pending set keeps for queries, so a line is
//! copied once on its way in. What tantivy sees is the same fields with the same values
//! ([`crate::schema`]): partitions written either way read alike.

use crate::schema::{label_terms, Fields};
use crate::Error;
use model::{Labels, LogEntry};
use std::sync::Arc;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value};
use tantivy::schema::{Document, Field};

/// What every entry of one stream indexes alike.
#[derive(Debug)]
pub(crate) struct StreamDoc {
    /// The canonical `{a="b", c="d"}` string (`stream` field).
    pub canonical: Arc<str>,
    /// One `name=value` term per label (`labels` field).
    pub terms: Vec<String>,
}

impl StreamDoc {
    pub fn new(labels: &Labels) -> StreamDoc {
        StreamDoc {
            canonical: labels.to_string().into(),
            terms: label_terms(labels),
        }
    }
}

/// One log entry as a tantivy document.
#[derive(Debug)]
pub(crate) struct EntryDoc {
    fields: Fields,
    stream: Arc<StreamDoc>,
    ts_ns: i64,
    hash: u64,
    line: Arc<str>,
    /// Structured metadata as stored: a JSON array of pairs, absent when there is none.
    metadata: Option<String>,
}

impl EntryDoc {
    /// The document of `entry` of `stream`, whose line is `line` (the entry's, shared);
    /// `hash` is the entry's [`crate::dedup::entry_hash`].
    pub fn new(
        fields: Fields,
        stream: Arc<StreamDoc>,
        entry: &LogEntry,
        line: Arc<str>,
        hash: u64,
    ) -> Result<EntryDoc, Error> {
        let metadata = if entry.metadata.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&entry.metadata)
                    .map_err(|e| Error::Invalid(format!("structured metadata: {e}")))?,
            )
        };
        Ok(EntryDoc {
            fields,
            stream,
            ts_ns: entry.ts_ns,
            hash,
            line,
            metadata,
        })
    }

    /// The line, for the line index.
    pub fn line(&self) -> &str {
        &self.line
    }
}

/// A value of an [`EntryDoc`]: text borrowed from it, or a number.
#[derive(Debug, Clone)]
pub(crate) enum EntryValue<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
}

impl<'a> Value<'a> for EntryValue<'a> {
    type ArrayIter = std::iter::Empty<Self>;
    type ObjectIter = std::iter::Empty<(&'a str, Self)>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        ReferenceValue::Leaf(match *self {
            EntryValue::Str(s) => ReferenceValueLeaf::Str(s),
            EntryValue::U64(n) => ReferenceValueLeaf::U64(n),
            EntryValue::I64(n) => ReferenceValueLeaf::I64(n),
        })
    }
}

/// The fields of an [`EntryDoc`] in schema order (`ts`, each label term, `stream`, `line`,
/// `metadata` when present, `bytes`, `hash`), so tantivy's sort by field finds them sorted.
pub(crate) struct EntryValues<'a> {
    doc: &'a EntryDoc,
    /// The next value: 0 is `ts`, then one per label term, then the fields after them.
    next: usize,
}

impl<'a> Iterator for EntryValues<'a> {
    type Item = (Field, EntryValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let d = self.doc;
        let f = &d.fields;
        let terms = d.stream.terms.len();
        let i = self.next;
        self.next += 1;
        if i == 0 {
            return Some((f.ts, EntryValue::I64(d.ts_ns)));
        }
        if i <= terms {
            return Some((f.labels, EntryValue::Str(&d.stream.terms[i - 1])));
        }
        match i - terms {
            1 => Some((f.stream, EntryValue::Str(&d.stream.canonical))),
            2 => Some((f.line, EntryValue::Str(&d.line))),
            3 => match &d.metadata {
                Some(json) => Some((f.metadata, EntryValue::Str(json))),
                None => self.next(),
            },
            4 => Some((f.bytes, EntryValue::U64(d.line.len() as u64))),
            5 => Some((f.hash, EntryValue::U64(d.hash))),
            _ => {
                self.next = i;
                None
            }
        }
    }
}

impl Document for EntryDoc {
    type Value<'a> = EntryValue<'a>;
    type FieldsValuesIter<'a> = EntryValues<'a>;

    fn iter_fields_and_values(&self) -> EntryValues<'_> {
        EntryValues { doc: self, next: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::TantivyDocument;

    fn doc(metadata: Vec<(String, String)>) -> EntryDoc {
        let fields = Fields::from_schema(&Fields::schema()).unwrap();
        let labels = Labels::from_pairs([("app", "api"), ("env", "prod")]);
        let entry = LogEntry {
            ts_ns: 42,
            line: "GET /x 200".into(),
            metadata,
        };
        let line: Arc<str> = entry.line.as_str().into();
        EntryDoc::new(fields, Arc::new(StreamDoc::new(&labels)), &entry, line, 7).unwrap()
    }

    #[test]
    fn an_entry_document_is_the_tantivy_document_of_its_fields() {
        let fields = Fields::from_schema(&Fields::schema()).unwrap();
        for metadata in [vec![], vec![("trace_id".to_string(), "abc".to_string())]] {
            let d = doc(metadata.clone());
            let values: Vec<(Field, EntryValue<'_>)> = d.iter_fields_and_values().collect();
            // Schema order, as the writer groups them.
            assert!(values.windows(2).all(|w| w[0].0 <= w[1].0));
            let tantivy: TantivyDocument = doc(metadata.clone()).into_tantivy_document();
            let stored = fields.decode(&tantivy).unwrap();
            assert_eq!(stored.line, "GET /x 200");
            assert_eq!(stored.stream, r#"{app="api", env="prod"}"#);
            assert_eq!(stored.metadata, metadata);
            let first = |f: Field| tantivy.get_first(f).map(|v| format!("{:?}", v.as_leaf()));
            assert_eq!(first(fields.ts), Some("Some(I64(42))".into()));
            assert_eq!(first(fields.hash), Some("Some(U64(7))".into()));
            assert_eq!(first(fields.bytes), Some("Some(U64(10))".into()));
            let terms: Vec<&str> = tantivy
                .get_all(fields.labels)
                .filter_map(|v| v.as_str())
                .collect();
            assert_eq!(terms, ["app=api", "env=prod"]);
            assert_eq!(values.len(), 7 + usize::from(!metadata.is_empty()));
        }
    }
}
