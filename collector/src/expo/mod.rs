//! The exposition parser: Prometheus text format 0.0.4 and OpenMetrics 1.0, as scraped from
//! `/metrics` endpoints; and (`write.rs`) the text-format writer of the agent's own families.
//!
//! [`parse`] is a pure function from a body to an [`Exposition`]: the metric families (name,
//! type, HELP, UNIT) and their samples (name, labels, value, timestamp in milliseconds,
//! exemplar). Names and unescaped label values borrow from the body; only values with escapes
//! allocate. The first bad line stops the parse with a [`ParseError`] naming the line and the
//! reason, so a scrape can report `up=0` with a cause; nothing here panics on input.
//!
//! The two formats differ in what they accept:
//!
//! | | text 0.0.4 | OpenMetrics 1.0 |
//! |---|---|---|
//! | separators | runs of blanks and tabs | exactly one space |
//! | timestamps | integer milliseconds | seconds, a float |
//! | end | end of input | `# EOF`, nothing after it |
//! | metadata | `HELP`, `TYPE`, other comments ignored | `HELP`, `TYPE`, `UNIT`, before the samples |
//! | checks | syntax | syntax plus the spec's semantics: family grouping, histogram buckets, counter values, exemplar placement and size |
//!
//! In both, a sample's label set is kept as written (not sorted, names checked for
//! duplicates); `_created` samples of OpenMetrics counters, histograms and summaries are
//! returned like any other, marked by their family's type, for the scraper to use or drop.

mod lex;
mod openmetrics;
mod text;
mod write;

#[cfg(test)]
pub(crate) use write::sample_value;
pub(crate) use write::TextWriter;

use std::borrow::Cow;

/// Which exposition format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces; anything but OpenMetrics is read as
    /// text 0.0.4, as Prometheus does.
    pub fn from_content_type(content_type: &str) -> Format {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The declared type of a family. Text 0.0.4's `untyped` is [`MetricKind::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricKind {
    /// The sample-name suffixes a family of this kind owns (OpenMetrics §4 "Metric types").
    pub(crate) fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricKind::Counter => &["_total", "_created"],
            MetricKind::Summary => &["", "_sum", "_count", "_created"],
            MetricKind::Histogram => &["_count", "_sum", "_bucket", "_created"],
            MetricKind::GaugeHistogram => &["_gcount", "_gsum", "_bucket"],
            MetricKind::Info => &["_info"],
            MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown => &[""],
        }
    }
}

/// A label as written: name and unescaped value.
pub type Label<'a> = (&'a str, Cow<'a, str>);

/// A family's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyMeta<'a> {
    /// The family name (for an OpenMetrics counter, without `_total`).
    pub name: &'a str,
    pub kind: MetricKind,
    /// The HELP text, unescaped; empty when absent.
    pub help: Cow<'a, str>,
    /// The UNIT (OpenMetrics only); empty when absent.
    pub unit: &'a str,
}

/// An exemplar attached to a sample (OpenMetrics only).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: Vec<Label<'a>>,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpoSample<'a> {
    /// Index of the sample's family in [`Exposition::families`].
    pub family: usize,
    /// The sample's own name (`http_requests_total`, `latency_bucket`).
    pub name: &'a str,
    pub labels: Vec<Label<'a>>,
    pub value: f64,
    /// Milliseconds since the epoch; OpenMetrics seconds are converted (rounded to the
    /// millisecond, saturating far outside i64's range).
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
}

/// A parsed body: families in order of appearance and every sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition<'a> {
    pub families: Vec<FamilyMeta<'a>>,
    pub samples: Vec<ExpoSample<'a>>,
}

/// Why a body was refused: the 1-based line and what is wrong with it.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Parses a body in `format`.
pub fn parse(body: &str, format: Format) -> Result<Exposition<'_>, ParseError> {
    match format {
        Format::Text => text::parse(body),
        Format::OpenMetrics => openmetrics::parse(body),
    }
}

/// Parses raw bytes: refuses invalid UTF-8 with the line it occurs on, then [`parse`]s.
pub fn parse_bytes(body: &[u8], format: Format) -> Result<Exposition<'_>, ParseError> {
    match std::str::from_utf8(body) {
        Ok(s) => parse(s, format),
        Err(e) => {
            let at = e.valid_up_to();
            let line = 1 + body[..at].iter().filter(|&&b| b == b'\n').count();
            Err(ParseError {
                line,
                reason: format!("invalid UTF-8 at byte {at}"),
            })
        }
    }
}

#[cfg(test)]
mod tests;
