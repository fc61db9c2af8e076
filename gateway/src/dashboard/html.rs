//! HTML by hand: escaping, the page frame every view shares, and times as people read them
//! ("Sun 06 Dec 14:05 CET", "in 3 h"). Everything that reaches the page from data goes
//! through [`Esc`].

use std::fmt::{self, Display, Write};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// Text escaped for HTML content and double-quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + 1;
        }
        f.write_str(&self.0[last..])
    }
}

/// Percent-encodes a path segment or query value.
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Timeline,
    None,
}

/// What the frame shows of the signed-in viewer.
pub struct Frame<'a> {
    pub title: &'a str,
    pub nav: Nav,
    /// `admin` or `agent:<ns>/<name>`; `None` on the login page.
    pub actor: Option<&'a str>,
    /// The session's CSRF token (meta tag and the logout form).
    pub csrf: Option<&'a str>,
    /// A one-time message (an action's result).
    pub flash: Option<&'a str>,
}

/// The asset URLs carry the crate version so a new release is fetched again.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A whole page around `body`.
pub fn page(frame: &Frame<'_>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Ordinaut</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/dashboard.css?v={ASSET_VERSION}\">",
        Esc(frame.title)
    );
    if let Some(csrf) = frame.csrf {
        let _ = write!(out, "<meta name=\"csrf-token\" content=\"{}\">", Esc(csrf));
    }
    let _ = write!(
        out,
        "<script src=\"/ui/assets/dashboard.js?v={ASSET_VERSION}\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">\
         <a class=\"brand\" href=\"/ui\">Ordinaut</a>"
    );
    if let Some(actor) = frame.actor {
        let cur = |n: Nav| {
            if frame.nav == n {
                " aria-current=\"page\""
            } else {
                ""
            }
        };
        let _ = write!(
            out,
            "<nav><a href=\"/ui\" accesskey=\"o\"{}>Overview</a>\
             <a href=\"/ui/timeline\" accesskey=\"t\"{}>Timeline</a></nav>\
             <span class=\"who\">{}</span>\
             <form method=\"post\" action=\"/ui/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"link\">Sign out</button></form>",
            cur(Nav::Overview),
            cur(Nav::Timeline),
            Esc(actor),
            Esc(frame.csrf.unwrap_or_default()),
        );
    }
    out.push_str("</header><main id=\"main\" tabindex=\"-1\">");
    if let Some(flash) = frame.flash {
        let _ = write!(out, "<p class=\"flash\" role=\"status\">{}</p>", Esc(flash));
    }
    out.push_str(body);
    out.push_str(
        "</main><footer><kbd>/</kbd> search · <kbd>j</kbd>/<kbd>k</kbd> move · \
         <kbd>Enter</kbd> open · <kbd>g</kbd> <kbd>t</kbd> timeline</footer></body></html>",
    );
    out
}

/// An instant in a zone, as a person reads it: `Sun 06 Dec 14:05 CET`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%a %d %b %H:%M %Z").to_string()
}

/// `<time>` with the instant for machines and its local form for people.
pub fn time_tag(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        t.to_rfc3339(),
        t.format("%Y-%m-%d %H:%M:%S UTC"),
        Esc(&local(t, tz))
    )
}

/// How far an instant is from now: `in 3 h`, `12 min ago`, `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (future, d) = if d >= TimeDelta::zero() {
        (true, d)
    } else {
        (false, -d)
    };
    let secs = d.num_seconds();
    let amount = if secs < 45 {
        return "now".into();
    } else if secs < 90 * 60 {
        format!("{} min", (secs + 30) / 60)
    } else if secs < 36 * 3600 {
        format!("{} h", (secs + 1800) / 3600)
    } else {
        format!("{} d", (secs + 43_200) / 86_400)
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A duration in milliseconds as `850 ms`, `4.2 s`, `3 min 5 s`.
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The CSS class of a run or outcome status.
pub fn status_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "succeeded" => "ok",
        "failed" | "missed" => "bad",
        "retrying" | "running" => "warn",
        _ => "muted",
    }
}

/// A status as a badge.
pub fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(status),
        Esc(status)
    )
}

/// `failed` → `Failed`, as `status.lastRunStatus` spells outcomes.
pub fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            Esc("<a href=\"x\">'&'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn relative_times_read_like_speech() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let at = |s: i64| now + TimeDelta::seconds(s);
        assert_eq!(relative(at(10), now), "now");
        assert_eq!(relative(at(3 * 3600), now), "in 3 h");
        assert_eq!(relative(at(-12 * 60), now), "12 min ago");
        assert_eq!(relative(at(3 * 86_400), now), "in 3 d");
    }

    #[test]
    fn local_times_name_the_zone_of_the_instant() {
        let t = Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap();
        assert_eq!(local(t, chrono_tz::Europe::Berlin), "Wed 01 Jul 08:00 CEST");
        assert_eq!(url("a b/c"), "a%20b%2Fc");
    }
}
