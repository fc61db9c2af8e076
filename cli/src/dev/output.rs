//! What `ordinaut dev` tells a person (lines prefixed with the local time) or a script
//! (`--output json`: one JSON object per line with `event` and `time`).

use std::io::Write;
use std::sync::Mutex;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use clap::ValueEnum;
use serde_json::{Value, json};

/// Output formats of `ordinaut dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// One JSON object per line.
    Json,
}

/// Writes events to stdout, one line each, never interleaved.
pub struct Printer {
    format: Format,
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            lock: Mutex::new(()),
        }
    }

    /// One event: `text` for a person, `fields` (plus `event` and `time`) for a script.
    pub fn emit(&self, event: &str, text: &str, fields: Value) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = match self.format {
            Format::Text => writeln!(out, "{} {text}", Local::now().format("%H:%M:%S")),
            Format::Json => {
                let mut m = match fields {
                    Value::Object(m) => m,
                    other => {
                        let mut m = serde_json::Map::new();
                        m.insert("value".into(), other);
                        m
                    }
                };
                m.insert("event".into(), json!(event));
                m.insert(
                    "time".into(),
                    json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
                );
                writeln!(out, "{}", Value::Object(m))
            }
        };
        let _ = out.flush();
    }

    /// Where a service is.
    pub fn service(&self, what: &str, url: &str, how: &str) {
        self.emit(
            "service",
            &format!("{what}: {url} ({how})"),
            json!({"service": what, "url": url, "how": how}),
        );
    }

    /// Something worth knowing that is not about an object.
    pub fn note(&self, message: &str) {
        self.emit("note", message, json!({"message": message}));
    }
}

/// `12ms`, `1.4s`, `2m05s`.
pub fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// `in 42s`, `in 2d 3h`: how far `t` is from `now`.
pub fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (t - now).num_seconds().max(0);
    let text = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    };
    format!("in {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_ms(12), "12ms");
        assert_eq!(duration_ms(1440), "1.4s");
        assert_eq!(duration_ms(125_000), "2m05s");
        let now = Utc::now();
        assert_eq!(until(now + chrono::TimeDelta::seconds(42), now), "in 42s");
        assert_eq!(until(now + chrono::TimeDelta::hours(51), now), "in 2d 3h");
    }
}
