//! Writing the text format 0.0.4: the agent's own `/metrics` families (`selfmetrics`, the
//! scraper's `prometheus_target_*`). One writer, so escaping and special values are handled in
//! one place.

use std::fmt::Write as _;

/// A text-format body being written.
#[derive(Debug, Default)]
pub(crate) struct TextWriter {
    pub text: String,
}

/// The family just declared, so its samples can be chained.
pub(crate) struct FamilyWriter<'w> {
    out: &'w mut TextWriter,
    name: &'w str,
}

impl FamilyWriter<'_> {
    pub fn sample(self, labels: &[(&str, &str)], value: f64) -> Self {
        self.out.line(self.name, labels, value);
        self
    }
}

impl TextWriter {
    /// `# HELP` and `# TYPE` of a family whose samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter<'w>(&'w mut self, name: &'w str, help: &str) -> FamilyWriter<'w> {
        self.family(name, "counter", help);
        FamilyWriter { out: self, name }
    }

    pub fn gauge<'w>(&'w mut self, name: &'w str, help: &str) -> FamilyWriter<'w> {
        self.family(name, "gauge", help);
        FamilyWriter { out: self, name }
    }

    /// One sample line; label values are escaped, NaN and infinities written as the format
    /// spells them.
    pub fn line(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = match value {
            v if v.is_nan() => writeln!(self.text, " NaN"),
            v if v == f64::INFINITY => writeln!(self.text, " +Inf"),
            v if v == f64::NEG_INFINITY => writeln!(self.text, " -Inf"),
            v => writeln!(self.text, " {v}"),
        };
    }
}

/// The value of the sample `name` with exactly `labels` in a text-format body, for tests.
#[cfg(test)]
pub(crate) fn sample_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exp = super::parse(body, super::Format::Text).ok()?;
    exp.samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(n, lv)| n == k && lv == v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_label_values_and_spell_special_values() {
        let mut w = TextWriter::default();
        w.gauge("g", "A gauge.")
            .sample(&[("job", "a\"b\\c\nd")], f64::NAN)
            .sample(&[], f64::INFINITY)
            .sample(&[("x", "y")], -1.5);
        assert_eq!(
            w.text,
            "# HELP g A gauge.\n# TYPE g gauge\ng{job=\"a\\\"b\\\\c\\nd\"} NaN\ng +Inf\ng{x=\"y\"} -1.5\n"
        );
        assert!(sample_value(&w.text, "g", &[("job", "a\"b\\c\nd")]).is_some_and(f64::is_nan));
        assert_eq!(sample_value(&w.text, "g", &[("x", "y")]), Some(-1.5));
    }
}
