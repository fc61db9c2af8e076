//! A Task's schedule in words ("weekdays at 08:00", "every 15 minutes") for the common
//! shapes of cron, RRULE and `every`; anything else is shown only as written.

use serde_json::Value;

const DAYS: [(&str, &str); 7] = [
    ("MON", "Monday"),
    ("TUE", "Tuesday"),
    ("WED", "Wednesday"),
    ("THU", "Thursday"),
    ("FRI", "Friday"),
    ("SAT", "Saturday"),
    ("SUN", "Sunday"),
];

/// The schedule (`spec.schedule`) in words, when it has a common shape.
pub fn describe(schedule: &Value) -> Option<String> {
    if let Some(every) = schedule["every"].as_str() {
        return every_words(every);
    }
    if let Some(cron) = schedule["cron"].as_str() {
        return cron_words(cron);
    }
    if let Some(rrule) = schedule["rrule"].as_str() {
        return rrule_words(rrule);
    }
    if let Some(at) = schedule["at"].as_str() {
        return Some(format!("once, at {at}"));
    }
    schedule["on"]["topic"]
        .as_str()
        .map(|t| format!("when an event on `{t}` arrives"))
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("every {unit}")
    } else {
        format!("every {n} {unit}s")
    }
}

fn every_words(every: &str) -> Option<String> {
    let d = ordinaut_schedule::duration::parse_duration(every).ok()?;
    let s = d.as_secs();
    Some(match s {
        0 => return None,
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    })
}

fn number(s: &str, max: u32) -> Option<u32> {
    s.parse().ok().filter(|n| *n <= max)
}

/// `HH:MM` for every listed hour (`8,17`) at one minute.
fn clock(hours: &str, minute: u32) -> Option<String> {
    let hs: Option<Vec<String>> = hours
        .split(',')
        .map(|h| number(h, 23).map(|h| format!("{h:02}:{minute:02}")))
        .collect();
    let hs = hs?;
    Some(join_and(&hs))
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn day_name(d: &str) -> Option<&'static str> {
    let d = d.to_ascii_uppercase();
    let idx = match d.parse::<usize>() {
        Ok(0) | Ok(7) => 6,
        Ok(n @ 1..=6) => n - 1,
        Ok(_) => return None,
        // `MON` (cron) or `MO` (RRULE): the first two letters name the day.
        Err(_) if d.len() >= 2 && d.chars().all(|c| c.is_ascii_alphabetic()) => {
            DAYS.iter().position(|(k, _)| k[..2] == d[..2])?
        }
        Err(_) => return None,
    };
    Some(DAYS[idx].1)
}

/// `MON-FRI` → weekdays, `SAT,SUN` → weekends, `MON,WED` → Mondays and Wednesdays.
fn days_words(dow: &str) -> Option<String> {
    let d = dow.to_ascii_uppercase();
    match d.as_str() {
        "MON-FRI" | "1-5" | "MO,TU,WE,TH,FR" => return Some("weekdays".into()),
        "SAT,SUN" | "SUN,SAT" | "6,0" | "0,6" | "6,7" | "SA,SU" => {
            return Some("weekends".into());
        }
        _ => {}
    }
    let names: Option<Vec<String>> = d
        .split(',')
        .map(|p| day_name(p).map(|n| format!("{n}s")))
        .collect();
    Some(join_and(&names?))
}

fn cron_words(cron: &str) -> Option<String> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [m, h, dom, mon, dow] = f[..] else {
        return None;
    };
    if mon != "*" {
        return None;
    }
    if (h, dom, dow) == ("*", "*", "*") {
        if m == "*" {
            return Some("every minute".into());
        }
        if let Some(n) = m.strip_prefix("*/") {
            return Some(plural(number(n, 59)?.into(), "minute"));
        }
        return Some(format!("every hour at :{:02}", number(m, 59)?));
    }
    if m == "0"
        && (dom, dow) == ("*", "*")
        && let Some(n) = h.strip_prefix("*/")
    {
        return Some(plural(number(n, 23)?.into(), "hour"));
    }
    let at = clock(h, number(m, 59)?)?;
    match (dom, dow) {
        ("*", "*") => Some(format!("every day at {at}")),
        ("*", dow) => Some(format!("{} at {at}", days_words(dow)?)),
        (dom, "*") => Some(format!(
            "on day {} of every month at {at}",
            number(dom, 31)?
        )),
        _ => None,
    }
}

fn rrule_words(rrule: &str) -> Option<String> {
    let line = rrule
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("RRULE:") || l.starts_with("FREQ="))?;
    let line = line.trim_start_matches("RRULE:");
    let mut parts = std::collections::BTreeMap::new();
    for kv in line.split(';') {
        let (k, v) = kv.split_once('=')?;
        parts.insert(k.to_ascii_uppercase(), v.to_string());
    }
    const KNOWN: [&str; 6] = ["FREQ", "INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "WKST"];
    if parts.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return None;
    }
    let interval: u64 = parts.get("INTERVAL").map_or(Some(1), |i| i.parse().ok())?;
    let unit = match parts.get("FREQ")?.as_str() {
        "MINUTELY" => "minute",
        "HOURLY" => "hour",
        "DAILY" => "day",
        "WEEKLY" => "week",
        "MONTHLY" => "month",
        "YEARLY" => "year",
        _ => return None,
    };
    let mut words = plural(interval, unit);
    if let Some(days) = parts.get("BYDAY") {
        words = match days_words(days)?.as_str() {
            "weekdays" if interval == 1 => "weekdays".into(),
            d => format!("{words} on {d}"),
        };
    }
    if let Some(h) = parts.get("BYHOUR") {
        let m = parts.get("BYMINUTE").map_or(Some(0), |m| number(m, 59))?;
        words = format!("{words} at {}", clock(h, m)?);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn common_schedules_read_as_words() {
        let cases = [
            (json!({"every": "15m"}), "every 15 minutes"),
            (json!({"every": "1h"}), "every hour"),
            (json!({"cron": "*/5 * * * *"}), "every 5 minutes"),
            (json!({"cron": "30 * * * *"}), "every hour at :30"),
            (json!({"cron": "0 8 * * *"}), "every day at 08:00"),
            (
                json!({"cron": "0 8,17 * * *"}),
                "every day at 08:00 and 17:00",
            ),
            (json!({"cron": "0 8 * * MON-FRI"}), "weekdays at 08:00"),
            (
                json!({"cron": "15 9 * * MON,WED"}),
                "Mondays and Wednesdays at 09:15",
            ),
            (
                json!({"cron": "0 3 1 * *"}),
                "on day 1 of every month at 03:00",
            ),
            (
                json!({"rrule": "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=30"}),
                "every week on Mondays and Fridays at 09:30",
            ),
            (
                json!({"rrule": "FREQ=DAILY;BYHOUR=2"}),
                "every day at 02:00",
            ),
        ];
        for (schedule, want) in cases {
            assert_eq!(describe(&schedule).as_deref(), Some(want), "{schedule}");
        }
    }

    #[test]
    fn unusual_shapes_have_no_words() {
        for s in [
            json!({"cron": "0 8 * 1 *"}),
            json!({"cron": "0 8 L * *"}),
            json!({"rrule": "FREQ=MONTHLY;BYSETPOS=-1"}),
        ] {
            assert_eq!(describe(&s), None, "{s}");
        }
    }
}
