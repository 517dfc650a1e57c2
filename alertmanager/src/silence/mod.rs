//! Silences as Alertmanager 0.25 keeps them (`silence/silence.go`): what a silence is, its
//! state at a given time, the validation every stored silence passes, and the rule that says
//! when a re-posted silence may be updated in place rather than replaced. The store that holds
//! them, applies them to label sets and persists them is in [`store`].

mod store;

pub(crate) use store::Silences;

use chrono::{DateTime, Utc};
use model::{MatchOp, Matcher};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How long a silence is kept after it ends, for the API to show (`--data.retention`).
pub const SILENCE_RETENTION: Duration = Duration::from_secs(120 * 60 * 60);

/// One matcher of a silence, in API v2's terms: `isEqual` false negates, `isRegex` true makes
/// `value` an anchored regular expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

impl SilenceMatcher {
    pub fn op(&self) -> MatchOp {
        match (self.is_equal, self.is_regex) {
            (true, false) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (false, true) => MatchOp::NotRegex,
        }
    }

    /// Whether this matcher makes the silence apply to alerts lacking the label. Only `=` and
    /// `=~` count, as in Alertmanager: a silence of negative matchers alone is refused too.
    fn matches_empty(&self, compiled: &Matcher) -> bool {
        matches!(self.op(), MatchOp::Equal | MatchOp::Regex) && compiled.matches("")
    }
}

/// A stored silence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// A UUID, assigned by the Alertmanager.
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// Pending before `starts_at`, expired after `ends_at`, active in between (both ends
    /// included, as Go's `Before`/`After` make it).
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// A silence as `POST /api/v2/silences` takes it: with an `id` it asks to update that silence.
#[derive(Clone, Debug, PartialEq)]
pub struct PostableSilence {
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// API v2's `silenceStatus.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    // Declared in the order `GET /api/v2/silences` lists them.
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

/// Why a silence could not be created, updated or expired.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// No silence has the id (`POST` with an unknown id, `DELETE`).
    #[error("silence not found")]
    NotFound,
    /// The times make no sense for a new or updated silence (checked before anything else).
    #[error("Failed to create silence: {0}")]
    BadTimes(&'static str),
    /// The silence breaks one of Alertmanager's validation rules.
    #[error("silence invalid: {0}")]
    Invalid(String),
    /// The snapshot in the data directory could not be read.
    #[error("reading silences from {path}: {message}")]
    Load { path: PathBuf, message: String },
    /// The change could not be written to the data directory, so it was not made.
    #[error("writing silences to {path}: {source}")]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks a silence as Alertmanager's `validateSilence` does and compiles its matchers.
pub(crate) fn validate(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    if s.matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".into(),
        ));
    }
    let mut compiled = Vec::with_capacity(s.matchers.len());
    let mut all_match_empty = true;
    for (i, m) in s.matchers.iter().enumerate() {
        if !crate::store::is_label_name(&m.name) {
            return Err(SilenceError::Invalid(format!(
                "invalid label matcher {i}: invalid label name {:?}",
                m.name
            )));
        }
        let matcher = Matcher::new(m.op(), &m.name, &m.value)
            .map_err(|e| SilenceError::Invalid(format!("invalid label matcher {i}: {e}")))?;
        all_match_empty &= m.matches_empty(&matcher);
        compiled.push(matcher);
    }
    if all_match_empty {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if s.ends_at < s.starts_at {
        return Err(SilenceError::Invalid(
            "end time must not be before start time".into(),
        ));
    }
    Ok(compiled)
}

/// Whether `prev` may become `next` without rewriting history (Alertmanager's `canUpdate`):
/// the same matchers, and either an active silence keeping its start (to the second) and not
/// ending in the past, or a pending one not moved to start in the past.
pub(crate) fn can_update(prev: &Silence, next: &PostableSilence, now: DateTime<Utc>) -> bool {
    if prev.matchers != next.matchers {
        return false;
    }
    match prev.state(now) {
        SilenceState::Active => {
            next.starts_at.timestamp() == prev.starts_at.timestamp() && next.ends_at >= now
        }
        SilenceState::Pending => next.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// A random (version 4) UUID. Ids need to be unique, not secret, so fastrand's generator,
/// seeded from the OS at start, is enough.
pub(crate) fn new_id() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    pub(crate) fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn silence(matchers: Vec<SilenceMatcher>, starts: i64, ends: i64) -> Silence {
        Silence {
            id: new_id(),
            matchers,
            starts_at: t(starts),
            ends_at: t(ends),
            updated_at: t(starts),
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    #[test]
    fn state_follows_the_window_ends_included() {
        let s = silence(vec![m("a", "b", false, true)], 100, 200);
        assert_eq!(s.state(t(99)), SilenceState::Pending);
        assert_eq!(s.state(t(100)), SilenceState::Active);
        assert_eq!(s.state(t(200)), SilenceState::Active);
        assert_eq!(s.state(t(201)), SilenceState::Expired);
    }

    #[test]
    fn validation_refuses_what_alertmanager_refuses() {
        let err = |ms: Vec<SilenceMatcher>| validate(&silence(ms, 0, 10)).unwrap_err().to_string();
        assert_eq!(
            err(vec![]),
            "silence invalid: at least one matcher required"
        );
        assert!(err(vec![m("a", "", false, true)]).contains("must not match the empty string"));
        assert!(err(vec![m("a", ".*", true, true)]).contains("must not match the empty string"));
        // Alertmanager counts a negative matcher as never matching the empty string, so one
        // alone is accepted even though it selects alerts without the label.
        assert!(validate(&silence(vec![m("a", "x", false, false)], 0, 10)).is_ok());
        assert!(err(vec![m("a", "(", true, true)]).contains("invalid label matcher 0"));
        assert!(
            err(vec![m("b", "x", false, true), m("1a", "x", false, true)])
                .contains("invalid label matcher 1: invalid label name")
        );
        let backwards = validate(&silence(vec![m("a", "b", false, true)], 10, 5));
        assert!(backwards
            .unwrap_err()
            .to_string()
            .contains("end time must not be before start time"));
        let ok = validate(&silence(
            vec![m("pod", "cart-.*", true, true), m("env", "", false, true)],
            0,
            10,
        ))
        .unwrap();
        assert_eq!(ok[0].op, MatchOp::Regex);
    }

    #[test]
    fn update_in_place_follows_can_update() {
        let prev = silence(vec![m("a", "b", false, true)], 100, 200);
        let post = |starts: i64, ends: i64, ms: Vec<SilenceMatcher>| PostableSilence {
            id: Some(prev.id.clone()),
            matchers: ms,
            starts_at: t(starts),
            ends_at: t(ends),
            created_by: "me".into(),
            comment: "c".into(),
        };
        let same = || vec![m("a", "b", false, true)];
        // Active at 150: extending keeps the id; moving the start or ending in the past does not.
        assert!(can_update(&prev, &post(100, 300, same()), t(150)));
        assert!(!can_update(&prev, &post(101, 300, same()), t(150)));
        assert!(!can_update(&prev, &post(100, 140, same()), t(150)));
        assert!(!can_update(
            &prev,
            &post(100, 300, vec![m("a", "c", false, true)]),
            t(150)
        ));
        // Pending at 50: the start may move, but not into the past.
        assert!(can_update(&prev, &post(60, 300, same()), t(50)));
        assert!(!can_update(&prev, &post(40, 300, same()), t(50)));
        // Expired: never.
        assert!(!can_update(&prev, &post(100, 300, same()), t(250)));
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert_ne!(id, new_id());
    }
}
