//! Every eval the runner does not hold Vigil to, with the reason. Anything not listed here
//! must pass. Keep the list short and specific: a whole file only where the file is about a
//! feature Vigil does not have, otherwise single evals by line number.

use crate::script::Eval;
use std::collections::HashSet;

/// Whole files, each about one feature Vigil does not implement.
const FILES: &[(&str, &str)] = &[
    (
        "native_histograms.test",
        "native histograms are not implemented",
    ),
    (
        "start_timestamps.test",
        "start timestamps (`@st`) are an experimental storage feature",
    ),
    (
        "duration_expression.test",
        "duration expressions are experimental and promql-parser cannot parse them",
    ),
    (
        "extended_vectors.test",
        "the anchored/smoothed range modifiers are experimental and promql-parser cannot parse \
         them",
    ),
    (
        "fill-modifier.test",
        "fill()/fill_left()/fill_right() binop modifiers are experimental",
    ),
    (
        "info.test",
        "the experimental info() function is left out (issue 4)",
    ),
    (
        "type_and_unit.test",
        "__type__/__unit__ labels are an experimental feature",
    ),
];

// Reasons for single evals: experimental features, native histograms, or what promql-parser
// does not let Vigil observe.
const NATIVE_HISTOGRAM_SERIES: &str =
    "selects native-histogram series (by regex or by label), which Vigil cannot store; \
     Prometheus's result or info annotation depends on them";
const DURATION_FUNCTIONS: &str =
    "step()/range()/start()/end()/min_of()/max_of() belong to the experimental duration \
     expressions";
const HISTOGRAM_QUANTILES: &str = "histogram_quantiles() is experimental and not implemented";
const POSITIONS: &str = "the expected annotation must end in the expression's position \
     (line:col), and promql-parser gives no positions";
const INVALID_UTF8: &str = "promql-parser turns the invalid-UTF-8 escape into a valid \
     character, so the invalid label name cannot be seen";
const DELAYED_NAME: &str = "delayed __name__ removal is the experimental \
     EnableDelayedNameRemoval feature the Go runner turns on for this file; Vigil drops \
     __name__ where Prometheus does without the flag";

/// Single evals: `(file, line of the eval, reason)`.
const EVALS: &[(&str, usize, &str)] = &[
    ("aggregators.test", 239, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 252, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 378, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 382, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 386, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 390, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 404, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 408, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 412, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 416, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 520, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 544, POSITIONS),
    ("aggregators.test", 814, NATIVE_HISTOGRAM_SERIES),
    ("aggregators.test", 817, NATIVE_HISTOGRAM_SERIES),
    ("functions.test", 523, INVALID_UTF8),
    ("functions.test", 1649, NATIVE_HISTOGRAM_SERIES),
    ("functions.test", 2081, DURATION_FUNCTIONS),
    ("functions.test", 2084, DURATION_FUNCTIONS),
    ("functions.test", 2087, DURATION_FUNCTIONS),
    ("functions.test", 2091, DURATION_FUNCTIONS),
    ("functions.test", 2094, DURATION_FUNCTIONS),
    ("functions.test", 2097, DURATION_FUNCTIONS),
    ("functions.test", 2101, DURATION_FUNCTIONS),
    ("functions.test", 2105, DURATION_FUNCTIONS),
    ("functions.test", 2108, DURATION_FUNCTIONS),
    ("functions.test", 2112, DURATION_FUNCTIONS),
    ("functions.test", 2115, DURATION_FUNCTIONS),
    ("functions.test", 2122, DURATION_FUNCTIONS),
    ("functions.test", 2125, DURATION_FUNCTIONS),
    ("functions.test", 2129, DURATION_FUNCTIONS),
    ("functions.test", 2133, DURATION_FUNCTIONS),
    ("functions.test", 2140, DURATION_FUNCTIONS),
    ("functions.test", 2143, DURATION_FUNCTIONS),
    ("functions.test", 2146, DURATION_FUNCTIONS),
    ("functions.test", 2150, DURATION_FUNCTIONS),
    ("functions.test", 2153, DURATION_FUNCTIONS),
    ("functions.test", 2156, DURATION_FUNCTIONS),
    ("functions.test", 2160, DURATION_FUNCTIONS),
    ("functions.test", 2163, DURATION_FUNCTIONS),
    ("functions.test", 2167, DURATION_FUNCTIONS),
    ("functions.test", 2170, DURATION_FUNCTIONS),
    ("functions.test", 2174, DURATION_FUNCTIONS),
    ("functions.test", 2177, DURATION_FUNCTIONS),
    ("functions.test", 2181, DURATION_FUNCTIONS),
    ("functions.test", 2184, DURATION_FUNCTIONS),
    ("functions.test", 2188, DURATION_FUNCTIONS),
    ("functions.test", 2191, DURATION_FUNCTIONS),
    ("functions.test", 2195, DURATION_FUNCTIONS),
    ("functions.test", 2198, DURATION_FUNCTIONS),
    ("functions.test", 2221, DURATION_FUNCTIONS),
    ("functions.test", 2224, DURATION_FUNCTIONS),
    ("functions.test", 2227, DURATION_FUNCTIONS),
    ("functions.test", 2230, DURATION_FUNCTIONS),
    ("functions.test", 2234, DURATION_FUNCTIONS),
    ("functions.test", 2237, DURATION_FUNCTIONS),
    ("functions.test", 2241, DURATION_FUNCTIONS),
    ("functions.test", 2244, DURATION_FUNCTIONS),
    ("functions.test", 2248, DURATION_FUNCTIONS),
    ("functions.test", 2251, DURATION_FUNCTIONS),
    ("functions.test", 2255, DURATION_FUNCTIONS),
    ("functions.test", 2258, DURATION_FUNCTIONS),
    ("functions.test", 2261, DURATION_FUNCTIONS),
    ("functions.test", 2264, DURATION_FUNCTIONS),
    ("histograms.test", 614, HISTOGRAM_QUANTILES),
    ("histograms.test", 652, HISTOGRAM_QUANTILES),
    ("histograms.test", 674, HISTOGRAM_QUANTILES),
    ("histograms.test", 696, HISTOGRAM_QUANTILES),
    ("histograms.test", 701, POSITIONS),
    ("histograms.test", 704, HISTOGRAM_QUANTILES),
    ("histograms.test", 1037, HISTOGRAM_QUANTILES),
    ("histograms.test", 1184, HISTOGRAM_QUANTILES),
    ("histograms.test", 1205, HISTOGRAM_QUANTILES),
    ("name_label_dropping.test", 59, DELAYED_NAME),
    ("name_label_dropping.test", 64, DELAYED_NAME),
    ("name_label_dropping.test", 69, DELAYED_NAME),
    ("name_label_dropping.test", 74, DELAYED_NAME),
    ("name_label_dropping.test", 89, DELAYED_NAME),
    ("name_label_dropping.test", 115, DELAYED_NAME),
    ("name_label_dropping.test", 119, DELAYED_NAME),
    ("name_label_dropping.test", 123, DELAYED_NAME),
    ("operators.test", 292, NATIVE_HISTOGRAM_SERIES),
];

/// Why `ev` in `file` is excluded, if it is. `histogram_metrics` are the metric names that
/// have native-histogram samples in the data loaded so far.
pub fn excluded(file: &str, ev: &Eval, histogram_metrics: &HashSet<String>) -> Option<String> {
    if let Some(why) = excluded_file(file) {
        return Some(why.to_string());
    }
    if let Some((_, _, why)) = EVALS.iter().find(|(f, l, _)| *f == file && *l == ev.line) {
        return Some((*why).to_string());
    }
    if ev.expects_histogram {
        return Some("native histogram in the expected result".into());
    }
    if let Some(name) = histogram_metrics
        .iter()
        .find(|name| mentions(&ev.query, name))
    {
        return Some(format!("reads {name}, which has native-histogram samples"));
    }
    None
}

/// Why a whole file is excluded, if it is.
pub fn excluded_file(file: &str) -> Option<&'static str> {
    FILES.iter().find(|(f, _)| *f == file).map(|(_, why)| *why)
}

/// Whether `query` names `metric` as a whole word.
fn mentions(query: &str, metric: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    query.match_indices(metric).any(|(i, _)| {
        let before = query[..i].chars().next_back();
        let after = query[i + metric.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}
