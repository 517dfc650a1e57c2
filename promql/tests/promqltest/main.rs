//! The promqltest runner: runs Prometheus's PromQL test files (`../shared/promql/testdata`)
//! and Vigil's own (`promql/testdata`) against Vigil's engine, prints a pass count per file
//! and fails on any eval that is neither passing nor excluded (see `exclusions.rs`).
//!
//! `PROMQLTEST_FILTER=subquery` runs only files whose name contains the text;
//! `PROMQLTEST_VERBOSE=1` prints every failure instead of the first few per file.

mod exclusions;
mod run;
mod script;
mod series;

use model::{Appender, MemStorage, Sample, Series};
use promql::{Engine, EngineOptions};
use script::Command;
use series::Point;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    excluded: usize,
    failures: Vec<String>,
}

fn engine(store: &Arc<MemStorage>) -> Engine {
    Engine::new(store.clone(), EngineOptions::default())
}

fn run_file(name: &str, text: &str) -> Tally {
    let mut tally = Tally::default();
    if exclusions::excluded_file(name).is_some() {
        tally.excluded = text
            .lines()
            .filter(|l| l.trim_start().starts_with("eval"))
            .count();
        return tally;
    }
    let commands = match script::parse_file(text) {
        Ok(c) => c,
        Err(e) => {
            tally.failed += 1;
            tally.failures.push(format!("file does not parse: {e:#}"));
            return tally;
        }
    };
    let mut store = Arc::new(MemStorage::new());
    let mut eng = engine(&store);
    let mut histogram_metrics: HashSet<String> = HashSet::new();
    for (line, cmd) in commands {
        match cmd {
            Command::Clear => {
                store = Arc::new(MemStorage::new());
                eng = engine(&store);
                histogram_metrics.clear();
            }
            Command::Load {
                with_nhcb,
                step_ms,
                series,
            } => {
                let mut batch = Vec::new();
                for s in series {
                    if with_nhcb {
                        if let Some(base) = s.labels.metric_name().and_then(nhcb_base_name) {
                            histogram_metrics.insert(base.to_string());
                        }
                    }
                    let mut samples = Vec::new();
                    for (i, p) in s.points.iter().enumerate() {
                        match p {
                            Point::Float(v) => samples.push(Sample {
                                t: i as i64 * step_ms,
                                v: *v,
                            }),
                            Point::Histogram => {
                                if let Some(n) = s.labels.metric_name() {
                                    histogram_metrics.insert(n.to_string());
                                }
                            }
                            Point::Omitted => {}
                        }
                    }
                    // Prometheus's loader keys a load's series by label set, so a series
                    // defined twice in one load takes its last definition.
                    batch.retain(|b: &Series| b.labels != s.labels);
                    batch.push(Series {
                        labels: s.labels,
                        samples,
                    });
                }
                if let Err(e) = store.append(&batch) {
                    tally.failed += 1;
                    tally
                        .failures
                        .push(format!("line {line}: load failed: {e}"));
                }
            }
            Command::Eval(ev) => {
                if exclusions::excluded(name, &ev, &histogram_metrics).is_some() {
                    tally.excluded += 1;
                    continue;
                }
                match run::run_eval(&eng, &ev) {
                    Ok(()) => tally.passed += 1,
                    Err(e) => {
                        tally.failed += 1;
                        tally
                            .failures
                            .push(format!("line {line}: {}: {e}", ev.query));
                    }
                }
            }
        }
    }
    tally
}

/// The base name under which `load_with_nhcb` stores the native histogram converted from a
/// classic histogram's `_bucket`/`_sum`/`_count` series.
fn nhcb_base_name(name: &str) -> Option<&str> {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "test"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn promqltest_files() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let upstream = manifest.join("../../shared/promql/testdata");
    let mut files = test_files(&manifest.join("testdata"));
    if upstream.is_dir() {
        files.extend(test_files(&upstream));
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing and CI=true", upstream.display());
    } else {
        println!(
            "skipping Prometheus's promqltest files: {} not found",
            upstream.display()
        );
    }
    let filter = std::env::var("PROMQLTEST_FILTER").unwrap_or_default();
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok_and(|v| v == "1");
    let mut total = Tally::default();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(&filter) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let t = run_file(&name, &text);
        println!(
            "{name:<28} passed {:>4}  failed {:>4}  excluded {:>4}",
            t.passed, t.failed, t.excluded
        );
        let shown = if verbose { usize::MAX } else { 5 };
        for f in t.failures.iter().take(shown) {
            println!("    {f}");
        }
        total.passed += t.passed;
        total.failed += t.failed;
        total.excluded += t.excluded;
    }
    println!(
        "total: passed {}  failed {}  excluded {}",
        total.passed, total.failed, total.excluded
    );
    assert_eq!(total.failed, 0, "promqltest evals failed (see above)");
}
