//! Signing in to the dashboard: a token (an Agent's or the admin's) is exchanged for a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie. The token stays in the gateway's
//! memory, never in a page; every request authenticates it again through the same
//! [`Tokens`](crate::auth::Tokens) table as the API (a revoked token ends the session at its
//! next request) and passes the same rate limit. Each session has a CSRF token that forms and
//! `fetch` calls send back. Sessions live in memory: a restart (or another replica) asks the
//! person to sign in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::DashState;
use super::pages::error_page;
use crate::ops::Call;
use crate::problem::OpError;

/// The session cookie's name.
pub const COOKIE: &str = "ordinaut_session";
/// How long a session lasts without signing in again.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once (the oldest are dropped first).
const MAX_SESSIONS: usize = 10_000;

type Key = [u8; 32];

struct Session {
    token: String,
    csrf: String,
    tz: Tz,
    created: Instant,
    flash: Option<String>,
}

/// The signed-in sessions, by the SHA-256 of their cookie value.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<Key, Session>>,
}

fn key(cookie: &str) -> Key {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `token`; returns the cookie value.
    pub fn create(&self, token: &str, tz: Tz) -> String {
        let id = crate::auth::generate_token();
        let session = Session {
            token: token.to_string(),
            csrf: crate::auth::generate_token(),
            tz,
            created: Instant::now(),
            flash: None,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(key(&id), session);
        id
    }

    /// Ends a session.
    pub fn remove(&self, cookie: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(cookie));
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, cookie: &str, message: String) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(&key(cookie)) {
            s.flash = Some(message);
        }
    }

    /// (token, csrf, timezone, flash) of a live session; the flash is taken.
    fn take(&self, cookie: &str) -> Option<(String, String, Tz, Option<String>)> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(cookie);
        if map.get(&k)?.created.elapsed() >= SESSION_TTL {
            map.remove(&k);
            return None;
        }
        let s = map.get_mut(&k)?;
        Some((s.token.clone(), s.csrf.clone(), s.tz, s.flash.take()))
    }

    /// The token of a live session (the live feed re-checks it on every poll).
    pub fn token(&self, cookie: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key(cookie))
            .filter(|s| s.created.elapsed() < SESSION_TTL)
            .map(|s| s.token.clone())
    }
}

/// The session cookie's value in a request.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a new session (`Secure` when the request came over HTTPS).
pub fn set_cookie(value: &str, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!(
        "{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The signed-in person behind a dashboard request: the same [`Call`] an API request makes.
pub struct Viewer {
    pub call: Call,
    pub cookie: String,
    pub csrf: String,
    /// The viewer's timezone (from the browser at sign-in).
    pub tz: Tz,
    pub flash: Option<String>,
}

impl Viewer {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// Where a person without a session is sent: the login page, then back here.
fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/ui");
    Redirect::to(&format!("/ui/login?next={}", super::html::url(next))).into_response()
}

impl FromRequestParts<DashState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &DashState) -> Result<Self, Response> {
        let Some(cookie) = cookie(&parts.headers) else {
            return Err(to_login(parts));
        };
        let Some((token, csrf, tz, flash)) = state.sessions.take(&cookie) else {
            return Err(to_login(parts));
        };
        let who = match state
            .app
            .tokens
            .authenticate(Some(&format!("Bearer {token}")))
            .await
        {
            Ok(who) => who,
            Err(OpError::Unavailable(m)) => {
                return Err(error_page(&OpError::Unavailable(m)));
            }
            Err(_) => {
                state.sessions.remove(&cookie);
                return Err(to_login(parts));
            }
        };
        if let Err(secs) = state.app.limiter.check(&who.actor()) {
            return Err(error_page(&OpError::RateLimited(secs)));
        }
        let correlation_id = uuid::Uuid::now_v7().to_string();
        Ok(Viewer {
            call: Call {
                who,
                correlation_id,
            },
            cookie,
            csrf,
            tz,
            flash,
        })
    }
}

/// Whether `next` is a dashboard path to return to after signing in (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n
        }
        _ => "/ui",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_returned_to() {
        assert_eq!(safe_next(Some("/ui/tasks/a/b")), "/ui/tasks/a/b");
        assert_eq!(safe_next(Some("/ui?q=x")), "/ui?q=x");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/ui//evil",
            "/v1/tasks",
            "/ui\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad}");
        }
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let id = s.create("tok", Tz::UTC);
        assert_eq!(s.token(&id).as_deref(), Some("tok"));
        s.flash(&id, "done".into());
        assert_eq!(s.take(&id).unwrap().3.as_deref(), Some("done"));
        assert_eq!(s.take(&id).unwrap().3, None, "a flash is shown once");
        s.remove(&id);
        assert!(s.token(&id).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("abc", &HeaderMap::new());
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; ordinaut_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
    }
}
