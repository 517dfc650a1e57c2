//! The two error forms the API answers in: Prometheus's JSON envelope ([`ApiError`], with the
//! one mapping of every error to its `errorType` and HTTP status, as `web/api/v1/api.go`
//! `getDefaultErrorCode`), and the plain text that remote write receivers and Loki answer
//! with ([`PlainError`]).

use crate::prom::encode::write_str;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The `errorType` values Prometheus uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    NotFound,
    Unavailable,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::NotFound => "not_found",
            ErrorType::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // 499, nginx's "client closed request", as Prometheus uses.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An error answered in Prometheus's JSON envelope.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    /// `invalid parameter "name": reason`, Prometheus's wording for a bad parameter.
    pub fn bad_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::NotFound,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::Internal,
            message: message.into(),
        }
    }
}

impl From<promql::Error> for ApiError {
    fn from(e: promql::Error) -> Self {
        let kind = match &e {
            promql::Error::Parse(_) => ErrorType::BadData,
            promql::Error::Execution(_) => ErrorType::Execution,
            promql::Error::Timeout(_) => ErrorType::Timeout,
            promql::Error::Canceled(_) => ErrorType::Canceled,
            promql::Error::Storage(model::StorageError::NotReady(_)) => ErrorType::Unavailable,
            promql::Error::Storage(_) => ErrorType::Internal,
        };
        let message = match e {
            // Prometheus reports parse errors as a bad "query" parameter.
            promql::Error::Parse(m) => format!("invalid parameter \"query\": {m}"),
            other => other.to_string(),
        };
        ApiError { kind, message }
    }
}

impl From<model::StorageError> for ApiError {
    fn from(e: model::StorageError) -> Self {
        let kind = match e {
            model::StorageError::NotReady(_) => ErrorType::Unavailable,
            _ => ErrorType::Internal,
        };
        ApiError {
            kind,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from(r#"{"status":"error","errorType":"#);
        write_str(&mut body, self.kind.as_str());
        body.push_str(r#","error":"#);
        write_str(&mut body, &self.message);
        body.push('}');
        (
            self.kind.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// An error answered as plain text with a status, as Prometheus's remote-write receiver and
/// Loki answer.
#[derive(Debug)]
pub struct PlainError {
    pub status: StatusCode,
    pub message: String,
}

impl PlainError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PlainError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for PlainError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}
