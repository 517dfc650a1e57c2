//! Alertmanager API v2's silences: `GET`/`POST /api/v2/silences` and `GET`/`DELETE
//! /api/v2/silence/{id}`, in Alertmanager 0.25's JSON (go-swagger's field order, millisecond
//! times) and its status codes: 400 with a JSON string for a refused silence, go-openapi's 422
//! `{code, message}` for a body or path that breaks the spec, 404 for an unknown id.

use super::gofmt::openapi_time;
use super::v2::{alertmanager, json, V2Error};
use crate::params::Params;
use crate::state::AppState;
use alertmanager::{parse_matcher, PostableSilence, Silence, SilenceError, SilenceMatcher};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use model::Matcher;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// go-openapi's validation codes (`errors/schema.go`): 600 plus the position in its list.
const INVALID_TYPE_CODE: u16 = 601;
const REQUIRED_FAIL_CODE: u16 = 602;
const MIN_ITEMS_FAIL_CODE: u16 = 612;
/// go-openapi's code for several validation errors at once.
const COMPOSITE_ERROR_CODE: u16 = 422;

/// API v2's `gettableSilence`, fields in go-swagger's order.
#[derive(Serialize)]
struct GettableSilence<'a> {
    id: &'a str,
    status: SilenceStatus,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    comment: &'a str,
    #[serde(rename = "createdBy")]
    created_by: &'a str,
    #[serde(rename = "endsAt")]
    ends_at: String,
    matchers: Vec<ApiMatcher<'a>>,
    #[serde(rename = "startsAt")]
    starts_at: String,
}

#[derive(Serialize)]
struct SilenceStatus {
    state: &'static str,
}

#[derive(Serialize)]
struct ApiMatcher<'a> {
    #[serde(rename = "isEqual")]
    is_equal: bool,
    #[serde(rename = "isRegex")]
    is_regex: bool,
    name: &'a str,
    value: &'a str,
}

fn gettable<'a>(s: &'a Silence, state: alertmanager::SilenceState) -> GettableSilence<'a> {
    GettableSilence {
        id: &s.id,
        status: SilenceStatus {
            state: state.as_str(),
        },
        updated_at: openapi_time(&s.updated_at),
        comment: &s.comment,
        created_by: &s.created_by,
        ends_at: openapi_time(&s.ends_at),
        matchers: s
            .matchers
            .iter()
            .map(|m| ApiMatcher {
                is_equal: m.is_equal,
                is_regex: m.is_regex,
                name: &m.name,
                value: &m.value,
            })
            .collect(),
        starts_at: openapi_time(&s.starts_at),
    }
}

/// Whether every filter matcher appears among the silence's matchers with the same name,
/// operator and value (Alertmanager's `CheckSilenceMatchesFilterLabels`): the filter selects
/// silences by how they were written, not by which alerts they would mute.
fn filter_keeps(filter: &[Matcher], s: &Silence) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && m.op() == f.op && m.value == f.value)
    })
}

/// `GET /api/v2/silences?filter=…`: every silence, expired ones included, in Alertmanager's
/// order (active ending soonest, pending starting soonest, expired latest first).
pub async fn list(State(st): State<Arc<AppState>>, params: Params) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    let filter = params
        .all("filter")
        .into_iter()
        .map(parse_matcher)
        .collect::<Result<Vec<_>, _>>()
        .map_err(V2Error::BadRequest)?;
    let silences = am.silences();
    let body: Vec<GettableSilence> = silences
        .iter()
        .filter(|(s, _)| filter_keeps(&filter, s))
        .map(|(s, state)| gettable(s, *state))
        .collect();
    Ok(json(StatusCode::OK, &body))
}

/// `postableSilence` as sent; every field optional so a missing one gets go-openapi's
/// "is required" answer instead of a parse error.
#[derive(Deserialize)]
struct RawSilence {
    id: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    #[serde(rename = "startsAt")]
    starts_at: Option<DateTime<Utc>>,
    #[serde(rename = "endsAt")]
    ends_at: Option<DateTime<Utc>>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
}

#[derive(Deserialize)]
struct RawMatcher {
    name: Option<String>,
    value: Option<String>,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
    /// Defaults to true in the spec.
    #[serde(rename = "isEqual")]
    is_equal: Option<bool>,
}

/// Checks the spec's required fields and `minItems`, reporting every failure as go-openapi
/// does: one error alone with its own code, several as a composite 422.
fn to_postable(raw: RawSilence) -> Result<PostableSilence, V2Error> {
    let mut missing = Vec::new();
    let mut required = |present: bool, name: &str| {
        if !present {
            missing.push(format!("{name} in body is required"));
        }
    };
    required(raw.matchers.is_some(), "matchers");
    required(raw.starts_at.is_some(), "startsAt");
    required(raw.ends_at.is_some(), "endsAt");
    required(raw.created_by.is_some(), "createdBy");
    required(raw.comment.is_some(), "comment");
    let raw_matchers = raw.matchers.unwrap_or_default();
    for (i, m) in raw_matchers.iter().enumerate() {
        required(m.name.is_some(), &format!("matchers.{i}.name"));
        required(m.value.is_some(), &format!("matchers.{i}.value"));
        required(m.is_regex.is_some(), &format!("matchers.{i}.isRegex"));
    }
    let mut failures: Vec<(u16, String)> = missing
        .into_iter()
        .map(|m| (REQUIRED_FAIL_CODE, m))
        .collect();
    if raw_matchers.is_empty() && failures.is_empty() {
        failures.push((
            MIN_ITEMS_FAIL_CODE,
            "matchers in body should have at least 1 items".into(),
        ));
    }
    let (Some(starts_at), Some(ends_at), Some(created_by), Some(comment), true) = (
        raw.starts_at,
        raw.ends_at,
        raw.created_by,
        raw.comment,
        failures.is_empty(),
    ) else {
        return Err(match failures.len() {
            1 => {
                let (code, message) = failures.remove(0);
                V2Error::Unprocessable { code, message }
            }
            _ => V2Error::Unprocessable {
                code: COMPOSITE_ERROR_CODE,
                message: std::iter::once("validation failure list:".to_string())
                    .chain(failures.into_iter().map(|(_, m)| m))
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        });
    };
    let matchers = raw_matchers
        .into_iter()
        .map(|m| SilenceMatcher {
            name: m.name.unwrap_or_default(),
            value: m.value.unwrap_or_default(),
            is_regex: m.is_regex.unwrap_or_default(),
            is_equal: m.is_equal.unwrap_or(true),
        })
        .collect();
    Ok(PostableSilence {
        id: raw.id,
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment,
    })
}

#[derive(Serialize)]
struct PostResponse {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// `POST /api/v2/silences`: creates a silence, or updates the one named by `id` (in place
/// when Alertmanager allows it, otherwise the old one is expired and a new id returned).
pub async fn post(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    let raw: RawSilence =
        serde_json::from_slice(&body).map_err(|e| V2Error::BadSilenceBody(e.to_string()))?;
    let silence = to_postable(raw)?;
    match am.set_silence(silence) {
        Ok(silence_id) => Ok(json(StatusCode::OK, &PostResponse { silence_id })),
        Err(e @ SilenceError::NotFound) => Err(V2Error::NotFoundReason(e.to_string())),
        Err(e @ (SilenceError::Persist { .. } | SilenceError::Load { .. })) => {
            Err(V2Error::Internal(e.to_string()))
        }
        Err(e) => Err(V2Error::BadRequest(e.to_string())),
    }
}

/// go-openapi's `strfmt.IsUUID`: 32 hex digits, the four dashes optional.
fn check_uuid(id: &str) -> Result<(), V2Error> {
    let hex: Vec<char> = id.chars().filter(|c| *c != '-').collect();
    let dashes_ok = {
        let dash_at: Vec<usize> = id
            .char_indices()
            .filter(|(_, c)| *c == '-')
            .map(|(i, _)| i)
            .collect();
        dash_at.is_empty() || dash_at == [8, 13, 18, 23]
    };
    if hex.len() == 32 && hex.iter().all(char::is_ascii_hexdigit) && dashes_ok {
        Ok(())
    } else {
        Err(V2Error::Unprocessable {
            code: INVALID_TYPE_CODE,
            message: format!("silenceID in path must be of type uuid: {id:?}"),
        })
    }
}

/// `GET /api/v2/silence/{id}`.
pub async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    check_uuid(&id)?;
    let (silence, state) = am.silence(&id).ok_or(V2Error::NotFound)?;
    Ok(json(StatusCode::OK, &gettable(&silence, state)))
}

/// `DELETE /api/v2/silence/{id}`: expires the silence, which stays listed until its retention
/// ends. An unknown id is a 500 with "silence not found", as Alertmanager 0.25 answers.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    check_uuid(&id)?;
    am.expire_silence(&id)
        .map_err(|e| V2Error::Internal(e.to_string()))?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(body: &str) -> Result<PostableSilence, V2Error> {
        to_postable(serde_json::from_str(body).unwrap())
    }

    #[test]
    fn postable_silence_defaults_and_required_fields() {
        let ok = raw(r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],
            "startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T01:00:00.5Z",
            "createdBy":"me","comment":"c"}"#)
        .unwrap();
        assert!(ok.matchers[0].is_equal, "isEqual defaults to true");
        assert_eq!(ok.id, None);
        assert_eq!(ok.ends_at.timestamp_subsec_millis(), 500);

        let Err(V2Error::Unprocessable { code, message }) =
            raw(r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],
            "startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T01:00:00Z","createdBy":"me"}"#)
        else {
            panic!("a missing comment is refused");
        };
        assert_eq!(
            (code, message.as_str()),
            (602, "comment in body is required")
        );

        let Err(V2Error::Unprocessable { code, message }) =
            raw(r#"{"matchers":[{"name":"a"}],"createdBy":"me","comment":"c"}"#)
        else {
            panic!("several failures are refused together");
        };
        assert_eq!(code, 422);
        assert!(
            message.contains("startsAt in body is required"),
            "{message}"
        );
        assert!(
            message.contains("matchers.0.isRegex in body is required"),
            "{message}"
        );

        let Err(V2Error::Unprocessable { code, .. }) =
            raw(r#"{"matchers":[],"startsAt":"2030-01-01T00:00:00Z",
            "endsAt":"2030-01-01T01:00:00Z","createdBy":"me","comment":"c"}"#)
        else {
            panic!("an empty matcher list is refused");
        };
        assert_eq!(code, 612);
    }

    #[test]
    fn filters_select_silences_by_their_written_matchers() {
        let now = Utc::now();
        let s = Silence {
            id: "x".into(),
            matchers: vec![SilenceMatcher {
                name: "pod".into(),
                value: "cart-.*".into(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: now,
            ends_at: now,
            updated_at: now,
            created_by: String::new(),
            comment: String::new(),
        };
        let f = |text: &str| vec![parse_matcher(text).unwrap()];
        assert!(filter_keeps(&[], &s));
        assert!(filter_keeps(&f(r#"pod=~"cart-.*""#), &s));
        assert!(
            !filter_keeps(&f(r#"pod="cart-1""#), &s),
            "not by what it would mute"
        );
        assert!(!filter_keeps(&f(r#"pod!~"cart-.*""#), &s));
    }

    #[test]
    fn path_ids_must_be_uuids() {
        assert!(check_uuid("4ffb5d2a-29db-4d2b-a1a5-f17ca0817dcd").is_ok());
        assert!(check_uuid("4ffb5d2a29db4d2ba1a5f17ca0817dcd").is_ok());
        assert!(check_uuid("nope").is_err());
        assert!(check_uuid("4ffb5d2a-29db-4d2b-a1a5-f17ca0817dcz").is_err());
    }
}
