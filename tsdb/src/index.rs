//! The head's inverted index: label name → value → sorted series ids, and the planner that
//! turns label matchers into one sorted id list (Prometheus's `MemPostings` and
//! `PostingsForMatchers`).
//!
//! The index knows label sets and ids only, never samples, so it can be tested and later
//! written out as a block index without the head around it.

use crate::postings::{intersect, subtract, union, SeriesRef};
use model::{Labels, MatchOp, Matcher};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Postings lists for every label pair, plus the list of all ids.
///
/// Both maps are ordered so label names and values come out sorted without a sort per query.
#[derive(Debug, Default)]
pub(crate) struct MemPostings {
    by_name: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
    all: Vec<SeriesRef>,
}

/// What one matcher contributes to a selection.
enum Plan<'a> {
    /// The matcher selects every series (`x=~".*"`, or `x!="v"` where no series has `x="v"`).
    Everything,
    /// The matcher selects no series.
    Nothing,
    /// Only these ids can match.
    Include(Cow<'a, [SeriesRef]>),
    /// Every id matches except these. Used for matchers that also select series lacking the
    /// label: their matching set is large and best described by its complement.
    Exclude(Vec<SeriesRef>),
}

impl MemPostings {
    /// Adds a new series. `id` must be larger than every id added before, which keeps every
    /// list sorted by a plain push.
    pub(crate) fn add(&mut self, id: SeriesRef, labels: &Labels) {
        debug_assert!(self.all.last().is_none_or(|&last| last < id));
        self.all.push(id);
        for l in labels {
            self.by_name
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
    }

    /// How many series carry `name="value"`.
    pub(crate) fn count(&self, name: &str, value: &str) -> usize {
        self.by_name
            .get(name)
            .and_then(|values| values.get(value))
            .map_or(0, Vec::len)
    }

    /// Postings read back from a block's index: `all` and every list sorted.
    pub(crate) fn from_lists(
        all: Vec<SeriesRef>,
        by_name: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
    ) -> MemPostings {
        MemPostings { by_name, all }
    }

    /// Removes the series in `dead` (sorted) from every list, dropping lists, and names,
    /// left empty: the head's garbage collection after a block cut. One pass over all
    /// lists, which beats a lookup per removed label when a cut removes many series.
    pub(crate) fn remove(&mut self, dead: &[SeriesRef]) {
        if dead.is_empty() {
            return;
        }
        let alive = |id: &SeriesRef| dead.binary_search(id).is_err();
        self.all.retain(alive);
        self.by_name.retain(|_, values| {
            values.retain(|_, ids| {
                ids.retain(alive);
                !ids.is_empty()
            });
            !values.is_empty()
        });
    }

    /// Every label name, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every value of label `name`, sorted.
    pub(crate) fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.by_name
            .get(name)
            .into_iter()
            .flat_map(|values| values.keys().map(String::as_str))
    }

    /// Every label name with, for each of its values, how many series carry that pair:
    /// what the cardinality report ([`crate::HeadStatus`]) is computed from.
    pub(crate) fn pair_counts(
        &self,
    ) -> impl Iterator<Item = (&str, impl ExactSizeIterator<Item = (&str, u64)>)> {
        self.by_name.iter().map(|(name, values)| {
            let counts = values.iter().map(|(v, ids)| (v.as_str(), ids.len() as u64));
            (name.as_str(), counts)
        })
    }

    /// The ids of the series that satisfy every matcher, sorted; all ids when there are no
    /// matchers.
    ///
    /// Each matcher becomes an include list or an exclude list; the include lists are
    /// intersected smallest-first, starting from all ids only when every matcher is of the
    /// exclude kind, and the union of the exclude lists is subtracted last.
    pub(crate) fn for_matchers(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let mut include: Vec<Cow<'_, [SeriesRef]>> = Vec::new();
        let mut exclude: Vec<Vec<SeriesRef>> = Vec::new();
        for m in matchers {
            match self.plan(m) {
                Plan::Everything => {}
                Plan::Nothing => return Vec::new(),
                Plan::Include(ids) => include.push(ids),
                Plan::Exclude(ids) => exclude.push(ids),
            }
        }
        let base: Cow<'_, [SeriesRef]> = match include.as_slice() {
            [] => Cow::Borrowed(&self.all),
            [one] => Cow::Borrowed(one.as_ref()),
            many => {
                let lists: Vec<&[SeriesRef]> = many.iter().map(|c| c.as_ref()).collect();
                Cow::Owned(intersect(&lists))
            }
        };
        if exclude.is_empty() || base.is_empty() {
            return base.into_owned();
        }
        let lists: Vec<&[SeriesRef]> = exclude.iter().map(Vec::as_slice).collect();
        subtract(&base, &union(&lists))
    }

    fn plan(&self, m: &Matcher) -> Plan<'_> {
        let values = self.by_name.get(&m.name);
        if m.matches_empty() {
            // Series without the label match too, so describe the set by the series that
            // have the label with a value the matcher refuses.
            let refused: Vec<&[SeriesRef]> = match (m.op, values) {
                (_, None) => Vec::new(),
                (MatchOp::Regex, _) if m.value == ".*" => Vec::new(),
                (MatchOp::NotEqual, Some(vs)) => {
                    vs.get(&m.value).map(Vec::as_slice).into_iter().collect()
                }
                (MatchOp::Equal, Some(vs)) => vs.values().map(Vec::as_slice).collect(),
                (MatchOp::NotRegex, Some(vs)) => match literal_alternatives(&m.value) {
                    Some(lits) => lits
                        .iter()
                        .filter_map(|v| vs.get(*v))
                        .map(Vec::as_slice)
                        .collect(),
                    None => matching_lists(vs, |v| !m.matches(v)),
                },
                (MatchOp::Regex, Some(vs)) => matching_lists(vs, |v| !m.matches(v)),
            };
            return match refused.as_slice() {
                [] => Plan::Everything,
                lists => Plan::Exclude(union(lists)),
            };
        }
        let Some(vs) = values else {
            return Plan::Nothing;
        };
        let accepted: Vec<&[SeriesRef]> = match m.op {
            MatchOp::Equal => vs.get(&m.value).map(Vec::as_slice).into_iter().collect(),
            // Only `x!=""` gets here: any value will do.
            MatchOp::NotEqual => vs.values().map(Vec::as_slice).collect(),
            MatchOp::Regex if m.value == ".+" => vs.values().map(Vec::as_slice).collect(),
            MatchOp::Regex => match literal_alternatives(&m.value) {
                Some(lits) => lits
                    .iter()
                    .filter_map(|v| vs.get(*v))
                    .map(Vec::as_slice)
                    .collect(),
                None => matching_lists(vs, |v| m.matches(v)),
            },
            MatchOp::NotRegex => matching_lists(vs, |v| m.matches(v)),
        };
        match accepted.as_slice() {
            [] => Plan::Nothing,
            [one] => Plan::Include(Cow::Borrowed(one)),
            lists => Plan::Include(Cow::Owned(union(lists))),
        }
    }
}

/// The postings lists of the values that satisfy `keep`, testing every value of the label.
fn matching_lists(
    values: &BTreeMap<String, Vec<SeriesRef>>,
    keep: impl Fn(&str) -> bool,
) -> Vec<&[SeriesRef]> {
    values
        .iter()
        .filter(|(v, _)| keep(v))
        .map(|(_, ids)| ids.as_slice())
        .collect()
}

/// The alternatives of a regex that is only literals joined by `|` (`a|b|c`, as Grafana's
/// multi-value variables produce), so each can be looked up instead of testing the regex
/// against every value. `None` when any regex syntax appears, or an alternative is empty
/// (which would match the empty string and belongs to the other branch of the planner).
fn literal_alternatives(pattern: &str) -> Option<Vec<&str>> {
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    if pattern.contains(META) {
        return None;
    }
    let alternatives: Vec<&str> = pattern.split('|').collect();
    if alternatives.iter().any(|a| a.is_empty()) {
        return None;
    }
    Some(alternatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    /// Series `i` has `job=job{i % 3}`, `instance=host{i}` and, for even `i`, `even=yes`.
    fn postings(n: u32) -> MemPostings {
        let mut p = MemPostings::default();
        for i in 0..n {
            let even = if i % 2 == 0 { "yes" } else { "" };
            let labels = Labels::from_pairs([
                ("job", format!("job{}", i % 3)),
                ("instance", format!("host{i}")),
                ("even", even.to_string()),
            ]);
            p.add(i, &labels);
        }
        p
    }

    #[test]
    fn equal_on_ten_thousand_series_reads_one_list() {
        let p = postings(10_000);
        let ms = [m(MatchOp::Equal, "instance", "host4242")];
        // An Equal matcher is one map lookup: the plan borrows that list, nothing is scanned.
        assert!(matches!(p.plan(&ms[0]), Plan::Include(Cow::Borrowed(ids)) if ids == [4242]));
        assert_eq!(p.for_matchers(&ms), vec![4242]);
        let ms = [
            m(MatchOp::Equal, "instance", "host4242"),
            m(MatchOp::Equal, "job", "job0"),
        ];
        assert_eq!(p.for_matchers(&ms), vec![4242]);
    }

    #[test]
    fn literal_alternation_takes_the_fast_path() {
        assert_eq!(literal_alternatives("a|b|c"), Some(vec!["a", "b", "c"]));
        assert_eq!(
            literal_alternatives("host 1|host-2"),
            Some(vec!["host 1", "host-2"])
        );
        for not_literal in ["a.b", "a|", "|a", "", "(a|b)", "a\\|b", "(?i)a", "a+"] {
            assert_eq!(literal_alternatives(not_literal), None, "{not_literal}");
        }
        let p = postings(100);
        let ms = [m(MatchOp::Regex, "instance", "host1|host7|host99|nohost")];
        assert_eq!(p.for_matchers(&ms), vec![1, 7, 99]);
    }

    #[test]
    fn negative_matchers_subtract_from_all() {
        let p = postings(10);
        let ms = [m(MatchOp::NotEqual, "job", "job0")];
        assert!(matches!(p.plan(&ms[0]), Plan::Exclude(ref ids) if ids == &[0, 3, 6, 9]));
        assert_eq!(p.for_matchers(&ms), vec![1, 2, 4, 5, 7, 8]);
        // Absent labels match `=""`, and `!~` with literals excludes exactly those values.
        assert_eq!(
            p.for_matchers(&[m(MatchOp::Equal, "even", "")]),
            vec![1, 3, 5, 7, 9]
        );
        assert_eq!(
            p.for_matchers(&[m(MatchOp::NotRegex, "job", "job1|job2")]),
            vec![0, 3, 6, 9]
        );
        // A matcher on a label nobody has, that also accepts the empty value, is a no-op.
        assert!(matches!(
            p.plan(&m(MatchOp::NotEqual, "nope", "x")),
            Plan::Everything
        ));
        assert!(matches!(
            p.plan(&m(MatchOp::Equal, "nope", "x")),
            Plan::Nothing
        ));
    }

    #[test]
    fn mixed_include_and_exclude() {
        let p = postings(12);
        let ms = [
            m(MatchOp::Regex, "job", "job(0|1)"),
            m(MatchOp::Equal, "even", "yes"),
            m(MatchOp::NotRegex, "instance", "host[0-4]"),
        ];
        // job0|job1: 0 1 3 4 6 7 9 10; even: 0 2 4 6 8 10; minus host0..host4.
        assert_eq!(p.for_matchers(&ms), vec![6, 10]);
        assert_eq!(p.for_matchers(&[]).len(), 12);
    }

    #[test]
    fn names_and_values_are_sorted() {
        let p = postings(12);
        assert_eq!(p.names().collect::<Vec<_>>(), ["even", "instance", "job"]);
        assert_eq!(
            p.values("job").collect::<Vec<_>>(),
            ["job0", "job1", "job2"]
        );
        assert_eq!(p.values("nope").count(), 0);
    }
}
