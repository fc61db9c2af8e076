//! `ordinaut runs list` and `ordinaut runs get`: run history from the database (the dev
//! instance's, or `--database-url`). Step inputs are shown as the worker stored them, with
//! secrets already redacted.

use std::io::Write;

use anyhow::anyhow;
use chrono::SecondsFormat;
use clap::{Args, Subcommand};
use ordinaut_store::{RunFilter, RunView, StepRecord};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::CliError;
use crate::dev::output::{Format, duration_ms};
use crate::target::{Target, runtime, task_ref};

/// `ordinaut runs …`
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
    #[command(flatten)]
    pub target: Target,
    /// `text` for a person, `json` for scripts.
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest runs, newest first.
    List(ListArgs),
    /// One run: its steps with their inputs, outputs and errors.
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this Task (`NAMESPACE/NAME`, or `NAME` in `default`).
    #[arg(long, value_parser = task_ref)]
    pub task: Option<(String, String)>,
    /// Only runs with this status: succeeded, failed, retrying, cancelled or skipped.
    #[arg(long, value_parser = ["succeeded", "failed", "retrying", "cancelled", "skipped"])]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The run id (a unique prefix is enough).
    pub id: String,
}

pub fn run(args: RunsArgs) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        let store = args.target.store().await?;
        match args.command {
            RunsCommand::List(list) => {
                let runs = store
                    .list_runs(&RunFilter {
                        task: list.task,
                        status: list.status,
                        since: None,
                        limit: list.limit,
                    })
                    .await
                    .map_err(CliError::failed)?;
                print_list(&runs, args.output).map_err(CliError::failed)
            }
            RunsCommand::Get(get) => {
                let id = match Uuid::parse_str(&get.id) {
                    Ok(id) => id,
                    Err(_) => {
                        let ids = store
                            .run_ids_with_prefix(&get.id)
                            .await
                            .map_err(CliError::failed)?;
                        match ids.as_slice() {
                            [one] => *one,
                            [] => return Err(CliError::failed(anyhow!("no run `{}`", get.id))),
                            _ => {
                                return Err(CliError::invalid(anyhow!(
                                    "`{}` names more than one run; give more of the id",
                                    get.id
                                )));
                            }
                        }
                    }
                };
                let Some((run, steps)) = store.get_run(id).await.map_err(CliError::failed)? else {
                    return Err(CliError::failed(anyhow!("no run {id}")));
                };
                print_run(&run, &steps, args.output).map_err(CliError::failed)
            }
        }
    })
}

fn ms(run: &RunView) -> i64 {
    (run.finished_at - run.started_at).num_milliseconds()
}

fn run_json(run: &RunView) -> Value {
    json!({
        "id": run.id, "task": format!("{}/{}", run.namespace, run.name), "trigger": run.trigger,
        "attempt": run.attempt, "status": run.status, "scheduledFor": run.scheduled_for,
        "startedAt": run.started_at, "finishedAt": run.finished_at, "durationMs": ms(run),
        "worker": run.worker, "error": run.error, "output": run.output,
    })
}

fn print_list(runs: &[RunView], format: Format) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        for r in runs {
            writeln!(out, "{}", run_json(r))?;
        }
        return Ok(());
    }
    if runs.is_empty() {
        writeln!(out, "no runs")?;
        return Ok(());
    }
    let task_w = runs
        .iter()
        .map(|r| r.namespace.len() + r.name.len() + 1)
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<36}  {:<task_w$}  {:<8}  {:<9}  {:<20}  {:>8}  ERROR",
        "ID", "TASK", "TRIGGER", "STATUS", "STARTED", "DURATION"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:<36}  {:<task_w$}  {:<8}  {:<9}  {:<20}  {:>8}  {}",
            r.id,
            format!("{}/{}", r.namespace, r.name),
            r.trigger,
            r.status,
            r.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            duration_ms(ms(r)),
            r.error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        )?;
    }
    Ok(())
}

fn compact(v: &Option<Value>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn print_run(run: &RunView, steps: &[StepRecord], format: Format) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let mut v = run_json(run);
        v["steps"] = steps
            .iter()
            .map(|s| {
                json!({
                    "id": s.step_id, "uses": s.uses, "status": s.status.as_str(), "attempts": s.attempts,
                    "input": s.input, "output": s.output, "error": s.error,
                    "startedAt": s.started_at, "finishedAt": s.finished_at,
                    "durationMs": (s.finished_at - s.started_at).num_milliseconds(),
                })
            })
            .collect();
        return writeln!(out, "{v}");
    }
    let t = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
    writeln!(out, "run       {}", run.id)?;
    writeln!(out, "task      {}/{}", run.namespace, run.name)?;
    writeln!(out, "trigger   {} (attempt {})", run.trigger, run.attempt)?;
    writeln!(out, "status    {}", run.status)?;
    writeln!(out, "scheduled {}", t(run.scheduled_for))?;
    writeln!(
        out,
        "started   {} (took {})",
        t(run.started_at),
        duration_ms(ms(run))
    )?;
    writeln!(out, "worker    {}", run.worker)?;
    if let Some(e) = &run.error {
        writeln!(out, "error     {e}")?;
    }
    writeln!(out, "output    {}", compact(&run.output))?;
    writeln!(out, "steps")?;
    for (i, s) in steps.iter().enumerate() {
        let took = duration_ms((s.finished_at - s.started_at).num_milliseconds());
        let attempts = if s.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", s.attempts)
        };
        writeln!(
            out,
            "  {}. {} ({}) {} in {took}, {attempts}",
            i + 1,
            s.step_id,
            s.uses,
            s.status.as_str()
        )?;
        writeln!(out, "     input  {}", compact(&s.input))?;
        writeln!(out, "     output {}", compact(&s.output))?;
        if let Some(e) = &s.error {
            writeln!(out, "     error  {e}")?;
        }
    }
    Ok(())
}
