//! The differential test's queries: the hand-written list covering every function,
//! aggregation and operator the engine evaluates, and a small grammar that draws more
//! combinations from a fixed seed.

use super::Rng;

/// Constructs Prometheus 2.42 does not have (they came in 2.4x–3.x, some behind feature
/// flags), so a difference there is a version difference, not a bug: no query uses them.
/// `double_exponential_smoothing` is the exception: 2.42 calls it `holt_winters`, with the
/// same arithmetic, so it is compared under that name (see [`for_prometheus`]).
pub const NOT_IN_2_42: &[&str] = &[
    "first_over_time",
    "mad_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "sort_by_label",
    "limitk",
    "limit_ratio",
    "histogram_fraction",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "info",
];

/// The query as Prometheus 2.42 spells it.
pub fn for_prometheus(q: &str) -> String {
    q.replace("double_exponential_smoothing", "holt_winters")
}

const C: &str = "diff_requests_total";
const G: &str = "diff_temperature_celsius";
const H: &str = "diff_latency_seconds_bucket";

/// The hand-written queries: every function and aggregation the engine evaluates (except
/// [`NOT_IN_2_42`]), every operator, vector matching, `offset`, `@` and subqueries.
pub fn hand_written() -> Vec<String> {
    let mut q: Vec<String> = [
        // Selectors and matchers.
        "diff_requests_total",
        r#"diff_requests_total{job="api"}"#,
        r#"diff_requests_total{job!="api",code=~"5.."}"#,
        r#"diff_temperature_celsius{zone!~"z[01]",instance=~"i1|i3"}"#,
        r#"{__name__=~"diff_latency_seconds_(sum|count)"}"#,
        r#"{__name__=~"diff_.*",job="db",zone="z3"}"#,
        r#"diff_requests_total{job=~"ap"}"#,
        "diff_temperature_celsius offset 7m",
        "diff_temperature_celsius offset -3m",
        "diff_requests_total @ end()",
        "diff_requests_total @ start()",
        "rate(diff_requests_total[5m] @ end())",
        "sum_over_time(diff_temperature_celsius[10m] offset 20m)",
        // The rate family.
        "rate(diff_requests_total[5m])",
        "rate(diff_requests_total[1m])",
        "rate(diff_requests_total[30m])",
        "increase(diff_requests_total[10m])",
        "irate(diff_requests_total[2m])",
        "idelta(diff_temperature_celsius[2m])",
        "delta(diff_temperature_celsius[10m])",
        "resets(diff_requests_total[30m])",
        "changes(diff_temperature_celsius[5m])",
        "deriv(diff_temperature_celsius[10m])",
        "predict_linear(diff_temperature_celsius[15m], 600)",
        "predict_linear(diff_temperature_celsius[5m], -120)",
        "double_exponential_smoothing(diff_temperature_celsius[10m], 0.3, 0.6)",
        // *_over_time.
        "avg_over_time(diff_temperature_celsius[5m])",
        "min_over_time(diff_temperature_celsius[7m])",
        "max_over_time(diff_temperature_celsius[7m])",
        "sum_over_time(diff_temperature_celsius[3m])",
        "count_over_time(diff_temperature_celsius[4m])",
        "last_over_time(diff_temperature_celsius[2m])",
        "present_over_time(diff_temperature_celsius[1m])",
        "stddev_over_time(diff_temperature_celsius[10m])",
        "stdvar_over_time(diff_temperature_celsius[10m])",
        "quantile_over_time(0.9, diff_temperature_celsius[10m])",
        "quantile_over_time(0, diff_temperature_celsius[10m])",
        "quantile_over_time(1.5, diff_temperature_celsius[5m])",
        r#"absent_over_time(diff_temperature_celsius{zone="z3"}[2m])"#,
        r#"absent_over_time(nope{job="x"}[5m])"#,
        // Subqueries.
        "max_over_time(rate(diff_requests_total[5m])[30m:1m])",
        "avg_over_time(diff_temperature_celsius[10m:])",
        "min_over_time(sum by (job) (diff_temperature_celsius)[20m:37s])",
        "rate(sum by (job) (diff_requests_total)[10m:30s])",
        "deriv(avg_over_time(diff_temperature_celsius[2m])[15m:1m] offset 5m)",
        // A subquery inside a subquery runs its steps on whole seconds, so its range carries
        // half a second to keep its left bound off its steps (3.x left-open, 2.x closed).
        "max_over_time(max_over_time(diff_temperature_celsius[1m])[10m500ms:2m])[20m:5m]",
        // Aggregations.
        "sum(diff_temperature_celsius)",
        "sum by (job) (rate(diff_requests_total[5m]))",
        "sum without (instance) (rate(diff_requests_total[5m]))",
        "avg by (zone) (diff_temperature_celsius)",
        "min by (job) (diff_temperature_celsius)",
        "max without (zone, instance) (diff_temperature_celsius)",
        "count by (code) (diff_requests_total)",
        "group by (job, zone) (diff_temperature_celsius)",
        "stddev by (job) (diff_temperature_celsius)",
        "stdvar(diff_temperature_celsius)",
        "topk(3, diff_temperature_celsius)",
        "topk by (job) (2, rate(diff_requests_total[5m]))",
        "bottomk(4, diff_temperature_celsius)",
        "bottomk without (code) (1, diff_requests_total)",
        "quantile(0.75, diff_temperature_celsius)",
        "quantile by (job) (0.1, rate(diff_requests_total[5m]))",
        "quantile(-1, diff_temperature_celsius)",
        "count_values(\"v\", round(diff_temperature_celsius))",
        "count_values by (job) (\"bucket\", ceil(diff_temperature_celsius / 10))",
        "sum(diff_temperature_celsius) by (job)",
        "avg(count by (job) (diff_requests_total))",
        // Arithmetic, comparisons and their precedence.
        "diff_temperature_celsius * 2 - 1",
        "-diff_temperature_celsius",
        "2 ^ 3 ^ 2",
        "1 + 2 * 3 % 4 - -5",
        "diff_temperature_celsius % 7",
        "diff_temperature_celsius ^ 2",
        // 2.42 kept the metric name on `atan2` (dropped since 2.46, prometheus#12595), so the
        // left side is nameless already.
        "(diff_temperature_celsius * 1) atan2 3",
        "diff_temperature_celsius > 0",
        "diff_temperature_celsius > bool 0",
        "0 < diff_temperature_celsius",
        "diff_temperature_celsius != 1e9",
        "diff_temperature_celsius >= -5 <= 5",
        "rate(diff_requests_total[5m]) > bool 10",
        "1 == bool 1",
        "time() - 60",
        // Vector matching.
        "diff_temperature_celsius - on(job, instance, zone) diff_temperature_celsius offset 5m",
        "diff_temperature_celsius / ignoring(zone) group_left sum without (zone) (diff_temperature_celsius)",
        "sum by (job, instance) (diff_temperature_celsius) * on(job, instance) group_right count by (job, instance, zone) (diff_temperature_celsius)",
        "rate(diff_requests_total[5m]) / on(job, instance) group_left sum by (job, instance) (rate(diff_requests_total[5m]))",
        "sum by (job) (rate(diff_requests_total[5m])) / on(job) sum by (job) (rate(diff_latency_seconds_count[5m]))",
        "diff_requests_total + on(job) diff_temperature_celsius",
        "diff_requests_total * diff_temperature_celsius",
        "diff_temperature_celsius > on(job, instance) group_left max by (job, instance) (diff_temperature_celsius) - 5",
        // Set operators.
        "diff_temperature_celsius and diff_temperature_celsius > 0",
        "diff_temperature_celsius or diff_requests_total",
        "diff_temperature_celsius unless on(zone) diff_temperature_celsius{zone=\"z1\"}",
        "diff_requests_total and on(job) diff_temperature_celsius > 10",
        "(diff_temperature_celsius > 5) or on(instance) (diff_temperature_celsius < -5)",
        "vector(1) and on() absent(nope)",
        // Histograms.
        "histogram_quantile(0.9, rate(diff_latency_seconds_bucket[5m]))",
        "histogram_quantile(0.5, sum by (le) (rate(diff_latency_seconds_bucket[10m])))",
        "histogram_quantile(0.99, sum by (job, le) (rate(diff_latency_seconds_bucket[5m])))",
        "histogram_quantile(0, diff_latency_seconds_bucket)",
        "histogram_quantile(1.2, sum by (le) (diff_latency_seconds_bucket))",
        "histogram_quantile(0.5, sum by (instance) (diff_latency_seconds_bucket))",
        "rate(diff_latency_seconds_sum[5m]) / rate(diff_latency_seconds_count[5m])",
        "histogram_count(rate(diff_latency_seconds_bucket[5m]))",
        "histogram_sum(diff_latency_seconds_bucket)",
        // Labels.
        r#"label_replace(diff_temperature_celsius, "host", "h-$1", "instance", "i(.*)")"#,
        r#"label_replace(diff_temperature_celsius, "zone", "", "zone", "z3")"#,
        r#"label_replace(diff_requests_total, "class", "${1}xx", "code", "(\\d)..")"#,
        r#"label_join(diff_temperature_celsius, "where", "/", "job", "instance", "zone")"#,
        r#"label_join(rate(diff_requests_total[5m]), "job", "", "code")"#,
        // Sorting.
        "sort(diff_temperature_celsius)",
        "sort_desc(rate(diff_requests_total[5m]))",
        // Scalars and vectors.
        "scalar(sum(diff_temperature_celsius))",
        "scalar(diff_temperature_celsius)",
        "vector(scalar(count(diff_requests_total)))",
        "diff_temperature_celsius * scalar(count(diff_requests_total))",
        "vector(time())",
        "pi()",
        "timestamp(diff_temperature_celsius)",
        "timestamp(rate(diff_requests_total[5m]))",
        "absent(diff_temperature_celsius)",
        r#"absent(nope{job="x",zone=~"z.*"})"#,
        "absent(sum(nope))",
        // Clamping and rounding.
        "clamp(diff_temperature_celsius, -5, 5)",
        "clamp(diff_temperature_celsius, 5, -5)",
        "clamp_min(diff_temperature_celsius, 0)",
        "clamp_max(diff_temperature_celsius, 0)",
        "round(diff_temperature_celsius)",
        "round(diff_temperature_celsius, 0.25)",
        "round(rate(diff_requests_total[5m]), 5)",
        // Date functions, with and without an argument.
        "year()",
        "month()",
        "day_of_month()",
        "day_of_week()",
        "day_of_year()",
        "days_in_month()",
        "hour()",
        "minute()",
        "hour(timestamp(diff_temperature_celsius))",
        "minute(timestamp(diff_requests_total))",
        "day_of_year(vector(1.7e9))",
        "days_in_month(vector(1.709e9))",
        "month(vector(-86400 * 45))",
        // Errors both must refuse the same way.
        "diff_requests_total + ignoring(code) diff_requests_total",
        "diff_temperature_celsius * on(job) group_left diff_temperature_celsius",
        "quantile_over_time(0.5, diff_temperature_celsius)",
        "sum(",
        "rate(diff_temperature_celsius)",
        "double_exponential_smoothing(diff_temperature_celsius[5m], 1.5, 0.5)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every unary math function over gauges that reach both signs and beyond ±1.
    for f in [
        "abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn", "sin", "cos", "tan",
        "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad",
    ] {
        q.push(format!("{f}({G} / 20)"));
    }
    q
}

/// Queries drawn from a small grammar with a fixed seed: selectors, range functions over
/// them (sometimes offset), aggregations, and binary operations between the results.
pub fn generated(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| gen_expr(rng, 2)).collect()
}

fn gen_selector(rng: &mut Rng) -> (String, &'static str) {
    match rng.below(3) {
        0 => {
            let m = rng.pick(&[
                "",
                r#"{job="api"}"#,
                r#"{code=~"2..|5.."}"#,
                r#"{instance!="i0"}"#,
            ]);
            (format!("{C}{m}"), C)
        }
        1 => {
            let m = rng.pick(&[
                "",
                r#"{zone="z3"}"#,
                r#"{job!~"db|web"}"#,
                r#"{instance=~"i[12]"}"#,
            ]);
            (format!("{G}{m}"), G)
        }
        _ => {
            let m = rng.pick(&["", r#"{job="web"}"#, r#"{le=~"0.5|\\+Inf"}"#]);
            (format!("{H}{m}"), H)
        }
    }
}

fn gen_vector(rng: &mut Rng) -> String {
    let (sel, family) = gen_selector(rng);
    let range = rng.pick(&["1m", "3m", "5m", "10m", "17m"]);
    let offset = rng.pick(&["", "", "", " offset 4m", " offset 33s"]);
    let counter_fns = ["rate", "increase", "irate", "resets"];
    let gauge_fns = [
        "delta",
        "idelta",
        "deriv",
        "changes",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "stddev_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
    ];
    let f = if family == G || rng.below(3) == 0 {
        rng.pick(&gauge_fns)
    } else {
        rng.pick(&counter_fns)
    };
    match rng.below(6) {
        0 => format!("{sel}{offset}"),
        1 => format!(
            "quantile_over_time({:.2}, {sel}[{range}]{offset})",
            rng.unit()
        ),
        _ => format!("{f}({sel}[{range}]{offset})"),
    }
}

/// A vector of continuous values, for `topk` and `bottomk`: which of several equal values
/// they keep is unspecified, and 2.42's heap picks differently from 3.x.
fn gen_untied(rng: &mut Rng) -> String {
    let range = rng.pick(&["2m", "5m", "10m"]);
    let m = rng.pick(&["", r#"{job="api"}"#, r#"{instance!="i2"}"#]);
    match rng.below(3) {
        0 => format!("rate({C}{m}[{range}])"),
        1 => format!("avg_over_time({G}{m}[{range}])"),
        _ => format!("sum without (code) (increase({C}{m}[{range}]))"),
    }
}

fn gen_expr(rng: &mut Rng, depth: u32) -> String {
    let labels = ["job", "instance", "code", "zone", "le"];
    let grouping = |rng: &mut Rng| {
        let l = rng.pick(&labels);
        match rng.below(3) {
            0 => String::new(),
            1 => format!(" by ({l})"),
            _ => format!(" without ({l})"),
        }
    };
    let choice = if depth == 0 {
        rng.below(2)
    } else {
        rng.below(5)
    };
    match choice {
        0 => gen_vector(rng),
        1 => {
            let op = rng.pick(&["sum", "avg", "min", "max", "count", "stddev", "group"]);
            let g = grouping(rng);
            format!("{op}{g} ({})", gen_vector(rng))
        }
        2 => {
            let g = grouping(rng);
            match rng.below(3) {
                0 => format!("topk{g} ({}, {})", 1 + rng.below(3), gen_untied(rng)),
                1 => format!("bottomk{g} ({}, {})", 1 + rng.below(3), gen_untied(rng)),
                _ => format!(
                    "quantile{g} ({:.2}, {})",
                    rng.unit(),
                    gen_expr(rng, depth - 1)
                ),
            }
        }
        3 => {
            let op = rng.pick(&["+", "-", "*", "/", "> bool", "<", "and", "or", "unless"]);
            let l = rng.pick(&labels);
            let a = gen_expr(rng, depth - 1);
            let b = gen_expr(rng, depth - 1);
            let matching = rng.pick(&["", " on(job)", " ignoring(code)"]);
            match rng.below(3) {
                0 => format!("({a}) {op} {:.1}", (rng.unit() - 0.3) * 10.0),
                1 => format!("sum by ({l}) ({a}) {op}{matching} sum by ({l}) ({b})"),
                _ => format!("({a}) {op}{matching} ({b})"),
            }
        }
        _ => {
            let step = rng.pick(&["", "30s", "1m", "45s"]);
            let f = rng.pick(&["max_over_time", "avg_over_time", "deriv", "count_over_time"]);
            // Half a second off whole, so a nested subquery's bounds miss its steps.
            format!("{f}(({})[10m500ms:{step}])", gen_expr(rng, depth - 1))
        }
    }
}
