//! The parsed form of a LogQL log query.

use super::line_filter::LineFilter;
use model::Matcher;
use std::fmt;

/// A log query: a stream selector and the line filters that follow it, in query order.
///
/// The parser guarantees at least one matcher that rejects the empty value, so a query never
/// selects every stream.
#[derive(Clone, Debug)]
pub struct LogQuery {
    pub matchers: Vec<Matcher>,
    pub line_filters: Vec<LineFilter>,
}

/// LogQL form: `{app="api", env!="dev"} |= "error"`.
impl fmt::Display for LogQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
        for lf in &self.line_filters {
            write!(f, " {lf}")?;
        }
        Ok(())
    }
}
