//! From a scraped body to what is shipped: the series with their target labels, the staleness
//! markers of series that disappeared, the families' metadata and the numbers of the report
//! series (`up`, `scrape_duration_seconds`, …). Pure: no I/O, no clock.
//!
//! Prometheus's rules, kept here:
//! - `honor_labels: false` keeps a scraped label that clashes with a target label as
//!   `exported_<name>` (prefixed again while that name is taken too); `true` lets the
//!   scraped value win.
//! - A failed scrape (unreachable, bad body, a limit exceeded) is an empty scrape: nothing of
//!   it is kept, `up` is 0, and every series of the previous scrape gets a staleness marker.
//! - Series with a timestamp in the body are not staleness-tracked: their exporter says when
//!   they were true, so their absence means nothing.
//! - A repeated series keeps its first sample.
//! - `metric_relabel_configs` run after the target labels are merged in; `sample_limit` and
//!   the label limits count what they leave.

use std::collections::HashSet;

use model::wire::prom::MetricMetadata;
use model::{Labels, Sample, Series, METRIC_NAME, STALE_NAN_BITS};

use super::config::PoolConfig;
use super::fetch::Scraped;
use crate::expo::{self, MetricKind};

/// The report series' names and Prometheus's HELP texts.
pub(crate) const REPORT_SERIES: [(&str, &str); 5] = [
    (
        "up",
        "Health of the scrape target. 1 means the target is healthy, 0 if the scrape failed.",
    ),
    (
        "scrape_duration_seconds",
        "Duration of the last scrape in seconds.",
    ),
    ("scrape_samples_scraped", "Number of samples last scraped."),
    (
        "scrape_samples_post_metric_relabeling",
        "Number of samples remaining after metric relabeling was applied.",
    ),
    (
        "scrape_series_added",
        "Number of series in the last scrape.",
    ),
];

/// The series of a target's last successful scrape that staleness tracks.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    previous: HashSet<Labels>,
}

impl SeriesCache {
    /// Staleness markers at `t` for every tracked series, emptying the cache: the target is
    /// gone or its scrape failed.
    pub fn all_stale(&mut self, t: i64) -> Vec<Series> {
        std::mem::take(&mut self.previous)
            .into_iter()
            .map(|labels| stale(labels, t))
            .collect()
    }
}

/// The numbers the report series carry, besides the duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub scraped: u64,
    pub post_relabel: u64,
    pub series_added: u64,
}

/// What one scrape produced.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Samples and staleness markers to ship.
    pub series: Vec<Series>,
    pub metadata: Vec<MetricMetadata>,
    pub counts: Counts,
    /// Why the scrape failed; `None` means `up` is 1.
    pub error: Option<String>,
}

/// Turns a fetch result into an outcome at scrape time `t` (milliseconds).
pub(crate) fn process(
    pool: &PoolConfig,
    target: &Labels,
    fetched: Result<Scraped, String>,
    t: i64,
    cache: &mut SeriesCache,
) -> Outcome {
    let parsed = fetched
        .map_err(|error| (error, Counts::default()))
        .and_then(|s| {
            let mut out = Outcome::default();
            append(pool, target, &s, t, cache, &mut out).map(|()| out)
        });
    match parsed {
        Ok(out) => out,
        Err((error, counts)) => Outcome {
            series: cache.all_stale(t),
            metadata: Vec::new(),
            counts,
            error: Some(error),
        },
    }
}

type Failure = (String, Counts);

fn append(
    pool: &PoolConfig,
    target: &Labels,
    scraped: &Scraped,
    t: i64,
    cache: &mut SeriesCache,
    out: &mut Outcome,
) -> Result<(), Failure> {
    let fail = |reason: String, counts: Counts| Err((reason, counts));
    let exposition = match expo::parse_bytes(&scraped.body, scraped.format) {
        Ok(e) => e,
        Err(e) => return fail(format!("parsing the body: {e}"), Counts::default()),
    };
    let mut counts = Counts {
        scraped: exposition.samples.len() as u64,
        ..Counts::default()
    };
    let mut seen: HashSet<Labels> = HashSet::with_capacity(exposition.samples.len());
    let mut current: HashSet<Labels> = HashSet::with_capacity(exposition.samples.len());
    for sample in &exposition.samples {
        let merged = sample_labels(pool.honor_labels, target, sample);
        let Some(labels) = model::relabel(&pool.metric_relabel_configs, merged) else {
            continue;
        };
        if labels.is_empty() {
            continue;
        }
        check_label_limits(pool, &labels).or_else(|reason| fail(reason, counts))?;
        counts.post_relabel += 1;
        if pool.sample_limit > 0 && counts.post_relabel > pool.sample_limit {
            let counts = Counts {
                post_relabel: counts.scraped,
                ..counts
            };
            return fail(
                format!("sample limit exceeded (limit {})", pool.sample_limit),
                counts,
            );
        }
        if !seen.insert(labels.clone()) {
            continue;
        }
        let ts = match sample.timestamp_ms {
            Some(ts) if pool.honor_timestamps => ts,
            _ => {
                current.insert(labels.clone());
                t
            }
        };
        out.series.push(Series {
            labels,
            samples: vec![Sample {
                t: ts,
                v: sample.value,
            }],
        });
    }
    counts.series_added = current
        .iter()
        .filter(|l| !cache.previous.contains(*l))
        .count() as u64;
    for gone in cache.previous.difference(&current) {
        out.series.push(stale(gone.clone(), t));
    }
    cache.previous = current;
    out.metadata = exposition
        .families
        .iter()
        .map(|f| MetricMetadata {
            r#type: wire_type(f.kind),
            metric_family_name: f.name.to_string(),
            help: f.help.to_string(),
            unit: f.unit.to_string(),
        })
        .collect();
    out.counts = counts;
    Ok(())
}

/// A scraped sample's labels merged with the target's, by `honor_labels`.
fn sample_labels(honor_labels: bool, target: &Labels, sample: &expo::ExpoSample<'_>) -> Labels {
    let mut pairs: Vec<(String, String)> =
        Vec::with_capacity(sample.labels.len() + target.len() + 1);
    pairs.push((METRIC_NAME.to_string(), sample.name.to_string()));
    pairs.extend(
        sample
            .labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string())),
    );
    for l in target.iter() {
        let clash = pairs.iter().position(|(n, _)| *n == l.name);
        match clash {
            Some(_) if honor_labels => {}
            Some(i) => {
                let mut name = format!("exported_{}", l.name);
                while pairs.iter().any(|(n, _)| *n == name) {
                    name = format!("exported_{name}");
                }
                pairs[i].0 = name;
                pairs.push((l.name.clone(), l.value.clone()));
            }
            None => pairs.push((l.name.clone(), l.value.clone())),
        }
    }
    Labels::from_pairs(pairs)
}

/// `label_limit`, `label_name_length_limit`, `label_value_length_limit`, with Prometheus's
/// messages.
fn check_label_limits(pool: &PoolConfig, labels: &Labels) -> Result<(), String> {
    let name = || labels.metric_name().unwrap_or_default().to_string();
    if pool.label_limit > 0 && labels.len() as u64 > pool.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {}, number of labels: {}, limit: {})",
            name(),
            labels.len(),
            pool.label_limit
        ));
    }
    for l in labels.iter() {
        if pool.label_name_length_limit > 0 && l.name.len() as u64 > pool.label_name_length_limit {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {}, label name: {}, limit: {})",
                name(),
                l.name,
                pool.label_name_length_limit
            ));
        }
        if pool.label_value_length_limit > 0 && l.value.len() as u64 > pool.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {}, label name: {}, value: {:?}, limit: {})",
                name(),
                l.name,
                l.value,
                pool.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// The five report series of one scrape, labelled with the target's labels.
pub(crate) fn report_series(
    target: &Labels,
    t: i64,
    up: bool,
    duration_s: f64,
    c: Counts,
) -> Vec<Series> {
    let values = [
        if up { 1.0 } else { 0.0 },
        duration_s,
        c.scraped as f64,
        c.post_relabel as f64,
        c.series_added as f64,
    ];
    REPORT_SERIES
        .iter()
        .zip(values)
        .map(|((name, _), v)| Series {
            labels: target.with(METRIC_NAME, name),
            samples: vec![Sample { t, v }],
        })
        .collect()
}

/// Staleness markers for the report series of a target that went away.
pub(crate) fn stale_report_series(target: &Labels, t: i64) -> Vec<Series> {
    REPORT_SERIES
        .iter()
        .map(|(name, _)| stale(target.with(METRIC_NAME, name), t))
        .collect()
}

/// The report series' metadata (gauges), sent with every scrape like the families'.
pub(crate) fn report_metadata() -> Vec<MetricMetadata> {
    REPORT_SERIES
        .iter()
        .map(|(name, help)| MetricMetadata {
            r#type: wire_type(MetricKind::Gauge),
            metric_family_name: name.to_string(),
            help: help.to_string(),
            unit: String::new(),
        })
        .collect()
}

fn stale(labels: Labels, t: i64) -> Series {
    Series {
        labels,
        samples: vec![Sample {
            t,
            v: f64::from_bits(STALE_NAN_BITS),
        }],
    }
}

/// `MetricMetadata.MetricType` of remote write 1.0.
fn wire_type(kind: MetricKind) -> i32 {
    match kind {
        MetricKind::Unknown => 0,
        MetricKind::Counter => 1,
        MetricKind::Gauge => 2,
        MetricKind::Histogram => 3,
        MetricKind::GaugeHistogram => 4,
        MetricKind::Summary => 5,
        MetricKind::Info => 6,
        MetricKind::StateSet => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::Format;
    use crate::scrape::config::ScrapeFile;
    use model::is_stale_nan;

    fn pool(extra: &str) -> PoolConfig {
        ScrapeFile::parse(&format!("scrape_configs:\n  - job_name: app\n{extra}"))
            .unwrap()
            .pools()
            .unwrap()
            .remove(0)
    }

    fn target() -> Labels {
        Labels::from_pairs([("instance", "h:1"), ("job", "app")])
    }

    fn body(text: &str) -> Result<Scraped, String> {
        Ok(Scraped {
            body: text.as_bytes().to_vec(),
            format: Format::Text,
        })
    }

    fn find<'a>(out: &'a Outcome, sel: &str) -> Vec<&'a Series> {
        out.series
            .iter()
            .filter(|s| s.labels.to_string() == sel)
            .collect()
    }

    #[test]
    fn clashing_labels_are_exported_unless_honored() {
        let text = "m{job=\"inner\",exported_job=\"x\",a=\"1\"} 5\n";
        let mut cache = SeriesCache::default();
        let out = process(&pool(""), &target(), body(text), 1_000, &mut cache);
        assert_eq!(out.error, None);
        assert_eq!(
            out.series[0].labels.to_string(),
            r#"{__name__="m", a="1", exported_exported_job="inner", exported_job="x", instance="h:1", job="app"}"#
        );
        let out = process(
            &pool("    honor_labels: true\n"),
            &target(),
            body(text),
            1_000,
            &mut cache,
        );
        assert_eq!(
            out.series[0].labels.to_string(),
            r#"{__name__="m", a="1", exported_job="x", instance="h:1", job="inner"}"#
        );
    }

    #[test]
    fn disappearing_series_get_stale_markers_and_counts() {
        let p = pool("");
        let mut cache = SeriesCache::default();
        let out = process(
            &p,
            &target(),
            body("a 1\nb 2\nb 3\nc 4 1700000000000\n"),
            1_000,
            &mut cache,
        );
        assert_eq!(out.error, None);
        // The repeated `b` keeps its first sample; `c` keeps its own timestamp.
        assert_eq!(out.series.len(), 3);
        assert_eq!(out.series[1].samples[0].v, 2.0);
        assert_eq!(out.series[2].samples[0].t, 1_700_000_000_000);
        assert_eq!(
            out.counts,
            Counts {
                scraped: 4,
                post_relabel: 4,
                series_added: 2
            }
        );

        let out = process(&p, &target(), body("a 5\n"), 2_000, &mut cache);
        let b = find(&out, r#"{__name__="b", instance="h:1", job="app"}"#);
        assert_eq!(b.len(), 1);
        assert!(is_stale_nan(b[0].samples[0].v));
        assert_eq!(b[0].samples[0].t, 2_000);
        // `c` had its own timestamp: not tracked, so no marker.
        assert!(find(&out, r#"{__name__="c", instance="h:1", job="app"}"#).is_empty());
        assert_eq!(out.counts.series_added, 0);
    }

    #[test]
    fn a_failed_scrape_marks_everything_stale() {
        let p = pool("");
        let mut cache = SeriesCache::default();
        process(&p, &target(), body("a 1\nb 2\n"), 1_000, &mut cache);
        let out = process(&p, &target(), body("a 1\nb{ 2\n"), 2_000, &mut cache);
        let err = out.error.unwrap();
        assert!(err.starts_with("parsing the body: line 2"), "{err}");
        assert_eq!(out.series.len(), 2);
        assert!(out.series.iter().all(|s| is_stale_nan(s.samples[0].v)));
        // Nothing is left to mark after the failure.
        let out = process(&p, &target(), Err("down".into()), 3_000, &mut cache);
        assert!(out.series.is_empty());
        assert_eq!(out.error.as_deref(), Some("down"));
    }

    #[test]
    fn sample_limit_fails_the_whole_scrape() {
        let p = pool("    sample_limit: 2\n");
        let mut cache = SeriesCache::default();
        let out = process(&p, &target(), body("a 1\nb 2\n"), 1_000, &mut cache);
        assert_eq!(out.error, None);
        let out = process(&p, &target(), body("a 1\nb 2\nc 3\n"), 2_000, &mut cache);
        assert_eq!(
            out.error.as_deref(),
            Some("sample limit exceeded (limit 2)")
        );
        assert_eq!(out.counts.scraped, 3);
        assert!(
            out.series.iter().all(|s| is_stale_nan(s.samples[0].v)),
            "{:?}",
            out.series
        );
    }

    #[test]
    fn label_limits_and_timestamps_follow_the_config() {
        let mut cache = SeriesCache::default();
        let out = process(
            &pool("    label_limit: 3\n"),
            &target(),
            body("m{a=\"1\"} 1\n"),
            1,
            &mut cache,
        );
        assert!(out
            .error
            .unwrap()
            .starts_with("label_limit exceeded (metric: m"));
        let out = process(
            &pool("    label_value_length_limit: 2\n"),
            &target(),
            body("m{a=\"123\"} 1\n"),
            1,
            &mut cache,
        );
        assert!(out.error.unwrap().contains("label_value_length_limit"));
        let out = process(
            &pool("    honor_timestamps: false\n"),
            &target(),
            body("m 1 5000\n"),
            7,
            &mut cache,
        );
        assert_eq!(out.series[0].samples[0].t, 7);
    }

    #[test]
    fn metric_relabeling_runs_after_the_merge_and_before_the_limit() {
        let p = pool(
            "    sample_limit: 1\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'go_.*', action: drop}\n      - {source_labels: [job, a], separator: '-', target_label: b}\n",
        );
        let mut cache = SeriesCache::default();
        let out = process(
            &p,
            &target(),
            body("go_x 1\ngo_y 1\nm{a=\"1\"} 2\n"),
            1,
            &mut cache,
        );
        assert_eq!(out.error, None);
        assert_eq!(
            out.counts,
            Counts {
                scraped: 3,
                post_relabel: 1,
                series_added: 1
            }
        );
        assert_eq!(
            out.series[0].labels.to_string(),
            r#"{__name__="m", a="1", b="app-1", instance="h:1", job="app"}"#
        );
    }

    #[test]
    fn metadata_and_report_series() {
        let text = "# HELP h_seconds Latency.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 2\nh_seconds_count 1\n";
        let out = process(
            &pool(""),
            &target(),
            body(text),
            1,
            &mut SeriesCache::default(),
        );
        assert_eq!(out.metadata[0].metric_family_name, "h_seconds");
        assert_eq!(out.metadata[0].r#type, 3);
        assert_eq!(out.metadata[0].help, "Latency.");
        let report = report_series(&target(), 9, true, 0.25, out.counts);
        let names: Vec<_> = report
            .iter()
            .map(|s| s.labels.metric_name().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "up",
                "scrape_duration_seconds",
                "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling",
                "scrape_series_added"
            ]
        );
        assert_eq!(report[0].labels.get("job"), Some("app"));
        assert_eq!(report[1].samples[0], Sample { t: 9, v: 0.25 });
        assert_eq!(report[2].samples[0].v, 3.0);
        assert!(stale_report_series(&target(), 9)
            .iter()
            .all(|s| is_stale_nan(s.samples[0].v)));
    }
}
