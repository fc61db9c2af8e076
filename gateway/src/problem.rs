//! Errors of gateway operations ([`OpError`]) and their two renderings: RFC 9457
//! `application/problem+json` for REST ([`Problem`]) and tool errors for MCP (the same text).
//! A mistake in a request names the field and the fix, with the messages of
//! `ordinaut validate`, so an agent can correct itself in one turn.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One invalid field: its path from the request's root and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.schedule.every`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why an operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    /// No token, or a token no Agent (nor the admin) holds.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but lacks the scope or does not own the object.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing of that name that the caller may see.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or the spec invalid; each field named.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The object exists already, or changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the gateway reads.
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests: try again after this many seconds.
    #[error("rate limit exceeded: try again in {0} s")]
    RateLimited(u64),
    /// The operation exists but is not available yet (event triggers).
    #[error("{0}")]
    NotImplemented(String),
    /// The database or the Kubernetes API failed.
    #[error("{0}")]
    Unavailable(String),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl OpError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        OpError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            OpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            OpError::Forbidden(_) => StatusCode::FORBIDDEN,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OpError::Conflict(_) => StatusCode::CONFLICT,
            OpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OpError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            OpError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            OpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short kebab-case name, the last segment of the problem `type` URI.
    pub fn kind(&self) -> &'static str {
        match self {
            OpError::Unauthorized(_) => "unauthorized",
            OpError::Forbidden(_) => "forbidden",
            OpError::NotFound(_) => "not-found",
            OpError::Invalid(_) => "invalid-request",
            OpError::Conflict(_) => "conflict",
            OpError::TooLarge(_) => "payload-too-large",
            OpError::RateLimited(_) => "rate-limited",
            OpError::NotImplemented(_) => "not-implemented",
            OpError::Unavailable(_) => "unavailable",
        }
    }

    /// The RFC 9457 body.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            problem_type: format!("https://ordinaut.dev/problems/{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                OpError::Invalid(e) => e.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl From<ordinaut_store::StoreError> for OpError {
    fn from(e: ordinaut_store::StoreError) -> Self {
        match e {
            ordinaut_store::StoreError::NotFound { what } => {
                OpError::NotFound(format!("{what} not found"))
            }
            ordinaut_store::StoreError::Conflict(m) => OpError::Conflict(m),
            other if is_refused_data(&other) => OpError::invalid(
                "(request)",
                "PostgreSQL cannot store or search a value of this request (a NUL character \
                 (\\u0000) in a string, or a value too long); remove it and send it again",
            ),
            other => OpError::Unavailable(format!("{other}; try again")),
        }
    }
}

/// Whether PostgreSQL refused a statement for a value the request carried: a data exception
/// (SQLSTATE class 22, e.g. 22021 for a NUL character in `text`, 22P05 in `jsonb`) or a
/// program limit (class 54, e.g. an index entry too large). Sending it again fails again, so
/// it is the caller's to fix (4xx), not an outage (5xx); the database's message is not
/// echoed.
fn is_refused_data(e: &ordinaut_store::StoreError) -> bool {
    e.sqlstate()
        .is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong and what to do, in one sentence or a few joined by `; `.
    pub detail: String,
    /// Each invalid field, for `invalid-request`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for OpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            OpError::RateLimited(secs) => {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            OpError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ordinaut\""),
                );
            }
            _ => {}
        }
        response
    }
}
