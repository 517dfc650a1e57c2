//! The `os` collector: `node_os_info` and `node_os_version` from `os-release` under the root
//! filesystem (`<rootfs>/etc/os-release`, else `<rootfs>/usr/lib/os-release`), as
//! node_exporter's `os_release.go` reports them.

use std::collections::HashMap;

use crate::family::{Family, MetricType};

/// Where `os-release` may live, in order of preference (os-release(5)).
pub(crate) const OS_RELEASE_PATHS: &[&str] = &["etc/os-release", "usr/lib/os-release"];

/// The `node_os_info` labels in node_exporter's order, each with its os-release key.
const INFO_LABELS: &[(&str, &str)] = &[
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

/// Parses os-release's shell-like `KEY=value` lines: values may be double-quoted (with `\"`,
/// `\\`, `\$` and `` \` `` escapes), single-quoted (literal) or bare; `#` lines are comments.
pub(crate) fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, raw) = line
            .split_once('=')
            .ok_or_else(|| format!("os-release line {}: no '=' in {line:?}", i + 1))?;
        let value =
            unquote(raw).ok_or_else(|| format!("os-release line {}: bad quoting", i + 1))?;
        out.insert(key.trim().to_string(), value);
    }
    Ok(out)
}

fn unquote(raw: &str) -> Option<String> {
    if let Some(body) = raw.strip_prefix('\'') {
        return body.strip_suffix('\'').map(str::to_string);
    }
    let Some(body) = raw.strip_prefix('"') else {
        return Some(raw.to_string());
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            '\\' => match chars.next()? {
                e @ ('"' | '\\' | '$' | '`') => out.push(e),
                e => {
                    out.push('\\');
                    out.push(e);
                }
            },
            c => out.push(c),
        }
    }
    None
}

/// The families for a parsed os-release: info always, the version only when `VERSION_ID`
/// starts with a positive `major[.minor]`.
pub(crate) fn families(release: &HashMap<String, String>) -> Vec<Family> {
    let get = |k: &str| release.get(k).cloned().unwrap_or_default();
    let mut info = Family::new(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        MetricType::Gauge,
    );
    info.push(INFO_LABELS.iter().map(|&(l, k)| (l, get(k))).collect(), 1.0);
    let mut out = vec![info];
    if let Some(v) = major_minor(&get("VERSION_ID")).filter(|v| *v > 0.0) {
        let mut version = Family::new(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            MetricType::Gauge,
        );
        version.push(
            vec![
                ("id", get("ID")),
                ("id_like", get("ID_LIKE")),
                ("name", get("NAME")),
            ],
            v,
        );
        out.push(version);
    }
    out
}

/// The leading `[0-9]+\.?[0-9]*` of a version as a number: `22.04.3` → 22.04, `12` → 12.
fn major_minor(version_id: &str) -> Option<f64> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let major = digits(version_id);
    if major == 0 {
        return None;
    }
    let mut end = major;
    if version_id.as_bytes().get(major) == Some(&b'.') {
        end += 1 + digits(&version_id[major + 1..]);
    }
    version_id[..end].trim_end_matches('.').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
# a comment
HOME_URL='https://www.debian.org/'
ODD="say \"hi\" \\ \$x"
"#;

    #[test]
    fn parses_quotes_and_escapes() {
        let r = parse(DEBIAN).unwrap();
        assert_eq!(r["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r["VERSION_CODENAME"], "bookworm");
        assert_eq!(r["HOME_URL"], "https://www.debian.org/");
        assert_eq!(r["ODD"], r#"say "hi" \ $x"#);
        assert!(parse("NAME=\"open\n").is_err());
        assert!(parse("garbage\n").is_err());
    }

    #[test]
    fn info_and_version_families() {
        let f = families(&parse(DEBIAN).unwrap());
        assert_eq!(f[0].points[0].labels.len(), 12);
        assert!(f[0].points[0]
            .labels
            .contains(&("id", "debian".to_string())));
        assert!(f[0].points[0].labels.contains(&("variant", String::new())));
        assert_eq!(f[1].points[0].value, 12.0);
        assert_eq!(major_minor("22.04.3"), Some(22.04));
        assert_eq!(major_minor("3."), Some(3.0));
        assert_eq!(major_minor("rolling"), None);
        assert_eq!(families(&HashMap::new()).len(), 1);
    }
}
