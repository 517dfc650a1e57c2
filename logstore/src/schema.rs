//! The tantivy schema of a log index, and the mapping between log entries and documents.
//!
//! One document per log entry:
//!
//! | field      | options                       | holds                                          |
//! |------------|-------------------------------|------------------------------------------------|
//! | `ts`       | i64, fast                     | nanoseconds since the epoch; range and sort    |
//! | `labels`   | raw terms, indexed            | one `name=value` term per stream label         |
//! | `stream`   | raw term, fast + stored       | the canonical `{a="b", c="d"}` of the stream   |
//! | `line`     | stored                        | the log line; its tokens are in the segment's  |
//! |            |                               | line index file (`line_index/`), which only    |
//! |            |                               | pre-filters (`vigil_line` tokens, `tokens.rs`) |
//! | `metadata` | stored only                   | structured metadata as a JSON array of pairs   |
//! | `bytes`    | u64, fast                     | the line's length: `bytes_over_time` and index |
//! |            |                               | stats read it without loading the line         |
//! | `hash`     | u64, fast                     | hash of (stream, ts, line): duplicate check    |
//!
//! Neither `ts` nor `hash` is an indexed term ([`Layout::V3`]): both are near-unique per
//! document, and building their term dictionaries was most of the cost of indexing. (Nor is
//! `stream`, which nothing looks up.) Nor is `line` ([`Layout::V4`]): tantivy's FST term
//! dictionary of its near-unique tokens was the next third of indexing; Vigil's own line index
//! replaces it. Time
//! ranges filter through the fast field (tantivy's range query does so for any fast field),
//! and the duplicate check keeps the hashes of a written partition in memory (`dedup.rs`).
//! Partitions of the earlier layouts indexed both, and are still read and written as they are.
//!
//! Stored fields go through tantivy's doc store, which compresses blocks of documents (lz4, the
//! crate's default codec). Structured metadata is stored so queries return it, but not indexed:
//! LogQL only filters on it in label-filter stages, which run on the decoded entry.

#[cfg(test)]
use crate::document::EntryDoc;
use crate::tokens::LineIndexing;
use crate::Error;
use model::Labels;
#[cfg(test)]
use model::LogEntry;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value, STORED,
};
use tantivy::tokenizer::RAW_TOKENIZER_NAME;
use tantivy::TantivyDocument;

pub(crate) const TS: &str = "ts";
pub(crate) const LABELS: &str = "labels";
pub(crate) const STREAM: &str = "stream";
pub(crate) const LINE: &str = "line";
pub(crate) const METADATA: &str = "metadata";
pub(crate) const BYTES: &str = "bytes";
pub(crate) const HASH: &str = "hash";

/// Handles on the schema's fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub ts: Field,
    pub labels: Field,
    pub stream: Field,
    pub line: Field,
    pub metadata: Field,
    pub bytes: Field,
    pub hash: Field,
}

/// The schemas a partition may have been written with, oldest first (`FORMAT.md`). Their
/// fields come in the same order, so one [`Fields`] addresses all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Lines tokenized by tantivy's `default` analyzer ([`LineIndexing::Legacy`]); `ts` and
    /// `hash` indexed.
    V1,
    /// Lines tokenized by `vigil_line` ([`LineIndexing::Marked`]); `ts` and `hash` indexed.
    V2,
    /// As V2, with `ts` and `hash` fast fields only and `stream` not indexed.
    V3,
    /// As V3, with `line` stored but not indexed by tantivy: Vigil's line index plugin
    /// (`line_index/`) indexes its tokens, one file per segment. What new partitions get.
    V4,
}

impl Layout {
    pub const CURRENT: Layout = Layout::V4;
    pub const ALL: [Layout; 4] = [Layout::V1, Layout::V2, Layout::V3, Layout::V4];

    /// How the layout's `line` field was tokenized, and where its tokens are.
    pub fn line(self) -> LineIndexing {
        match self {
            Layout::V1 => LineIndexing::Legacy,
            Layout::V2 | Layout::V3 => LineIndexing::Marked,
            Layout::V4 => LineIndexing::Own,
        }
    }

    /// Whether `hash` is an indexed term, which the duplicate check then looks up.
    pub fn hash_indexed(self) -> bool {
        matches!(self, Layout::V1 | Layout::V2)
    }

    /// The layout whose schema `schema` is, if any.
    pub fn of(schema: &Schema) -> Option<Layout> {
        Layout::ALL
            .into_iter()
            .find(|l| Fields::schema_for(*l) == *schema)
    }
}

impl Fields {
    /// The schema every log index is created with.
    pub fn schema() -> Schema {
        Fields::schema_for(Layout::CURRENT)
    }

    /// The schema of a partition written with `layout`.
    pub fn schema_for(layout: Layout) -> Schema {
        let terms = layout.hash_indexed();
        let mut b = Schema::builder();
        let ts = NumericOptions::default().set_fast();
        b.add_i64_field(TS, if terms { ts.set_indexed() } else { ts });
        b.add_text_field(LABELS, raw_terms());
        // Read from the fast field (grouping) and the doc store, never looked up as a term:
        // V3 no longer indexes it (label matchers use `labels`).
        let stream = if terms {
            raw_terms()
        } else {
            TextOptions::default()
        };
        b.add_text_field(STREAM, stream.set_stored().set_fast(RAW_TOKENIZER_NAME));
        // Positions and frequencies are left out: the index answers "which docs contain this
        // token" for the `|=` pre-filter and nothing more, and that keeps postings small.
        let line = TextOptions::default().set_stored();
        b.add_text_field(
            LINE,
            match layout.line() {
                LineIndexing::Own => line,
                indexed => line.set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(indexed.tokenizer_name())
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false),
                ),
            },
        );
        b.add_text_field(METADATA, STORED);
        b.add_u64_field(BYTES, NumericOptions::default().set_fast());
        // Read back only by the duplicate check: V3 keeps a written partition's hashes in
        // memory, read from this column; V1 and V2 look each entry's hash up as a term.
        b.add_u64_field(
            HASH,
            if terms {
                NumericOptions::default().set_indexed()
            } else {
                NumericOptions::default().set_fast()
            },
        );
        b.build()
    }

    /// Looks the fields up in an index's schema (a reopened index brings its own).
    pub fn from_schema(schema: &Schema) -> Result<Fields, Error> {
        Ok(Fields {
            ts: schema.get_field(TS)?,
            labels: schema.get_field(LABELS)?,
            stream: schema.get_field(STREAM)?,
            line: schema.get_field(LINE)?,
            metadata: schema.get_field(METADATA)?,
            bytes: schema.get_field(BYTES)?,
            hash: schema.get_field(HASH)?,
        })
    }

    /// The tantivy document of one entry of a stream, as [`EntryDoc`] indexes it: for tests
    /// that write partitions with tantivy's own writer. `stream` is the canonical label
    /// string, `label_terms` the stream's `name=value` terms, `hash` the entry's
    /// [`crate::dedup::entry_hash`].
    #[cfg(test)]
    pub fn document(
        &self,
        stream: &str,
        label_terms: &[String],
        entry: &LogEntry,
        hash: u64,
    ) -> Result<TantivyDocument, Error> {
        use tantivy::schema::Document as _;
        let shared = std::sync::Arc::new(crate::document::StreamDoc {
            canonical: stream.into(),
            terms: label_terms.to_vec(),
        });
        let line = entry.line.as_str().into();
        Ok(EntryDoc::new(*self, shared, entry, line, hash)?.into_tantivy_document())
    }

    /// The stored part of an entry document. The timestamp is not stored: it comes from the
    /// `ts` fast field, which the query read anyway to order the hits.
    pub fn decode(&self, doc: &TantivyDocument) -> Result<StoredEntry, Error> {
        let text = |field: Field, name: &str| -> Result<String, Error> {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| Error::Index(format!("stored document lacks its {name} field")))
        };
        let metadata = match doc.get_first(self.metadata).and_then(|v| v.as_str()) {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| Error::Index(format!("corrupt stored metadata: {e}")))?,
            None => Vec::new(),
        };
        Ok(StoredEntry {
            stream: text(self.stream, STREAM)?,
            line: text(self.line, LINE)?,
            metadata,
        })
    }
}

fn raw_terms() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(RAW_TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    )
}

/// An entry as read back from the doc store.
#[derive(Debug)]
pub(crate) struct StoredEntry {
    pub stream: String,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// The `labels` term for one label. Label names cannot contain `=`, so the first `=` splits
/// the term unambiguously, and every term of a name shares the prefix `name=`.
pub(crate) fn label_term(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

/// The terms of a whole label set.
pub(crate) fn label_terms(labels: &Labels) -> Vec<String> {
    labels
        .iter()
        .map(|l| label_term(&l.name, &l.value))
        .collect()
}

/// Reads a canonical stream string back into labels.
pub(crate) fn parse_stream(stream: &str) -> Result<Labels, Error> {
    model::parse_label_set(stream)
        .map_err(|e| Error::Index(format!("corrupt stored stream labels: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_round_trip() {
        let fields = Fields::from_schema(&Fields::schema()).unwrap();
        let labels = Labels::from_pairs([("app", "api"), ("env", "prod")]);
        let entry = LogEntry {
            ts_ns: 42,
            line: "GET /x 200".into(),
            metadata: vec![("trace_id".into(), "abc".into())],
        };
        let doc = fields
            .document(&labels.to_string(), &label_terms(&labels), &entry, 7)
            .unwrap();
        let stored = fields.decode(&doc).unwrap();
        assert_eq!(stored.line, entry.line);
        assert_eq!(stored.metadata, entry.metadata);
        assert_eq!(parse_stream(&stored.stream).unwrap(), labels);
        assert_eq!(label_terms(&labels), ["app=api", "env=prod"]);
    }
}
