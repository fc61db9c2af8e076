//! API errors as the real server reports them: a `metav1.Status` body with a code and a
//! reason, so `kube` turns them into `kube::Error::Api` with the same code.

use serde_json::{Value, json};

/// A failed API call, rendered as a `Status` object (`kind: Status`, `status: Failure`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code, e.g. 404.
    pub code: u16,
    /// Machine-readable reason, e.g. `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit code, reason and message.
    pub fn new(code: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// An error for `code` with the reason the real server uses for that code.
    pub fn from_code(code: u16, message: impl Into<String>) -> Self {
        Self::new(code, reason_for_code(code), message)
    }

    /// `404 NotFound` for a named object, worded like the real server.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
    }

    /// `404 NotFound` for a resource type the server does not serve.
    pub fn not_found_resource(key: &crate::resource::ResourceKey) -> Self {
        Self::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({} {} is not registered with the FakeApiServer; register it first)",
                key.api_version(),
                key.plural
            ),
        )
    }

    /// `409 AlreadyExists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
    }

    /// `409 Conflict` for a stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
    }

    /// `400 BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `422 Invalid` (validation failures, failed JSON-patch `test` operations).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// The `Status` object sent as the response body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// The `reason` the real API server puts in a `Status` for a given HTTP code.
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
