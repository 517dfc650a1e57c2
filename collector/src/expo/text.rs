//! Text format 0.0.4 (Prometheus's `text/plain; version=0.0.4`): blank-separated tokens,
//! `# HELP` and `# TYPE` lines, other comments ignored, millisecond timestamps.
//!
//! The format's rules that Prometheus relies on are enforced: one HELP and one TYPE per
//! name, a TYPE before that name's samples, and a known type. Grouping is not: a family
//! whose samples are split by another family's is still one family, as Prometheus reads it.
//! Duplicate series are returned as written; what to do with them is the scraper's call.

use std::collections::HashMap;

use super::lex::{help_text, is_metric_name, Cursor};
use super::{ExpoSample, Exposition, FamilyMeta, MetricKind, ParseError};

/// Per-family state while parsing.
#[derive(Default)]
struct Seen {
    help: bool,
    typed: bool,
    samples: bool,
}

pub(super) fn parse(body: &str) -> Result<Exposition<'_>, ParseError> {
    let mut out = Exposition::default();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut current: Option<usize> = None;

    for (i, raw) in body.split('\n').enumerate() {
        let err = |reason: String| ParseError {
            line: i + 1,
            reason,
        };
        let line = raw.trim_start_matches([' ', '\t']);
        if line.trim_end_matches([' ', '\t']).is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment
                .trim_start_matches([' ', '\t'])
                .splitn(2, [' ', '\t']);
            let keyword = words.next().unwrap_or_default();
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // an ordinary comment
            }
            let rest = words
                .next()
                .unwrap_or_default()
                .trim_start_matches([' ', '\t']);
            let (name, arg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            if !is_metric_name(name) {
                return Err(err(format!("# {keyword}: invalid metric name {name:?}")));
            }
            let idx = *by_name.entry(name).or_insert_with(|| {
                out.families.push(FamilyMeta {
                    name,
                    kind: MetricKind::Unknown,
                    help: "".into(),
                    unit: "",
                });
                seen.push(Seen::default());
                out.families.len() - 1
            });
            let state = &mut seen[idx];
            if keyword == "HELP" {
                if state.help {
                    return Err(err(format!("second HELP line for {name}")));
                }
                state.help = true;
                out.families[idx].help = help_text(arg.trim_start_matches([' ', '\t']));
            } else {
                if state.typed {
                    return Err(err(format!("second TYPE line for {name}")));
                }
                if state.samples {
                    return Err(err(format!("TYPE line for {name} after its samples")));
                }
                state.typed = true;
                out.families[idx].kind = match arg.trim_matches([' ', '\t']) {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "histogram" => MetricKind::Histogram,
                    "summary" => MetricKind::Summary,
                    "untyped" => MetricKind::Unknown,
                    other => return Err(err(format!("invalid metric type {other:?}"))),
                };
            }
            current = Some(idx);
            continue;
        }

        let mut c = Cursor::new(line, false);
        let name = c.metric_name().map_err(err)?;
        let labels = if c.rest().trim_start_matches([' ', '\t']).starts_with('{') {
            c.labels_after_blanks().map_err(err)?
        } else {
            Vec::new()
        };
        let tail = c.tail().map_err(err)?;
        let family = match current.filter(|&f| owns(&out.families[f], name)) {
            Some(f) => f,
            None => match owner(&out.families, &by_name, name) {
                Some(f) => f,
                None => {
                    out.families.push(FamilyMeta {
                        name,
                        kind: MetricKind::Unknown,
                        help: "".into(),
                        unit: "",
                    });
                    seen.push(Seen::default());
                    by_name.insert(name, out.families.len() - 1);
                    out.families.len() - 1
                }
            },
        };
        seen[family].samples = true;
        current = Some(family);
        out.samples.push(ExpoSample {
            family,
            name,
            labels,
            value: tail.value,
            timestamp_ms: tail.timestamp.map(|t| t.millis()),
            exemplar: None,
        });
    }
    Ok(out)
}

/// Whether a sample called `name` belongs to family `f`: its own name, or a histogram's or
/// summary's `_bucket`/`_sum`/`_count`.
fn owns(f: &FamilyMeta<'_>, name: &str) -> bool {
    if f.name == name {
        return true;
    }
    let Some(suffix) = name.strip_prefix(f.name) else {
        return false;
    };
    match f.kind {
        MetricKind::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count"),
        MetricKind::Summary => matches!(suffix, "_sum" | "_count"),
        _ => false,
    }
}

/// The family declared earlier that owns `name`, if any.
fn owner(families: &[FamilyMeta<'_>], by_name: &HashMap<&str, usize>, name: &str) -> Option<usize> {
    if let Some(&f) = by_name.get(name) {
        return Some(f);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let &f = by_name.get(base)?;
        owns(&families[f], name).then_some(f)
    })
}
