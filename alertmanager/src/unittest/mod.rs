//! Rule unit tests in promtool's format (`promtool test rules`): each test group loads its
//! input series into a fresh `model::MemStorage`, evaluates every rule group with the
//! [`RuleManager`](crate::RuleManager) from time 0 on the file's evaluation interval up to the
//! latest `eval_time`, compares the firing alerts at each `alert_rule_test` time, then runs the
//! `promql_expr_test` queries over the same storage (recording rules' output included).
//!
//! Failures are reported in promtool's words, so a CI log reads the same with either tool.

mod format;

use crate::rules::{load_rule_files, AlertSink, QueryFn, RuleGroup, RuleManager};
use crate::{PostableAlert, RuleManagerOptions};
use format::{Point, TestFile, TestGroup};
use model::{Appender, Labels, MemStorage, Sample, Series};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// promtool's default `evaluation_interval`.
pub const DEFAULT_TEST_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

/// Builds a query function over one test group's storage.
pub type QueryFnFactory = Box<dyn Fn(Arc<MemStorage>) -> QueryFn + Send + Sync>;

/// Checks one rule expression, answering the engine's message when it is refused.
pub type ExprCheck = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What the unit tests need from the query engine, which this crate never imports.
pub struct RuleTestEngine {
    /// A query function over the test group's storage.
    pub query: QueryFnFactory,
    /// Checks a rule expression at load, as the server does (parse and support).
    pub check_expr: ExprCheck,
}

impl std::fmt::Debug for RuleTestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleTestEngine").finish_non_exhaustive()
    }
}

/// Runs every test group of the unit-test file at `path`. Returns the failures, each already
/// formatted as promtool prints it; empty means the file passed.
pub fn run_rule_test_file(path: &Path, engine: &RuleTestEngine) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("open {}: {e}", path.display())],
    };
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => return vec![e.to_string()],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_files = match resolve_rule_files(base, &file.rule_files) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let eval_interval = file
        .evaluation_interval
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TEST_EVALUATION_INTERVAL);
    let mut order = HashMap::new();
    for (i, name) in file.group_eval_order.iter().enumerate() {
        if order.insert(name.as_str(), i).is_some() {
            return vec![format!("group name repeated in evaluation order: {name}")];
        }
    }
    let mut errors = Vec::new();
    for group in &file.tests {
        errors.extend(run_test_group(
            group,
            eval_interval,
            &order,
            &rule_files,
            engine,
        ));
    }
    errors
}

/// Rule file patterns relative to the test file, globbed as `filepath.Glob` does; a pattern
/// matching nothing is a warning, as in promtool.
fn resolve_rule_files(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns.iter().filter(|p| !p.is_empty()) {
        let found = crate::config::expand_globs(base, std::slice::from_ref(p))?;
        if found.is_empty() {
            tracing::warn!(pattern = %p, "no file match pattern");
        }
        out.extend(found);
    }
    Ok(out)
}

/// Alerts of a unit test go nowhere; only their state is compared.
struct NoSink;

impl AlertSink for NoSink {
    fn send(&self, _alerts: Vec<PostableAlert>) {}
}

fn run_test_group(
    tg: &TestGroup,
    eval_interval: Duration,
    order: &HashMap<&str, usize>,
    rule_files: &[PathBuf],
    engine: &RuleTestEngine,
) -> Vec<String> {
    let interval = tg
        .interval
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(eval_interval);
    let storage = Arc::new(MemStorage::new());
    if let Err(e) = load_series(tg, interval, &storage) {
        return vec![e];
    }
    let groups = match load_rule_files(rule_files) {
        Ok(g) => g,
        Err(e) => return vec![e.to_string()],
    };
    if let Err(e) = check_queries(&groups, engine) {
        return vec![e];
    }
    // Groups named in group_eval_order go in that order; the others keep load order (promtool
    // leaves them unordered, so any order is one promtool could pick).
    let mut eval_order: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (order.get(g.name.as_str()).copied().unwrap_or(0), i))
        .collect();
    eval_order.sort_by_key(|&(rank, _)| rank);
    let manager = RuleManager::new(
        groups,
        (engine.query)(storage.clone()),
        storage.clone(),
        Arc::new(NoSink),
        RuleManagerOptions {
            evaluation_interval: interval,
            external_url: tg.external_url.clone(),
            external_labels: Labels::from_pairs(tg.external_labels.clone()),
            ..RuleManagerOptions::default()
        },
    );

    let test_name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mut alert_tests: BTreeMap<Duration, Vec<&format::AlertTestCase>> = BTreeMap::new();
    for case in &tg.alert_rule_test {
        if case.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                crate::format_duration(case.eval_time.0)
            )];
        }
        alert_tests.entry(case.eval_time.0).or_default().push(case);
    }
    let max_eval = tg
        .alert_rule_test
        .iter()
        .map(|c| c.eval_time.0)
        .chain(tg.promql_expr_test.iter().map(|c| c.eval_time.0))
        .max()
        .unwrap_or_default();

    let mut errors = Vec::new();
    let step = eval_interval.as_millis() as i64;
    let max_ms = max_eval.as_millis() as i64;
    let mut pending = alert_tests.iter().peekable();
    let mut ts = 0i64;
    while ts <= max_ms {
        for &(_, index) in &eval_order {
            manager.eval_group_at(index, ts);
        }
        let eval_errors = rule_errors(&manager, ts);
        if !eval_errors.is_empty() {
            errors.extend(eval_errors);
            return errors;
        }
        // An alert test at `eval_time` is checked against the evaluation at the latest step
        // not after it.
        while let Some((at, cases)) = pending.next_if(|(at, _)| (at.as_millis() as i64) < ts + step)
        {
            let firing = firing_alerts(&manager);
            for case in cases {
                let mut got = firing.get(&case.alertname).cloned().unwrap_or_default();
                let mut exp: Vec<(Labels, Labels)> = case
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let labels = Labels::from_pairs(a.exp_labels.clone())
                            .with("alertname", &case.alertname);
                        (labels, Labels::from_pairs(a.exp_annotations.clone()))
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errors.push(format!(
                        "{test_name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        crate::format_duration(*at),
                        indent_lines(&alerts_string(&exp), "            "),
                        indent_lines(&alerts_string(&got), "            "),
                    ));
                }
            }
        }
        ts += step;
    }

    for case in &tg.promql_expr_test {
        let at = crate::format_duration(case.eval_time.0);
        let query = (engine.query)(storage.clone());
        let mut got = match query(&case.expr, case.eval_time.0.as_millis() as i64) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("    expr: {:?}, time: {at}, err: {e}", case.expr));
                continue;
            }
        };
        let mut exp = Vec::with_capacity(case.exp_samples.len());
        let mut bad_labels = None;
        for s in &case.exp_samples {
            match format::parse_series_labels(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    bad_labels = Some(format!("labels {:?}: {e}", s.labels));
                    break;
                }
            }
        }
        if let Some(e) = bad_labels {
            errors.push(format!("    expr: {:?}, time: {at}, err: {e}", case.expr));
            continue;
        }
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        // Exact comparison, as promtool's reflect.DeepEqual: NaN never equals NaN.
        let same = exp.len() == got.len()
            && exp
                .iter()
                .zip(&got)
                .all(|((el, ev), (gl, gv))| el == gl && ev == gv);
        if !same {
            errors.push(format!(
                "    expr: {:?}, time: {at},\n        exp: {}\n        got: {}",
                case.expr,
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    errors
}

/// Writes each input series at `i * interval` for its i-th value; `_` leaves a step empty.
fn load_series(tg: &TestGroup, interval: Duration, storage: &MemStorage) -> Result<(), String> {
    let step = interval.as_millis() as i64;
    let mut batch = Vec::with_capacity(tg.input_series.len());
    for s in &tg.input_series {
        let labels = format::parse_series_labels(&s.series)
            .map_err(|e| format!("series {:?}: {e}", s.series))?;
        let samples = format::expand_values(&s.values)?
            .into_iter()
            .zip(0i64..)
            .filter_map(|(p, i)| match p {
                Point::Omitted => None,
                Point::Value(v) => Some(Sample { t: i * step, v }),
            })
            .collect();
        batch.push(Series { labels, samples });
    }
    storage.append(&batch).map_err(|e| e.to_string())?;
    Ok(())
}

fn check_queries(groups: &[RuleGroup], engine: &RuleTestEngine) -> Result<(), String> {
    for g in groups {
        for rule in &g.rules {
            let expr = match rule {
                crate::Rule::Alerting(a) => &a.expr,
                crate::Rule::Recording(r) => &r.expr,
            };
            (engine.check_expr)(expr).map_err(|e| {
                format!(
                    "{}: group {:?}, rule {:?}: {e}",
                    g.file,
                    g.name,
                    rule.name()
                )
            })?;
        }
    }
    Ok(())
}

/// promtool stops a test group at the first step where a rule failed, naming each one.
fn rule_errors(manager: &RuleManager, ts: i64) -> Vec<String> {
    let mut out = Vec::new();
    for g in manager.group_statuses() {
        for r in g.rules {
            if let Some(err) = r.last_error {
                out.push(format!(
                    "    rule: {}, time: {}, err: {err}",
                    r.rule.name(),
                    go_duration(ts)
                ));
            }
        }
    }
    out
}

/// Firing alerts by rule name, as (labels, annotations).
fn firing_alerts(manager: &RuleManager) -> HashMap<String, Vec<(Labels, Labels)>> {
    let mut out: HashMap<String, Vec<(Labels, Labels)>> = HashMap::new();
    for a in manager.active_alerts() {
        if a.state == crate::AlertState::Firing {
            out.entry(a.rule)
                .or_default()
                .push((a.labels, a.annotations));
        }
    }
    out
}

fn alerts_string(list: &[(Labels, Labels)]) -> String {
    if list.is_empty() {
        return "[]".to_string();
    }
    let mut s = String::from("[");
    for (i, (labels, annotations)) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let one = format!("\nLabels:{labels}\nAnnotations:{annotations}");
        s.push_str(&format!("\n{i}:{}", indent_lines(&one, "  ")));
    }
    s.push_str("\n]");
    s
}

fn samples_string(list: &[(Labels, f64)]) -> String {
    if list.is_empty() {
        return "nil".to_string();
    }
    list.iter()
        .map(|(l, v)| format!("{l} {}", go_float_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prefixes every line but the first with `indent`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{indent}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `2.5E-03`, `+Inf`, `NaN`.
fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:E}");
    let Some((mantissa, exp)) = s.split_once('E') else {
        return s;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}E{sign}{digits:0>2}")
}

/// Go's `time.Duration.String()` for a non-negative count of milliseconds: `0s`, `500ms`,
/// `1m0s`, `1h2m3.5s`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let s = format!("{}.{:03}", rest / 1000, rest % 1000);
        format!("{}s", s.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests;
