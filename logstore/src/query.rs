//! The query entry points of [`LogStore`]: log queries (with pipelines), metric queries
//! (instant and range), series and index statistics.

use crate::fetch::{ordered_entries, Taken};
use crate::logql::pipeline::{self, Row};
use crate::logql::{parse_expr, Expr, LogQuery, MetricExpr};
use crate::metric::{eval_instant, eval_range, Extractor, Inputs, MetricSeries, Value};
use crate::pending::PendingEntry;
use crate::plan::entries_query;
use crate::scan::all_hits;
use crate::schema::parse_stream;
use crate::store::{Direction, LogStore};
use crate::Error;
use model::{Labels, LogEntry, LogStream, Matcher};
use std::collections::{BTreeSet, HashMap};
use tantivy::TantivyDocument;

/// Most log lines one metric query may turn into samples; beyond, the query fails rather
/// than exhaust memory.
pub const MAX_SAMPLES_PER_QUERY: usize = 20_000_000;

/// Loki's message for an instant query over logs.
pub const INSTANT_LOG_QUERY: &str = "log queries are not supported as an instant query type, please change your query to a range query type";

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Log lines grouped by their labels after the pipeline.
    Streams(Vec<LogStream>),
    /// A range query's series (timestamps in ns).
    Matrix(Vec<MetricSeries>),
    /// An instant query's samples.
    Vector(Vec<(Labels, f64)>),
    Scalar(f64),
}

/// Loki's index statistics for a selector and a time range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    /// Vigil has no chunks; each stream's entries in range count as one.
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// A range query's window and shape.
#[derive(Debug, Clone, Copy)]
pub struct RangeParams {
    pub start_ns: i64,
    pub end_ns: i64,
    pub step_ns: i64,
    /// Log queries only: most entries returned.
    pub limit: usize,
    pub direction: Direction,
}

impl LogStore {
    /// A LogQL log query over `[start_ns, end_ns)`; at most `limit` entries in total, the
    /// newest for `Backward` and the oldest for `Forward`. The result is grouped by stream
    /// (streams sorted by labels), entries in `direction` order.
    pub fn query_range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<LogStream>, Error> {
        match parse_expr(query)? {
            Expr::Log(q) => self.log_query(&q, start_ns, end_ns, limit, direction),
            Expr::Metric(_) => Err(Error::Invalid(
                "a metric query was given where a log query is expected".into(),
            )),
        }
    }

    /// Any LogQL query over a range: streams for log queries, a matrix for metric queries
    /// evaluated at every step from `start_ns` to `end_ns` inclusive.
    pub fn range_query(&self, query: &str, p: RangeParams) -> Result<QueryResult, Error> {
        match parse_expr(query)? {
            Expr::Log(q) => Ok(QueryResult::Streams(self.log_query(
                &q,
                p.start_ns,
                p.end_ns,
                p.limit,
                p.direction,
            )?)),
            Expr::Metric(m) => {
                let inputs = self.metric_inputs(&m, p.start_ns, p.end_ns)?;
                let series = eval_range(&m, &inputs, p.start_ns, p.end_ns, p.step_ns)
                    .map_err(|e| Error::Eval(e.0))?;
                Ok(QueryResult::Matrix(series))
            }
        }
    }

    /// A metric query at one instant; log queries are refused with Loki's message.
    pub fn instant_query(&self, query: &str, t_ns: i64) -> Result<QueryResult, Error> {
        let m = match parse_expr(query)? {
            Expr::Log(_) => return Err(Error::Invalid(INSTANT_LOG_QUERY.into())),
            Expr::Metric(m) => m,
        };
        let inputs = self.metric_inputs(&m, t_ns, t_ns)?;
        Ok(
            match eval_instant(&m, &inputs, t_ns).map_err(|e| Error::Eval(e.0))? {
                Value::Scalar(v) => QueryResult::Scalar(v),
                Value::Vector(v) => QueryResult::Vector(v),
            },
        )
    }

    /// The label sets of the streams matching any of the selectors in `[start_ns, end_ns)`,
    /// sorted and distinct.
    pub fn series(
        &self,
        selectors: &[Vec<Matcher>],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, Error> {
        let mut out = BTreeSet::new();
        for matchers in selectors {
            out.extend(self.streams_in_range(matchers, start_ns, end_ns)?);
        }
        Ok(out.into_iter().collect())
    }

    /// Streams, entries and bytes of the entries matching `matchers` in `[start_ns, end_ns)`,
    /// from fast fields only.
    pub fn index_stats(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<IndexStats, Error> {
        let mut streams: BTreeSet<std::sync::Arc<str>> = BTreeSet::new();
        let mut stats = IndexStats::default();
        for view in self.views(start_ns, end_ns)? {
            for e in view.pending.matching(matchers, start_ns, end_ns) {
                stats.entries += 1;
                stats.bytes += e.line.len() as u64;
                if !streams.contains(&e.stream) {
                    streams.insert(e.stream.clone());
                }
            }
            let Some(q) = self.selector_query(&view.searcher, matchers, start_ns, end_ns)? else {
                continue;
            };
            let hits = all_hits(&view.searcher, &q)?;
            stats.entries += hits.len() as u64;
            stats.bytes += hits.iter().map(|h| h.bytes).sum::<u64>();
            streams.extend(hits.into_iter().map(|h| h.stream));
        }
        stats.streams = streams.len() as u64;
        stats.chunks = stats.streams;
        Ok(stats)
    }

    pub(crate) fn log_query(
        &self,
        q: &LogQuery,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<LogStream>, Error> {
        if limit == 0 || start_ns >= end_ns {
            return Ok(Vec::new());
        }
        let pushed = q.leading_line_filters();
        let filtered = !q.pipeline.is_empty();
        let mut views = self.views(start_ns, end_ns)?;
        // Partitions never overlap in time, so reading them one after the other in the
        // query's direction yields the entries in order, and the limit carries across.
        if direction == Direction::Backward {
            views.reverse();
        }
        let mut out = LogCollector {
            query: q,
            limit,
            accepted: 0,
            streams: HashMap::new(),
            groups: HashMap::new(),
        };
        for view in views {
            if out.full() {
                break;
            }
            // The partition's pending entries, in the query's order, are merged into the
            // committed ones as those stream by. At equal timestamps they come last, as they
            // will once committed (tantivy orders ties by doc address).
            let mut pending: Vec<&PendingEntry> = view
                .pending
                .matching(&q.matchers, start_ns, end_ns)
                .collect();
            match direction {
                Direction::Forward => pending.sort_by_key(|e| e.ts_ns),
                Direction::Backward => pending.sort_by_key(|e| std::cmp::Reverse(e.ts_ns)),
            }
            let mut pending = pending.into_iter().peekable();
            let query = entries_query(
                &view.searcher,
                &self.core.fields,
                view.line,
                Some(self.terms_of(&view)),
                &q.matchers,
                &pushed,
                start_ns,
                end_ns,
            )?;
            if let Some(tq) = query {
                ordered_entries(
                    &view.searcher,
                    &self.core.fields,
                    &tq,
                    filtered,
                    limit - out.accepted,
                    direction,
                    &mut |ts, stored| {
                        while let Some(e) = pending.next_if(|e| match direction {
                            Direction::Forward => e.ts_ns < ts,
                            Direction::Backward => e.ts_ns > ts,
                        }) {
                            if out.take_pending(e)? == Taken::Done {
                                return Ok(Taken::Done);
                            }
                        }
                        let labels = stream_labels(&mut out.streams, &stored.stream)?;
                        out.take(ts, &labels, &stored.line, stored.metadata)
                    },
                )?;
            }
            for e in pending {
                if out.take_pending(e)? == Taken::Done {
                    break;
                }
            }
        }
        let mut out: Vec<LogStream> = out
            .groups
            .into_iter()
            .map(|(labels, entries)| LogStream { labels, entries })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        tracing::debug!(query = %q, streams = out.len(), "log query");
        Ok(out)
    }

    /// Reads, for every range aggregation of `m`, the entries its windows cover over the
    /// evaluation span `[first_t, last_t]`, and turns them into samples.
    fn metric_inputs(&self, m: &MetricExpr, first_t: i64, last_t: i64) -> Result<Inputs, Error> {
        let mut ranges = Vec::new();
        collect_ranges(m, &mut ranges);
        let mut inputs = Inputs::new();
        for (id, op, range, grouping) in ranges {
            // Windows are (t - offset - range, t - offset]; the store's bounds are [start, end).
            let start = first_t
                .saturating_sub(range.offset_ns)
                .saturating_sub(range.range_ns)
                .saturating_add(1);
            let end = last_t.saturating_sub(range.offset_ns).saturating_add(1);
            let mut ex = Extractor::new(op, range, grouping, MAX_SAMPLES_PER_QUERY);
            let pushed = range.query.leading_line_filters();
            // Counting needs neither the line nor its metadata when no stage runs.
            let needs_doc = !range.query.pipeline.is_empty()
                || range.unwrap.is_some()
                || !range.post_unwrap.is_empty();
            let mut streams: HashMap<String, Labels> = HashMap::new();
            let mut read = 0usize;
            for view in self.views(start, end)? {
                for e in view.pending.matching(&range.query.matchers, start, end) {
                    read += 1;
                    let entry = LogEntry {
                        ts_ns: e.ts_ns,
                        line: e.line.to_string(),
                        metadata: e.metadata.clone(),
                    };
                    ex.push(&e.labels, &entry).map_err(|e| Error::Eval(e.0))?;
                }
                let Some(q) = entries_query(
                    &view.searcher,
                    &self.core.fields,
                    view.line,
                    Some(self.terms_of(&view)),
                    &range.query.matchers,
                    &pushed,
                    start,
                    end,
                )?
                else {
                    continue;
                };
                let searcher = &view.searcher;
                let hits = all_hits(searcher, &q)?;
                read += hits.len();
                if read > MAX_SAMPLES_PER_QUERY {
                    return Err(Error::Eval(format!(
                        "the query reads more than {MAX_SAMPLES_PER_QUERY} log lines; narrow the selector or the time range"
                    )));
                }
                for hit in hits {
                    let labels = stream_labels(&mut streams, &hit.stream)?;
                    let entry = if needs_doc {
                        let doc: TantivyDocument = searcher.doc(hit.address)?;
                        let stored = self.core.fields.decode(&doc)?;
                        LogEntry {
                            ts_ns: hit.ts,
                            line: stored.line,
                            metadata: stored.metadata,
                        }
                    } else {
                        LogEntry {
                            ts_ns: hit.ts,
                            // Only its length is read (bytes_over_time).
                            line: " ".repeat(hit.bytes as usize),
                            metadata: Vec::new(),
                        }
                    };
                    ex.push(&labels, &entry).map_err(|e| Error::Eval(e.0))?;
                }
            }
            inputs.insert(id, ex.finish());
        }
        Ok(inputs)
    }
}

type RangeRef<'a> = (
    usize,
    crate::logql::RangeOp,
    &'a crate::logql::LogRange,
    Option<&'a crate::logql::Grouping>,
);

fn collect_ranges<'a>(m: &'a MetricExpr, out: &mut Vec<RangeRef<'a>>) {
    match m {
        MetricExpr::Range {
            id,
            op,
            range,
            grouping,
            ..
        } => out.push((*id, *op, range, grouping.as_ref())),
        MetricExpr::Vector { expr, .. } | MetricExpr::LabelReplace { expr, .. } => {
            collect_ranges(expr, out)
        }
        MetricExpr::Binary { lhs, rhs, .. } => {
            collect_ranges(lhs, out);
            collect_ranges(rhs, out);
        }
        MetricExpr::Literal(_) | MetricExpr::VectorLiteral(_) => {}
    }
}

/// A log query's answer as it is gathered: entries run through the pipeline and grouped by
/// their labels after it, until `limit` are kept.
struct LogCollector<'q> {
    query: &'q LogQuery,
    limit: usize,
    accepted: usize,
    /// Stream labels by canonical string, parsed once per query.
    streams: HashMap<String, Labels>,
    groups: HashMap<Labels, Vec<LogEntry>>,
}

impl LogCollector<'_> {
    fn full(&self) -> bool {
        self.accepted >= self.limit
    }

    fn take_pending(&mut self, e: &PendingEntry) -> Result<Taken, Error> {
        if self.full() {
            return Ok(Taken::Done);
        }
        self.take(e.ts_ns, &e.labels, &e.line, e.metadata.clone())
    }

    /// Runs one entry through the pipeline and keeps it if it passes; `Done` once `limit`
    /// entries are kept.
    fn take(
        &mut self,
        ts: i64,
        labels: &Labels,
        line: &str,
        metadata: Vec<(String, String)>,
    ) -> Result<Taken, Error> {
        let mut row = Row::new(ts, line, labels, &metadata);
        if !pipeline::run(&self.query.pipeline, &mut row) {
            return Ok(Taken::Dropped);
        }
        // Structured metadata stays on the entry rather than in the stream labels.
        for (k, v) in &metadata {
            if labels.get(k).is_none() && row.get(k) == Some(v.as_str()) {
                row.labels.remove(k);
            }
        }
        self.groups
            .entry(row.label_set())
            .or_default()
            .push(LogEntry {
                ts_ns: ts,
                line: row.line,
                metadata,
            });
        self.accepted += 1;
        Ok(if self.full() {
            Taken::Done
        } else {
            Taken::Kept
        })
    }
}

/// The labels of a canonical stream string, parsed once per query.
fn stream_labels(cache: &mut HashMap<String, Labels>, stream: &str) -> Result<Labels, Error> {
    if let Some(l) = cache.get(stream) {
        return Ok(l.clone());
    }
    let l = parse_stream(stream)?;
    cache.insert(stream.to_string(), l.clone());
    Ok(l)
}
