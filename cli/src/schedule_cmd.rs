//! `ordinaut schedule preview`: prints the next occurrences of a schedule exactly as the
//! scheduler computes them (it goes through `ordinaut_schedule::Schedule`).

use std::io::Write;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use ordinaut_schedule::{
    Schedule, ScheduleError, ScheduleSource,
    clock::{Clock, SystemClock},
    zone::parse_timezone,
};

use crate::CliError;

/// `ordinaut schedule ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next occurrences of a schedule, one RFC 3339 instant per line.
    Preview(PreviewArgs),
}

/// Arguments of `ordinaut schedule preview`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
pub struct PreviewArgs {
    /// An RFC 5545 RRULE, optionally preceded by a DTSTART line (`\n` separates lines),
    /// e.g. `FREQ=DAILY;BYHOUR=8;BYMINUTE=30`.
    #[arg(long, group = "source", value_name = "RRULE")]
    pub rrule: Option<String>,
    /// A five-field cron expression or macro, e.g. `30 8 * * MON-FRI` or `@daily`.
    #[arg(long, group = "source", value_name = "CRON")]
    pub cron: Option<String>,
    /// A single RFC 3339 instant with offset, e.g. `2025-06-01T09:00:00+02:00`.
    #[arg(long, group = "source", value_name = "INSTANT")]
    pub at: Option<String>,
    /// An elapsed-time interval, e.g. `15m`, `1h30m` or `PT15M`, counted from --dtstart.
    #[arg(long, group = "source", value_name = "DURATION")]
    pub every: Option<String>,
    /// IANA timezone the schedule is evaluated in.
    #[arg(
        long,
        env = "ORDINAUT_TIMEZONE",
        default_value = "UTC",
        value_name = "TZ"
    )]
    pub timezone: String,
    /// Local date-time without offset (`2025-01-01T09:00:00`), read in --timezone: the
    /// DTSTART of an RRULE without one and the origin of --every. Default: local midnight of
    /// the day of --after.
    #[arg(long, value_name = "LOCAL")]
    pub dtstart: Option<String>,
    /// Show occurrences strictly after this RFC 3339 instant. Default: now.
    #[arg(long, value_name = "INSTANT")]
    pub after: Option<String>,
    /// How many occurrences to print.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub count: usize,
    /// Output format: `text` (one instant per line) or `json` (an array of RFC 3339 strings).
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One RFC 3339 instant per line.
    Text,
    /// A JSON array of RFC 3339 strings.
    Json,
}

/// Runs a `schedule` subcommand.
pub fn run(cmd: ScheduleCommand) -> Result<(), CliError> {
    match cmd {
        ScheduleCommand::Preview(args) => {
            let lines = preview(&args, &SystemClock).map_err(CliError::invalid)?;
            print(&lines, args.output).map_err(CliError::failed)
        }
    }
}

/// Computes the preview: the next `count` occurrences, formatted with seconds precision and
/// the zone's offset at each instant.
pub fn preview(args: &PreviewArgs, clock: &dyn Clock) -> Result<Vec<String>, ScheduleError> {
    let source = if let Some(r) = &args.rrule {
        ScheduleSource::Rrule(r.clone())
    } else if let Some(c) = &args.cron {
        ScheduleSource::Cron(c.clone())
    } else if let Some(a) = &args.at {
        ScheduleSource::At(a.clone())
    } else if let Some(e) = &args.every {
        ScheduleSource::Every(e.clone())
    } else {
        return Err(ScheduleError::invalid(
            "schedule",
            "give one of --rrule, --cron, --at or --every",
        ));
    };
    let tz = parse_timezone(&args.timezone)?;
    let after: DateTime<Utc> = match &args.after {
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| {
                ScheduleError::invalid(
                    "after",
                    format!(
                        "`{s}` is not an RFC 3339 instant ({e}); write e.g. 2025-01-01T00:00:00Z"
                    ),
                )
            })?
            .to_utc(),
        None => clock.now(),
    };
    let anchor = match &args.dtstart {
        Some(s) => parse_local(s)?,
        None => after
            .with_timezone(&tz)
            .date_naive()
            .and_time(chrono::NaiveTime::MIN),
    };
    let schedule = Schedule::new(&source, tz.name(), anchor)?;
    schedule
        .iter_after(after)
        .take(args.count)
        .map(|r| r.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false)))
        .collect()
}

fn parse_local(s: &str) -> Result<NaiveDateTime, ScheduleError> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| {
            ScheduleError::invalid(
                "dtstart",
                format!(
                    "`{s}` is not a local date-time; write e.g. 2025-01-01T09:00:00 (no offset)"
                ),
            )
        })
}

fn print(lines: &[String], output: Output) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Text => {
            for l in lines {
                writeln!(out, "{l}")?;
            }
        }
        Output::Json => writeln!(out, "{}", serde_json::to_string(lines)?)?,
    }
    out.flush()?;
    Ok(())
}
