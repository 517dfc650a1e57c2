//! Annotations: the warnings and infos Prometheus attaches to a result, in its wording.

/// The annotations collected while a query runs, each message once, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    pub fn warning(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// `rate` or `increase` over a series whose name does not look like a counter's.
    ///
    /// Prometheus appends the expression's position, `(1:6)`, to this text; Vigil reports the
    /// message alone.
    pub fn possible_non_counter(&mut self, metric_name: &str) {
        self.info(format!(
            "PromQL info: metric might not be a counter, name does not end in \
             _total/_sum/_count/_bucket: {metric_name:?}"
        ));
    }
}

/// A float as Go's `%g` prints it in annotations: shortest form, `+Inf`/`-Inf`/`NaN`.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Whether a metric name carries one of the suffixes counters conventionally have.
pub(crate) fn looks_like_counter(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_counter_info_is_reported_once() {
        let mut a = Annotations::default();
        a.possible_non_counter("temp");
        a.possible_non_counter("temp");
        assert_eq!(
            a.infos,
            vec![
                "PromQL info: metric might not be a counter, name does not end in \
                 _total/_sum/_count/_bucket: \"temp\""
            ]
        );
        assert!(looks_like_counter("http_requests_total"));
        assert!(!looks_like_counter("temperature"));
    }
}
