//! OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): the syntax (single
//! spaces, `# EOF`, float-second timestamps, exemplars) and the semantic rules of the
//! specification that the OpenMetrics project's parser test suite checks:
//!
//! - metadata (`HELP`, `TYPE`, `UNIT`) at most once per family and before its samples;
//!   a `UNIT` must be the name's suffix and is not allowed on info and stateset families;
//! - a family's samples are contiguous and carry the names its type allows (`_total`,
//!   `_bucket`, …), and no two families claim the same sample name;
//! - within a family, each group of samples (a series with its buckets or quantiles) is
//!   contiguous, its timestamps all present or all absent and never going backwards;
//! - counter-like samples are neither NaN nor negative; `le` and `quantile` are numbers in
//!   canonical infinity spelling; stateset values are 0 or 1 and info values 1;
//! - histogram buckets increase in `le` and in value and end with `+Inf`, which equals
//!   `_count`; `_sum` goes with `_count` and not with negative buckets;
//! - exemplars only on counter `_total` and (gauge)histogram `_bucket` samples.

use std::borrow::Cow;
use std::collections::HashSet;

use super::lex::{help_text, is_metric_name, Cursor};
use super::{ExpoSample, Exposition, FamilyMeta, Label, MetricKind, ParseError};

/// A sample's group: its labels without the one that tells its buckets, quantiles or states
/// apart, sorted.
type GroupKey<'a> = Vec<Label<'a>>;

/// The family being read.
struct Current<'a> {
    /// Index in `Exposition::families`.
    idx: usize,
    name: &'a str,
    kind: Option<MetricKind>,
    help: Option<Cow<'a, str>>,
    unit: Option<&'a str>,
    /// Index in `Exposition::samples` of the family's first sample.
    first_sample: usize,
    has_samples: bool,
    group: Option<GroupKey<'a>>,
    group_ts: Option<f64>,
    seen_groups: HashSet<GroupKey<'a>>,
    /// Series already seen at `group_ts` in this group, to drop exact duplicates.
    group_series: HashSet<(&'a str, GroupKey<'a>)>,
}

impl<'a> Current<'a> {
    fn new(idx: usize, name: &'a str, first_sample: usize) -> Self {
        Current {
            idx,
            name,
            kind: None,
            help: None,
            unit: None,
            first_sample,
            has_samples: false,
            group: None,
            group_ts: None,
            seen_groups: HashSet::new(),
            group_series: HashSet::new(),
        }
    }

    fn kind(&self) -> MetricKind {
        self.kind.unwrap_or(MetricKind::Unknown)
    }

    /// Whether a sample called `name` belongs to this family. Before a TYPE only the
    /// family's own name does.
    fn allows(&self, name: &str) -> bool {
        match self.kind {
            None => name == self.name,
            Some(k) => name
                .strip_prefix(self.name)
                .is_some_and(|suffix| k.suffixes().contains(&suffix)),
        }
    }
}

struct Parser<'a> {
    out: Exposition<'a>,
    current: Option<Current<'a>>,
    /// Every sample name a finished family claimed, to refuse clashes.
    claimed: HashSet<String>,
}

pub(super) fn parse(body: &str) -> Result<Exposition<'_>, ParseError> {
    let mut p = Parser {
        out: Exposition::default(),
        current: None,
        claimed: HashSet::new(),
    };
    // One final newline after `# EOF` is allowed; any other empty line is a blank line.
    let trimmed = body.strip_suffix('\n').unwrap_or(body);
    let mut eof_at = None;
    for (i, line) in trimmed.split('\n').enumerate() {
        let n = i + 1;
        let err = |reason: String| ParseError { line: n, reason };
        if eof_at.is_some() {
            return Err(err("text after # EOF".into()));
        }
        if line.is_empty() {
            return Err(err("blank line".into()));
        }
        if line == "# EOF" {
            eof_at = Some(n);
        } else if line.starts_with('#') {
            p.metadata(line).map_err(err)?;
        } else {
            p.sample(line).map_err(err)?;
        }
    }
    let Some(eof_line) = eof_at else {
        return Err(ParseError {
            line: trimmed.split('\n').count(),
            reason: "missing # EOF at the end".into(),
        });
    };
    p.finish_family().map_err(|reason| ParseError {
        line: eof_line,
        reason,
    })?;
    Ok(p.out)
}

impl<'a> Parser<'a> {
    /// Makes `name` the current family unless it already is, finishing the previous one.
    fn switch_to(&mut self, name: &'a str) -> Result<(), String> {
        if self.current.as_ref().is_some_and(|c| c.name == name) {
            return Ok(());
        }
        self.finish_family()?;
        self.out.families.push(FamilyMeta {
            name,
            kind: MetricKind::Unknown,
            help: "".into(),
            unit: "",
        });
        self.current = Some(Current::new(
            self.out.families.len() - 1,
            name,
            self.out.samples.len(),
        ));
        Ok(())
    }

    /// `# HELP name text`, `# TYPE name type` or `# UNIT name unit`.
    fn metadata(&mut self, line: &'a str) -> Result<(), String> {
        let parts: Vec<&'a str> = line.splitn(4, ' ').collect();
        let [hash, keyword, name, arg] = parts[..] else {
            return Err(format!(
                "invalid metadata line {:?}",
                super::lex::clip(line)
            ));
        };
        if hash != "#" || !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
            return Err(format!(
                "invalid metadata line {:?}",
                super::lex::clip(line)
            ));
        }
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.name == name && c.has_samples)
        {
            return Err(format!("{keyword} for {name} after its samples"));
        }
        self.switch_to(name)?;
        let Some(c) = self.current.as_mut() else {
            return Err("internal: no current family".into());
        };
        match keyword {
            "HELP" => {
                if c.help.is_some() {
                    return Err(format!("second HELP for {name}"));
                }
                c.help = Some(help_text(arg));
            }
            "TYPE" => {
                if c.kind.is_some() {
                    return Err(format!("second TYPE for {name}"));
                }
                c.kind = Some(match arg {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "histogram" => MetricKind::Histogram,
                    "gaugehistogram" => MetricKind::GaugeHistogram,
                    "summary" => MetricKind::Summary,
                    "info" => MetricKind::Info,
                    "stateset" => MetricKind::StateSet,
                    "unknown" => MetricKind::Unknown,
                    other => return Err(format!("invalid TYPE {other:?} for {name}")),
                });
            }
            _ => {
                if c.unit.is_some() {
                    return Err(format!("second UNIT for {name}"));
                }
                c.unit = Some(arg);
            }
        }
        Ok(())
    }

    fn sample(&mut self, line: &'a str) -> Result<(), String> {
        let mut cur = Cursor::new(line, true);
        let name = cur.metric_name()?;
        let labels = if cur.rest().starts_with('{') {
            cur.labels()?
        } else {
            Vec::new()
        };
        let tail = cur.tail()?;
        let ts = tail.timestamp.map(|t| match t {
            super::lex::Stamp::Seconds(s) => s,
            super::lex::Stamp::Millis(ms) => ms as f64 / 1000.0,
        });

        if !self.current.as_ref().is_some_and(|c| c.allows(name)) {
            self.switch_to_unknown(name)?;
        }
        let Some(c) = self.current.as_mut() else {
            return Err("internal: no current family".into());
        };
        let kind = c.kind();
        let fam = c.name;
        let label = |n: &str| {
            labels
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_ref())
        };
        let suffix = &name[fam.len()..];

        if kind == MetricKind::StateSet && label(fam).is_none() {
            return Err(format!("stateset sample without the {fam:?} label"));
        }
        if suffix == "_bucket" && matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram)
        {
            match label("le").map(bound) {
                Some(Some(b)) if !b.is_nan() => {}
                _ => return Err(format!("invalid or missing le label on {name}")),
            }
        }
        if kind == MetricKind::Summary && suffix.is_empty() {
            match label("quantile").map(bound) {
                Some(Some(q)) if (0.0..=1.0).contains(&q) => {}
                _ => return Err(format!("invalid or missing quantile label on {name}")),
            }
        }

        // Groups: contiguous, timestamps all present or absent and not going backwards.
        let g = group_key(&labels, fam, kind, suffix);
        if c.group.as_ref().is_some_and(|cg| *cg != g) && c.seen_groups.contains(&g) {
            return Err(format!("samples of one {fam} series are not contiguous"));
        }
        let mut keep = true;
        if c.group.as_ref() == Some(&g) {
            if ts.is_some() != c.group_ts.is_some() {
                return Err("a mix of samples with and without timestamps in one group".into());
            }
            if let (Some(prev), Some(t)) = (c.group_ts, ts) {
                if prev > t && kind != MetricKind::Info {
                    return Err("timestamps went backwards within a group".into());
                }
            }
            let mut series_labels = labels.clone();
            series_labels.sort();
            keep = ts != c.group_ts || !c.group_series.contains(&(name, series_labels.clone()));
            c.group_series.insert((name, series_labels));
        } else {
            c.group_series.clear();
            let mut series_labels = labels.clone();
            series_labels.sort();
            c.group_series.insert((name, series_labels));
        }
        c.seen_groups.insert(g.clone());
        c.group = Some(g);
        c.group_ts = ts;

        let v = tail.value;
        if kind == MetricKind::StateSet && v != 0.0 && v != 1.0 {
            return Err("stateset values must be 0 or 1".into());
        }
        if kind == MetricKind::Info && v != 1.0 {
            return Err("info values must be 1".into());
        }
        if kind == MetricKind::Summary && suffix.is_empty() && v < 0.0 {
            return Err("quantile values cannot be negative".into());
        }
        let counter_like = matches!(
            suffix,
            "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
        );
        if counter_like && v.is_nan() {
            return Err(format!("{name} cannot be NaN"));
        }
        if counter_like && suffix != "_gsum" && v < 0.0 {
            return Err(format!("{name} cannot be negative"));
        }
        if tail.exemplar.is_some() {
            let allowed = (matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram)
                && suffix == "_bucket")
                || (kind == MetricKind::Counter && suffix == "_total");
            if !allowed {
                return Err(format!("exemplars are allowed only on counters' _total and histograms' _bucket, not on {name}"));
            }
        }
        c.has_samples = true;
        if keep {
            self.out.samples.push(ExpoSample {
                family: c.idx,
                name,
                labels,
                value: v,
                timestamp_ms: tail.timestamp.map(|t| t.millis()),
                exemplar: tail.exemplar,
            });
        }
        Ok(())
    }

    /// Starts a family of unknown type for a sample no current family allows.
    fn switch_to_unknown(&mut self, name: &'a str) -> Result<(), String> {
        self.finish_family()?;
        self.out.families.push(FamilyMeta {
            name,
            kind: MetricKind::Unknown,
            help: "".into(),
            unit: "",
        });
        let mut c = Current::new(self.out.families.len() - 1, name, self.out.samples.len());
        c.kind = Some(MetricKind::Unknown);
        self.current = Some(c);
        Ok(())
    }

    /// Checks the family as a whole and records its metadata.
    fn finish_family(&mut self) -> Result<(), String> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        let kind = c.kind();
        let name = c.name;
        let mut suffixes: Vec<&str> = kind.suffixes().to_vec();
        if !suffixes.contains(&"") {
            suffixes.push("");
        }
        for suffix in suffixes {
            let claimed = format!("{name}{suffix}");
            if !self.claimed.insert(claimed) {
                return Err(format!(
                    "family {name} clashes with an earlier family over {name}{suffix}"
                ));
            }
        }
        let unit = c.unit.unwrap_or("");
        if !unit.is_empty() {
            if !name
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
            {
                return Err(format!("unit {unit:?} is not a suffix of {name}"));
            }
            if matches!(kind, MetricKind::Info | MetricKind::StateSet) {
                return Err(format!("{name}: units are not allowed on this type"));
            }
        }
        if matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
            check_histogram(name, &self.out.samples[c.first_sample..])?;
        }
        if let Some(meta) = self.out.families.get_mut(c.idx) {
            meta.kind = kind;
            meta.help = c.help.unwrap_or_default();
            meta.unit = unit;
        }
        Ok(())
    }
}

/// An `le` or `quantile` value: a float whose infinities are spelled `+Inf`/`-Inf`.
fn bound(s: &str) -> Option<f64> {
    let v = super::lex::parse_value(s, true).ok()?;
    if v.is_infinite() && s != "+Inf" && s != "-Inf" {
        return None;
    }
    Some(v)
}

fn group_key<'a>(labels: &[Label<'a>], fam: &str, kind: MetricKind, suffix: &str) -> GroupKey<'a> {
    let drop: Option<&str> = match kind {
        MetricKind::Info => return Vec::new(),
        MetricKind::Summary if suffix.is_empty() => Some("quantile"),
        MetricKind::StateSet => Some(fam),
        MetricKind::Histogram | MetricKind::GaugeHistogram if suffix == "_bucket" => Some("le"),
        _ => None,
    };
    let mut key: GroupKey<'a> = labels
        .iter()
        .filter(|(n, _)| Some(*n) != drop)
        .cloned()
        .collect();
    key.sort();
    key
}

/// The per-series histogram rules over one family's samples.
fn check_histogram(name: &str, samples: &[ExpoSample<'_>]) -> Result<(), String> {
    #[derive(Default)]
    struct Series {
        bucket: Option<f64>,
        value: f64,
        count: Option<f64>,
        has_sum: bool,
        has_gsum: bool,
        negative_buckets: bool,
        negative_gsum: bool,
    }
    let done = |s: &Series| -> Result<(), String> {
        if s.bucket != Some(f64::INFINITY) {
            return Err(format!("histogram {name}: +Inf bucket missing"));
        }
        if s.count.is_some_and(|c| c != s.value) {
            return Err(format!(
                "histogram {name}: _count does not match the +Inf bucket"
            ));
        }
        if s.has_sum && s.count.is_none() {
            return Err(format!("histogram {name}: _sum without _count"));
        }
        if s.has_gsum && s.count.is_none() {
            return Err(format!("histogram {name}: _gsum without _gcount"));
        }
        if !(s.has_sum || s.has_gsum) && s.count.is_some() {
            return Err(format!("histogram {name}: _count without _sum"));
        }
        if s.negative_buckets && s.has_sum {
            return Err(format!("histogram {name}: _sum with negative buckets"));
        }
        if !s.negative_buckets && s.negative_gsum {
            return Err(format!(
                "histogram {name}: negative _gsum without negative buckets"
            ));
        }
        Ok(())
    };
    let mut current: Option<(GroupKey<'_>, Option<i64>)> = None;
    let mut s = Series::default();
    for sample in samples {
        let suffix = &sample.name[name.len()..];
        let key = (
            group_key(&sample.labels, name, MetricKind::Histogram, suffix),
            sample.timestamp_ms,
        );
        if current.as_ref() != Some(&key) {
            if current.is_some() {
                done(&s)?;
            }
            s = Series::default();
            current = Some(key);
        }
        match suffix {
            "_bucket" => {
                let le = sample
                    .labels
                    .iter()
                    .find(|(n, _)| *n == "le")
                    .and_then(|(_, v)| bound(v))
                    .unwrap_or(f64::NAN);
                if le < 0.0 {
                    s.negative_buckets = true;
                }
                if s.bucket.is_some_and(|b| le <= b) {
                    return Err(format!("histogram {name}: buckets out of order"));
                }
                if sample.value < s.value {
                    return Err(format!("histogram {name}: bucket values decrease"));
                }
                s.bucket = Some(le);
                s.value = sample.value;
            }
            "_count" | "_gcount" => s.count = Some(sample.value),
            "_sum" => s.has_sum = true,
            "_gsum" => {
                s.has_gsum = true;
                if sample.value < 0.0 {
                    s.negative_gsum = true;
                }
            }
            _ => {}
        }
    }
    if current.is_some() {
        done(&s)?;
    }
    Ok(())
}
