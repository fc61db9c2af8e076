//! What every view needs: the frame around a viewer's page and error pages that carry the
//! operation's own message (the scope to add, the field to fix) with its HTTP status.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::html::{self, Esc, Frame, Nav};
use super::session::Viewer;
use crate::problem::OpError;

/// A signed-in page.
pub fn render(viewer: &Viewer, title: &str, nav: Nav, body: &str) -> Response {
    let actor = viewer.call.who.actor();
    let frame = Frame {
        title,
        nav,
        actor: Some(&actor),
        csrf: Some(&viewer.csrf),
        flash: viewer.flash.as_deref(),
    };
    Html(html::page(&frame, body)).into_response()
}

/// An operation's refusal or failure as a page with its status.
pub fn error_page(e: &OpError) -> Response {
    let status = e.status();
    let body = format!(
        "<section class=\"problem\"><h1>{} {}</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p><a href=\"/ui\">Back to the overview</a></p></section>",
        status.as_u16(),
        Esc(status.canonical_reason().unwrap_or("Error")),
        Esc(&e.to_string())
    );
    let frame = Frame {
        title: status.canonical_reason().unwrap_or("Error"),
        nav: Nav::None,
        actor: None,
        csrf: None,
        flash: None,
    };
    (status, Html(html::page(&frame, &body))).into_response()
}

/// A form without this session's CSRF token.
pub fn csrf_refused() -> Response {
    let e = OpError::Forbidden(
        "the form's CSRF token does not match your session: reload the page and try again".into(),
    );
    let mut res = error_page(&e);
    *res.status_mut() = StatusCode::FORBIDDEN;
    res
}

/// Which of a page's parts a viewer lacks the scope for, as a note.
pub fn lacks(viewer: &Viewer, scope: &str, what: &str) -> Option<String> {
    (!viewer.call.who.has(scope)).then(|| {
        format!(
            "<p class=\"note\">Your token lacks the API scope <code>{}</code>: {} not shown.</p>",
            Esc(scope),
            Esc(what)
        )
    })
}
