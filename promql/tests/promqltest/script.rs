//! The promqltest command language: splits a `.test` file into `load`, `clear` and `eval`
//! commands with their expectations, following Prometheus's `promqltest` rules (comments end a
//! block, `expect` lines in any order, legacy `eval_fail`/`eval_ordered` forms).

use crate::series::{parse_duration_ms, parse_number, parse_series_line, Point, SeriesLine};
use anyhow::{anyhow, bail, Context, Result};

/// One command of a test file. `line` numbers are 1-based.
#[derive(Debug)]
pub enum Command {
    Load {
        /// `load_with_nhcb`: classic histograms also become native ones under their base
        /// name, which the runner only needs to know to exclude evals that read them.
        with_nhcb: bool,
        step_ms: i64,
        series: Vec<SeriesLine>,
    },
    Clear,
    Eval(Box<Eval>),
}

/// How a text expectation (`msg:` or `regex:`) matches a string.
#[derive(Debug)]
pub enum TextMatch {
    Any,
    Exact(String),
    Regex(regex::Regex),
}

impl TextMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(m) => m == s,
            TextMatch::Regex(r) => r.is_match(s),
        }
    }
}

#[derive(Debug)]
pub enum EvalTime {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

/// What an eval expects back.
#[derive(Debug, Default)]
pub enum Expected {
    /// Series with their points; empty means an empty result.
    #[default]
    None,
    Series(Vec<SeriesLine>),
    Scalar(f64),
    String(String),
}

#[derive(Debug)]
pub struct Eval {
    pub line: usize,
    pub query: String,
    pub time: EvalTime,
    pub fail: Option<TextMatch>,
    pub ordered: bool,
    pub warn: Vec<TextMatch>,
    pub info: Vec<TextMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    /// `expect range vector from .. to .. step ..` on an instant eval.
    pub range_vector: Option<(i64, i64, i64)>,
    pub expected: Expected,
    /// Whether a native histogram appears in the expected output.
    pub expects_histogram: bool,
}

/// Parses a whole file.
pub fn parse_file(text: &str) -> Result<Vec<(usize, Command)>> {
    // Comments become empty lines, so they end a block.
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let block_end = (i + 1..lines.len())
            .find(|&j| lines[j].is_empty())
            .unwrap_or(lines.len());
        let body = &lines[i + 1..block_end];
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let cmd = if word == "clear" {
            Command::Clear
        } else if word.starts_with("load") {
            parse_load(line, body).with_context(|| format!("line {}", i + 1))?
        } else if word.starts_with("eval") {
            Command::Eval(Box::new(
                parse_eval(line, body, i + 1).with_context(|| format!("line {}", i + 1))?,
            ))
        } else {
            bail!("line {}: unknown command {line:?}", i + 1);
        };
        out.push((i + 1, cmd));
        i = if matches!(out.last(), Some((_, Command::Clear))) {
            i + 1
        } else {
            block_end
        };
    }
    Ok(out)
}

fn parse_load(header: &str, body: &[&str]) -> Result<Command> {
    let mut words = header.split_whitespace();
    let with_nhcb = words.next() == Some("load_with_nhcb");
    let step = words.next().ok_or_else(|| anyhow!("load needs a step"))?;
    let step_ms = parse_duration_ms(step)?;
    let mut series = Vec::new();
    for l in body {
        series.push(parse_series_line(l)?);
    }
    Ok(Command::Load {
        with_nhcb,
        step_ms,
        series,
    })
}

fn parse_eval(header: &str, body: &[&str], line: usize) -> Result<Eval> {
    let (kw, rest) = header
        .split_once(char::is_whitespace)
        .ok_or_else(|| anyhow!("bad eval {header:?}"))?;
    let rest = rest.trim_start();
    let legacy = kw.strip_prefix("eval").unwrap_or("");
    let (time, query) = if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim_start();
        let r = r.strip_prefix("at").map(str::trim_start).unwrap_or(r);
        let (t, q) = r
            .split_once(char::is_whitespace)
            .ok_or_else(|| anyhow!("eval instant needs a time and a query"))?;
        (EvalTime::Instant(parse_duration_ms(t)?), q.trim())
    } else if let Some(r) = rest.strip_prefix("range") {
        let words: Vec<&str> = r.split_whitespace().collect();
        if words.len() < 7 || words[0] != "from" || words[2] != "to" || words[4] != "step" {
            bail!("bad eval range header {header:?}");
        }
        let start = parse_duration_ms(words[1])?;
        let end = parse_duration_ms(words[3])?;
        let step = parse_duration_ms(words[5])?;
        if end < start {
            bail!("range end before start");
        }
        // The query is everything after the step word, spacing kept.
        let after_step = r
            .find(&format!(" step {}", words[5]))
            .map(|i| &r[i + 6 + words[5].len()..])
            .ok_or_else(|| anyhow!("bad eval range header"))?;
        (EvalTime::Range { start, end, step }, after_step.trim())
    } else {
        bail!("eval must be instant or range: {header:?}");
    };
    let mut ev = Eval {
        line,
        query: query.to_string(),
        time,
        fail: None,
        ordered: legacy == "_ordered",
        warn: Vec::new(),
        info: Vec::new(),
        no_warn: false,
        no_info: false,
        range_vector: None,
        expected: Expected::None,
        expects_histogram: false,
    };
    match legacy {
        "_fail" => ev.fail = Some(TextMatch::Any),
        "_warn" => ev.warn.push(TextMatch::Any),
        "_info" => ev.info.push(TextMatch::Any),
        "" | "_ordered" => {}
        other => bail!("unknown eval form eval{other}"),
    }
    for l in body {
        if let Some(r) = l.strip_prefix("expected_fail_message") {
            ev.fail = Some(TextMatch::Exact(r.trim().to_string()));
        } else if let Some(r) = l.strip_prefix("expected_fail_regexp") {
            ev.fail = Some(TextMatch::Regex(regex::Regex::new(r.trim())?));
        } else if let Some(r) = l.strip_prefix("expect range vector") {
            let w: Vec<&str> = r.split_whitespace().collect();
            if w.len() != 6 || w[0] != "from" || w[2] != "to" || w[4] != "step" {
                bail!("bad {l:?}");
            }
            ev.range_vector = Some((
                parse_duration_ms(w[1])?,
                parse_duration_ms(w[3])?,
                parse_duration_ms(w[5])?,
            ));
        } else if let Some(r) = l.strip_prefix("expect string") {
            let r = r.trim();
            let s = r
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| r.strip_prefix('`').and_then(|x| x.strip_suffix('`')))
                .ok_or_else(|| anyhow!("bad {l:?}"))?;
            ev.expected = Expected::String(s.to_string());
        } else if let Some(r) = l.strip_prefix("expect ") {
            parse_expect(r.trim(), &mut ev)?;
        } else if let Ok(v) = parse_number(l) {
            ev.expected = Expected::Scalar(v);
        } else {
            let s = parse_series_line(l)?;
            if s.points.contains(&Point::Histogram) {
                ev.expects_histogram = true;
            }
            match &mut ev.expected {
                Expected::Series(v) => v.push(s),
                e => *e = Expected::Series(vec![s]),
            }
        }
    }
    if (ev.no_info && !ev.info.is_empty()) || (ev.no_warn && !ev.warn.is_empty()) {
        bail!("an annotation level is both expected and refused");
    }
    Ok(ev)
}

fn parse_expect(r: &str, ev: &mut Eval) -> Result<()> {
    let (kind, tail) = match r.split_once(char::is_whitespace) {
        Some((k, t)) => (k, t.trim()),
        None => (r, ""),
    };
    let matcher = if tail.is_empty() {
        TextMatch::Any
    } else if let Some(m) = tail.strip_prefix("msg:") {
        TextMatch::Exact(m.trim().to_string())
    } else if let Some(m) = tail.strip_prefix("regex:") {
        TextMatch::Regex(regex::Regex::new(m.trim())?)
    } else {
        bail!("bad expect line {r:?}");
    };
    match kind {
        "fail" => ev.fail = Some(matcher),
        "ordered" => ev.ordered = true,
        "warn" => ev.warn.push(matcher),
        "info" => ev.info.push(matcher),
        "no_warn" => ev.no_warn = true,
        "no_info" => ev.no_info = true,
        other => bail!("unknown expectation {other:?}"),
    }
    Ok(())
}
