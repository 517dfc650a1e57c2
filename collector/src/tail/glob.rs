//! File globs for plain log files: `*` and `?` in the last path component
//! (`/var/log/*.log`), the shape every node-level log config uses. Wildcards in directory
//! components are not expanded; such a pattern matches nothing and is reported once at start.

use std::path::{Path, PathBuf};

/// True when `pattern` has wildcards only in its final component.
pub(crate) fn is_supported(pattern: &str) -> bool {
    match Path::new(pattern).parent() {
        Some(dir) => !has_wildcard(&dir.to_string_lossy()),
        None => true,
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// The directory whose entries `pattern` matches; `None` for a pattern that matches nothing.
pub(crate) fn directory(pattern: &str) -> Option<PathBuf> {
    if !is_supported(pattern) {
        return None;
    }
    match Path::new(pattern).parent() {
        Some(d) if !d.as_os_str().is_empty() => Some(d.to_path_buf()),
        _ => Some(PathBuf::from(".")),
    }
}

/// The regular files (symlinks followed) that match `pattern`, sorted. An unreadable or
/// missing directory matches nothing.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name_pattern) = path.file_name().map(|n| n.to_string_lossy()) else {
        return Vec::new();
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !is_supported(pattern) {
        return Vec::new();
    }
    if !has_wildcard(&name_pattern) {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| matches(&name_pattern, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Matches `name` against `pattern`: `*` is any run of characters (including none, and a
/// leading dot, as Go's `filepath.Match` that Promtail uses), `?` is one character, anything
/// else matches itself.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was and the name position it is currently stretched to: on a
    // mismatch the star absorbs one more character and matching resumes after it.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*.log", "syslog.log"));
        assert!(matches("*.log", ".log"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("?.log", "1.log"));
        assert!(!matches("?.log", "10.log"));
        assert!(matches("kern*.lo?", "kernel.log"));
        assert!(!matches("*.log", "syslog.log.1"));
        assert!(matches("*.log*", "syslog.log.1"));
        assert!(matches("día?.log", "días.log"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn expands_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.log", "b.log", "c.txt", "d.log.1"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.log")).unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let names: Vec<String> = expand(&pattern)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log", "b.log"], "directories are not files");
        let exact = format!("{}/c.txt", dir.path().display());
        assert_eq!(expand(&exact).len(), 1);
        assert!(expand(&format!("{}/nope/*.log", dir.path().display())).is_empty());
    }

    #[test]
    fn wildcards_in_directories_are_unsupported() {
        assert!(!is_supported("/var/log/*/x.log"));
        assert!(is_supported("/var/log/*.log"));
        assert!(expand("/tmp/*/x.log").is_empty());
    }
}
