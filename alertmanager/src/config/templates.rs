//! The `templates:` globs of an Alertmanager config, expanded as Go's `filepath.Glob` does:
//! relative to the config file's directory, `*`, `?` and `[…]` classes in any path component,
//! matches in lexical order, a pattern matching nothing giving nothing (not an error).

use std::path::{Component, Path, PathBuf};

/// The files `patterns` name, relative to `base`, in order (each pattern's matches sorted).
pub(crate) fn expand_globs(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let mut current = vec![if path.is_absolute() {
            PathBuf::new()
        } else {
            base.to_path_buf()
        }];
        for component in path.components() {
            let part = match component {
                Component::Normal(p) => p.to_string_lossy().into_owned(),
                other => {
                    current = current
                        .into_iter()
                        .map(|c| c.join(other.as_os_str()))
                        .collect();
                    continue;
                }
            };
            if !has_meta(&part) {
                current = current.into_iter().map(|c| c.join(&part)).collect();
                continue;
            }
            // Validate the pattern once, even when there is no directory to list.
            match_name(&part, "").map_err(|e| format!("template glob {pattern:?}: {e}"))?;
            let mut next = Vec::new();
            for dir in current {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    if match_name(&part, &name).unwrap_or(false) {
                        next.push(dir.join(name));
                    }
                }
            }
            current = next;
        }
        out.extend(current.into_iter().filter(|p| p.exists()));
    }
    Ok(out)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Match` for one path component.
fn match_name(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, String> {
    let Some((&first, rest)) = p.split_first() else {
        return Ok(n.is_empty());
    };
    match first {
        '*' => {
            for skip in 0..=n.len() {
                if match_from(rest, &n[skip..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        '?' => Ok(!n.is_empty() && match_from(rest, &n[1..])?),
        '[' => {
            let (matched, after) = match_class(rest, n.first().copied())?;
            Ok(matched && match_from(after, &n[1..])?)
        }
        '\\' => {
            let Some((&lit, rest)) = rest.split_first() else {
                return Err("syntax error in pattern".into());
            };
            Ok(n.first() == Some(&lit) && match_from(rest, &n[1..])?)
        }
        c => Ok(n.first() == Some(&c) && match_from(rest, &n[1..])?),
    }
}

/// Matches `c` against the class that starts after `[`; returns the rest of the pattern.
fn match_class(p: &[char], c: Option<char>) -> Result<(bool, &[char]), String> {
    let bad = || "syntax error in pattern".to_string();
    let (negated, mut p) = match p.split_first() {
        Some(('^', rest)) => (true, rest),
        _ => (false, p),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        match p.split_first() {
            None => return Err(bad()),
            Some((']', rest)) if !first => {
                p = rest;
                break;
            }
            Some(_) => {}
        }
        first = false;
        let (lo, rest) = class_char(p).ok_or_else(bad)?;
        p = rest;
        let mut hi = lo;
        if let Some(('-', rest)) = p.split_first() {
            let (h, rest) = class_char(rest).ok_or_else(bad)?;
            hi = h;
            p = rest;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Ok((c.is_some() && matched != negated, p))
}

fn class_char(p: &[char]) -> Option<(char, &[char])> {
    match p.split_first()? {
        ('\\', rest) => rest.split_first().map(|(c, r)| (*c, r)),
        (']', _) | ('-', _) => None,
        (c, rest) => Some((*c, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go_filepath_match() {
        let m = |p: &str, n: &str| match_name(p, n).unwrap();
        assert!(m("*.tmpl", "custom.tmpl"));
        assert!(!m("*.tmpl", "custom.tmpl.bak"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(match_name("[a-", "a").is_err());
    }

    #[test]
    fn expands_relative_to_the_base_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        for f in ["b.tmpl", "a.tmpl", "c.txt"] {
            std::fs::write(dir.path().join("templates").join(f), "").unwrap();
        }
        let got = expand_globs(
            dir.path(),
            &["templates/*.tmpl".into(), "nothing/*.tmpl".into()],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                dir.path().join("templates/a.tmpl"),
                dir.path().join("templates/b.tmpl")
            ]
        );
        assert!(expand_globs(dir.path(), &["[x".into()]).is_err());
    }
}
