//! Extractors whose refusals are problem documents naming the field: [`Body`] (JSON) and
//! [`Q`] (the query string).

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
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
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| OpError::invalid("(body)", format!("cannot read the body: {e}")))?;
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
