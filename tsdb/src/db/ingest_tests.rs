//! What the store takes and refuses: ingestion limits, the out-of-order window (through the
//! WAL and into blocks), and the counters `/metrics` shows for both.

use super::*;
use crate::limits::{MAX_LABEL_VALUE_LENGTH, MAX_SERIES_PER_METRIC};
use model::{Labels, MatchOp, Matcher, Querier, Sample};

fn one(pairs: &[(&str, &str)], ts: &[i64]) -> Series {
    Series {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: ts.iter().map(|&t| Sample { t, v: t as f64 }).collect(),
    }
}

fn all_samples(db: &Tsdb, name: &str) -> Vec<i64> {
    let m = [Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
    let got = db.select(i64::MIN, i64::MAX, &m).unwrap();
    got.iter()
        .flat_map(|s| s.samples.iter().map(|s| s.t))
        .collect()
}

/// The value of one sample line of the rendered metrics.
fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        .parse()
        .unwrap()
}

fn opened(dir: &std::path::Path, options: TsdbOptions) -> Tsdb {
    Tsdb::open(
        dir,
        TsdbOptions {
            compaction_interval: None,
            ..options
        },
    )
    .unwrap()
}

#[test]
fn series_breaking_a_limit_are_refused_and_named_while_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_label_value_length: 8,
        max_series_per_metric: 2,
        ..Limits::default()
    };
    let db = opened(
        dir.path(),
        TsdbOptions {
            limits,
            ..TsdbOptions::default()
        },
    );
    let out = db
        .append(&[
            one(&[("__name__", "up"), ("i", "a")], &[1, 2]),
            one(
                &[("__name__", "up"), ("i", "a-very-long-value")],
                &[1, 2, 3],
            ),
            one(&[("__name__", "up"), ("i", "b")], &[1]),
        ])
        .unwrap();
    assert_eq!((out.appended, out.over_limit), (3, 3));
    assert_eq!(out.limit, Some((MAX_LABEL_VALUE_LENGTH, 8)));
    assert_eq!(out.rejected(), 3);

    // A third series of `up` is one too many; new samples of the two it has still land.
    let out = db
        .append(&[
            one(&[("__name__", "up"), ("i", "c")], &[5]),
            one(&[("__name__", "up"), ("i", "a")], &[5]),
            one(&[("__name__", "other"), ("i", "c")], &[5]),
        ])
        .unwrap();
    assert_eq!((out.appended, out.over_limit), (2, 1));
    assert_eq!(out.limit, Some((MAX_SERIES_PER_METRIC, 2)));
    assert_eq!(db.num_series(), 3, "up{{i=a}}, up{{i=b}}, other{{i=c}}");
    assert_eq!(all_samples(&db, "up"), [1, 2, 5, 1]);

    let text = db.render_metrics();
    let refused = |limit: &str| {
        metric(
            &text,
            &format!("vigil_tsdb_limit_refused_samples_total{{limit=\"storage.tsdb.{limit}\"}}"),
        )
    };
    assert_eq!(refused("max-label-value-length"), 3.0);
    assert_eq!(refused("max-series-per-metric"), 1.0);
    assert_eq!(refused("max-labels-per-series"), 0.0);

    // Series the WAL brings back are not refused at replay, even past the series limit.
    drop(db);
    let db = opened(
        dir.path(),
        TsdbOptions {
            limits: Limits {
                max_series_per_metric: 1,
                ..limits
            },
            ..TsdbOptions::default()
        },
    );
    assert_eq!(db.num_series(), 3);
}

#[test]
fn out_of_order_samples_inside_the_window_survive_restart_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let options = TsdbOptions {
        out_of_order_window: Duration::from_millis(1_000),
        block_range: Duration::from_millis(10_000),
        ..TsdbOptions::default()
    };
    let s = [("__name__", "m")];
    let ooo: Vec<i64> = (0..300).map(|i| 10_000 + i * 10).collect();
    {
        let db = opened(dir.path(), options.clone());
        // In order every 10 ms from 10 s to 13 s, then everything in between, late, in
        // reverse: the late ones land across closed chunks and the open one.
        let on_time: Vec<i64> = ooo.iter().map(|t| t + 5).collect();
        assert_eq!(db.append(&[one(&s, &on_time)]).unwrap().appended, 300);
        let mut late: Vec<i64> = ooo.iter().copied().filter(|t| *t >= 12_000).collect();
        late.reverse();
        let out = db.append(&[one(&s, &late)]).unwrap();
        assert_eq!((out.appended, out.out_of_order), (late.len(), 0));
        // Older than the newest sample minus the window: too old.
        let out = db.append(&[one(&s, &[11_990, 11_000])]).unwrap();
        assert_eq!((out.appended, out.out_of_order), (0, 2));
        // A late re-send is a no-op, a late conflicting one a duplicate.
        let out = db
            .append(&[Series {
                labels: Labels::from_pairs(s),
                samples: vec![
                    Sample {
                        t: 12_000,
                        v: 12_000.0,
                    },
                    Sample { t: 12_010, v: 1.0 },
                ],
            }])
            .unwrap();
        assert_eq!((out.appended, out.duplicate_timestamp), (0, 1));
        let text = db.render_metrics();
        assert_eq!(
            metric(
                &text,
                "prometheus_tsdb_head_out_of_order_samples_appended_total"
            ),
            late.len() as f64
        );
        assert_eq!(
            metric(
                &text,
                "prometheus_tsdb_too_old_samples_total{type=\"float\"}"
            ),
            2.0
        );
    }
    let mut want: Vec<i64> = (0..300).map(|i| 10_005 + i * 10).collect();
    want.extend(ooo.iter().filter(|t| **t >= 12_000));
    want.sort_unstable();
    let db = opened(dir.path(), options);
    assert_eq!(all_samples(&db, "m"), want, "after WAL replay");
    // Push the head past 1.5 ranges so [10 s, 20 s) is cut into a block.
    db.append(&[one(&s, &[26_000])]).unwrap();
    db.compact().unwrap();
    assert_eq!(db.blocks().len(), 1);
    want.push(26_000);
    assert_eq!(all_samples(&db, "m"), want, "from block and head");
    // Below the block's end: out of bounds, whatever the window.
    let out = db.append(&[one(&s, &[25_500, 19_999])]).unwrap();
    assert_eq!((out.appended, out.out_of_order), (1, 1));
    let text = db.render_metrics();
    assert_eq!(
        metric(
            &text,
            "prometheus_tsdb_out_of_bound_samples_total{type=\"float\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, "prometheus_tsdb_compactions_total"), 1.0);
    assert_eq!(metric(&text, "prometheus_tsdb_blocks_loaded"), 1.0);
    assert!(metric(&text, "prometheus_tsdb_storage_blocks_bytes") > 0.0);
}

#[test]
fn without_a_window_late_samples_are_counted_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = opened(dir.path(), TsdbOptions::default());
    let s = [("__name__", "m")];
    db.append(&[one(&s, &[100, 200])]).unwrap();
    let out = db.append(&[one(&s, &[150, 300])]).unwrap();
    assert_eq!((out.appended, out.out_of_order), (1, 1));
    let text = db.render_metrics();
    assert_eq!(
        metric(
            &text,
            "prometheus_tsdb_out_of_order_samples_total{type=\"float\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "prometheus_tsdb_head_samples_appended_total{type=\"float\"}"
        ),
        3.0
    );
    assert_eq!(metric(&text, "prometheus_tsdb_head_series"), 1.0);
    assert!(metric(&text, "prometheus_tsdb_wal_fsync_duration_seconds_count") >= 2.0);
    assert_eq!(metric(&text, "prometheus_tsdb_retention_limit_bytes"), 0.0);
    assert_eq!(metric(&text, "prometheus_tsdb_wal_corruptions_total"), 0.0);
    assert_eq!(
        metric(&text, "prometheus_tsdb_compactions_failed_total"),
        0.0
    );
    assert_eq!(metric(&text, "prometheus_tsdb_time_retentions_total"), 0.0);
    assert_eq!(metric(&text, "prometheus_tsdb_size_retentions_total"), 0.0);
    assert_eq!(all_samples(&db, "m"), [100, 200, 300]);
}
