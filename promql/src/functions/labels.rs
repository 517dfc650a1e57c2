//! Functions that rewrite or order by labels: `label_replace`, `label_join` and the natural
//! order `sort_by_label` uses.

use crate::error::Error;
use crate::value::Elem;
use model::Labels;
use std::cmp::Ordering;

/// Whether `name` is a valid label name (Prometheus 3.x accepts any UTF-8, but not empty).
fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// `label_replace(v, dst, replacement, src, regex)`: where the (fully anchored) regex matches
/// the value of `src`, `dst` is set to `replacement` with `$1`/`${name}` expanded.
pub(crate) fn label_replace(
    input: Vec<Elem>,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Vec<Elem>, Error> {
    let re = regex::Regex::new(&format!("^(?s:{regex})$")).map_err(|e| {
        Error::exec(format!(
            "invalid regular expression in label_replace(): {regex}: {e}"
        ))
    })?;
    if !valid_label_name(dst) {
        return Err(Error::exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(input.len());
    for e in input {
        let value = e.labels.get(src).unwrap_or("");
        let labels = match re.captures(value) {
            Some(caps) => {
                let mut expanded = String::new();
                caps.expand(replacement, &mut expanded);
                e.labels.with(dst, &expanded)
            }
            None => e.labels,
        };
        out.push(Elem { labels, v: e.v });
    }
    Ok(out)
}

/// `label_join(v, dst, separator, src...)`.
pub(crate) fn label_join(
    input: Vec<Elem>,
    dst: &str,
    separator: &str,
    srcs: &[String],
) -> Result<Vec<Elem>, Error> {
    if !valid_label_name(dst) {
        return Err(Error::exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    Ok(input
        .into_iter()
        .map(|e| {
            let joined: Vec<&str> = srcs.iter().map(|s| e.labels.get(s).unwrap_or("")).collect();
            Elem {
                labels: e.labels.with(dst, &joined.join(separator)),
                v: e.v,
            }
        })
        .collect())
}

/// Natural order: runs of digits compare by numeric value, everything else bytewise.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&a[si..i]);
            let nb = trim_zeros(&b[sj..j]);
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let start = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[start..]
}

/// Orders two label sets by the values of `names` in natural order, then by the whole set.
pub(crate) fn cmp_by_labels(a: &Labels, b: &Labels, names: &[String]) -> Ordering {
    for n in names {
        let (x, y) = (a.get(n).unwrap_or(""), b.get(n).unwrap_or(""));
        if x != y {
            return natural_cmp(x, y);
        }
    }
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_anchors_and_expands() {
        let input = vec![Elem {
            labels: Labels::from_pairs([("__name__", "m"), ("src", "a-b")]),
            v: 1.0,
        }];
        let out = label_replace(input.clone(), "dst", "$2:$1", "src", "(.*)-(.*)").unwrap();
        assert_eq!(out[0].labels.get("dst"), Some("b:a"));
        let out = label_replace(input.clone(), "dst", "x", "src", "a").unwrap();
        assert_eq!(
            out[0].labels.get("dst"),
            None,
            "the regex must match the whole value"
        );
        assert!(label_replace(input, "dst", "x", "src", "(").is_err());
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("a10", "a10"), Ordering::Equal);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
    }
}
