//! Extractors whose refusals are problem documents naming the field: [`Body`] (JSON; 413
//! past 1 MiB), [`Q`] (the query string) and [`P`] (path parameters).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ops::parse_spec;
use crate::problem::OpError;

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// A JSON body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = OpError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body()).await?;
        let value: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                OpError::invalid("(body)", format!("not JSON: {e}; send a JSON object"))
            })?
        };
        if !value.is_object() {
            return Err(OpError::invalid("(body)", "send a JSON object"));
        }
        parse_spec(&value, "").map(Body)
    }
}

/// The body's bytes, refused with 413 once past [`MAX_BODY`] (without reading further).
async fn read_body(body: axum::body::Body) -> Result<Vec<u8>, OpError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| OpError::invalid("(body)", format!("cannot read the body: {e}")))?;
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(OpError::TooLarge(format!(
                "the body is larger than {} MiB, the most the gateway reads; send less (e.g. \
                 store large data elsewhere and pass a reference)",
                MAX_BODY >> 20
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Path parameters (`/v1/tasks/{namespace}/{name}`): a segment that is not UTF-8 once
/// percent-decoded is refused as a problem document, like the body and the query.
pub struct P<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = OpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| {
                if e.status().is_server_error() {
                    OpError::Unavailable(e.body_text()) // a route without its parameters
                } else {
                    OpError::invalid("(path)", e.body_text())
                }
            })
    }
}

/// The query string.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = OpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // An empty parameter is a mistake (leave it out instead); a NUL byte is no text.
        for pair in parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.is_empty() {
                return Err(OpError::invalid(
                    name,
                    "is empty: give a value or leave it out",
                ));
            }
            if value.contains("%00") {
                return Err(OpError::invalid(name, "contains a NUL character"));
            }
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Q(q.0))
            .map_err(|e| OpError::invalid("(query)", e.body_text()))
    }
}
