//! `ordinaut task run-now`, `backfill` and `snooze`, against the database (the dev
//! instance's, or `--database-url`). Backfill expands the Task's schedule with the
//! operator's own code (`ordinaut_reconcile_core::validate::compile_schedule`), so it creates
//! exactly the occurrences `ordinaut schedule preview` shows for the range.

use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use clap::{Args, Subcommand};
use ordinaut_api::TaskSpec;
use ordinaut_reconcile_core::validate::compile_schedule;
use ordinaut_store::{
    AuditEntry, ManualRequest, NewOccurrence, RunFilter, Store, TaskProjection, Trigger,
};
use serde_json::{Value, json};

use crate::CliError;
use crate::dev::output::{Format, duration_ms};
use crate::target::{Target, runtime, task_ref};
use crate::when;

/// `ordinaut task …`
#[derive(Debug, Args)]
#[command(
    after_help = "These commands work on the database directly: the `ordinaut dev` running on \
--data-dir, or --database-url. In a cluster, act through the Kubernetes API as your \
kubeconfig's user instead (RBAC and the API's audit log apply):\n  \
kubectl ordinaut run-now NAME [-n NS] [--context CTX]    (the ordinaut.dev/run-now annotation)\n  \
kubectl ordinaut snooze NAME --until now+2h              (spec.snoozeUntil)\n  \
kubectl ordinaut backfill NAME --from T --to T           (the ordinaut.dev/backfill annotation)"
)]
pub struct TaskArgs {
    #[command(subcommand)]
    pub command: TaskCommand,
    #[command(flatten)]
    pub target: Target,
    /// `text` for a person, `json` for scripts.
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Queue a run of a Task now (trigger `manual`), whatever its schedule, snooze or suspension.
    RunNow(RunNowArgs),
    /// Queue the occurrences the Task's schedule had in a past range, skipping those that
    /// already ran or are queued (trigger `backfill`).
    Backfill(BackfillArgs),
    /// Skip a Task's occurrences until an instant (manual runs still run).
    Snooze(SnoozeArgs),
}

#[derive(Debug, Args)]
pub struct RunNowArgs {
    /// The Task: `NAMESPACE/NAME`, or `NAME` in `default`.
    #[arg(value_parser = task_ref)]
    pub task: (String, String),
    /// Wait for the run to finish, print it and exit non-zero when it failed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "5m", value_parser = when::duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The Task: `NAMESPACE/NAME`, or `NAME` in `default`.
    #[arg(value_parser = task_ref)]
    pub task: (String, String),
    /// Start of the range, included: RFC 3339, `now` or `now-DURATION`.
    #[arg(long)]
    pub from: String,
    /// End of the range, included (not in the future).
    #[arg(long)]
    pub to: String,
    /// Refuse ranges holding more occurrences than this.
    #[arg(long, default_value_t = 1000)]
    pub max: usize,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).multiple(false)))]
pub struct SnoozeArgs {
    /// The Task: `NAMESPACE/NAME`, or `NAME` in `default`.
    #[arg(value_parser = task_ref)]
    pub task: (String, String),
    /// Skip occurrences before this instant: RFC 3339, `now+DURATION`.
    #[arg(long, group = "when")]
    pub until: Option<String>,
    /// Remove the snooze set with this command (the file's `snoozeUntil`, if any, applies).
    #[arg(long, group = "when")]
    pub clear: bool,
}

pub fn run(args: TaskArgs) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        let store = args.target.store().await?;
        match args.command {
            TaskCommand::RunNow(a) => run_now(&store, a, args.output).await,
            TaskCommand::Backfill(a) => backfill(&store, a, args.output).await,
            TaskCommand::Snooze(a) => snooze(&store, a, args.output).await,
        }
    })
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// A new correlation id for one command's audit entry; the command prints it too (text
/// and JSON), so its output and the audit log can be matched.
fn correlation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn emit(format: Format, text: &str, fields: Value) {
    match format {
        Format::Text => println!("{text}"),
        Format::Json => println!("{fields}"),
    }
}

/// The live Task, refused when its last reconcile found it invalid.
async fn ready_task(
    store: &Store,
    (ns, name): &(String, String),
) -> Result<TaskProjection, CliError> {
    let task = store.find_task(ns, name).await.map_err(|e| match e {
        ordinaut_store::StoreError::NotFound { .. } => CliError::failed(anyhow!(
            "no Task {ns}/{name}: is its file in the dev instance's folder (and valid)?"
        )),
        other => CliError::failed(other),
    })?;
    if let Some(mirror) = store
        .status_mirror(task.uid)
        .await
        .map_err(CliError::failed)?
    {
        let ready = mirror
            .status
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            });
        if let Some(c) = ready
            && c.get("status").and_then(Value::as_str) == Some("False")
        {
            let text = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            return Err(CliError::failed(anyhow!(
                "Task {ns}/{name} is not ready ({}: {}); fix it first",
                text("reason"),
                text("message")
            )));
        }
    }
    Ok(task)
}

async fn run_now(store: &Store, a: RunNowArgs, format: Format) -> Result<(), CliError> {
    let task = ready_task(store, &a.task).await?;
    let at = Utc::now().trunc_subsecs(6);
    let occurrence = NewOccurrence {
        task_uid: task.uid,
        scheduled_for: at,
        run_at: at,
        priority: task.priority,
        trigger: Trigger::Manual,
        payload: json!({}),
    };
    let cid = correlation_id();
    let request = ManualRequest {
        actor: actor(),
        correlation_id: Some(cid.clone()),
        action: "task.run-now".into(),
        detail: json!({"scheduledFor": at}),
    };
    store
        .queue_by_hand(&[occurrence], &request)
        .await
        .map_err(CliError::failed)?;
    let name = format!("{}/{}", task.namespace, task.name);
    let stamp = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    if !a.wait {
        emit(
            format,
            &format!(
                "queued a manual run of {name} ({stamp}); see `ordinaut runs list --task {name}` [audit {cid}]"
            ),
            json!({"task": name, "queued": 1, "scheduledFor": at, "correlationId": cid}),
        );
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + a.timeout;
    loop {
        let runs = store
            .list_runs(&RunFilter {
                task: Some(a.task.clone()),
                status: None,
                since: Some(at - TimeDelta::seconds(1)),
                limit: 50,
            })
            .await
            .map_err(CliError::failed)?;
        if let Some(r) = runs
            .iter()
            .find(|r| r.trigger == "manual" && r.scheduled_for == at && r.status != "retrying")
        {
            let ms = (r.finished_at - r.started_at).num_milliseconds();
            let mut text = format!(
                "run {} of {name}: {} in {}",
                r.id,
                r.status,
                duration_ms(ms)
            );
            if let Some(e) = &r.error {
                text.push_str(&format!(": {e}"));
            }
            text.push_str(&format!(" [audit {cid}]"));
            emit(
                format,
                &text,
                json!({"task": name, "runId": r.id, "status": r.status, "durationMs": ms, "error": r.error, "correlationId": cid}),
            );
            return if r.status == "succeeded" {
                Ok(())
            } else {
                Err(CliError::failed(anyhow!("the run {}", r.status)))
            };
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::failed(anyhow!(
                "the manual run of {name} did not finish within {:?}; is `ordinaut dev` running?",
                a.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn backfill(store: &Store, a: BackfillArgs, format: Format) -> Result<(), CliError> {
    let now = Utc::now();
    let from = when::instant(&a.from, now).map_err(|e| CliError::invalid(anyhow!("--from {e}")))?;
    let to = when::instant(&a.to, now).map_err(|e| CliError::invalid(anyhow!("--to {e}")))?;
    if to < from {
        return Err(CliError::invalid(anyhow!("--to is before --from")));
    }
    if to > now {
        return Err(CliError::invalid(anyhow!(
            "--to is in the future; the schedule runs those occurrences by itself"
        )));
    }
    let task = ready_task(store, &a.task).await?;
    let spec: TaskSpec = serde_json::from_value(task.spec.clone()).map_err(|e| {
        CliError::failed(anyhow!(
            "the stored spec of {}/{} does not read: {e}",
            task.namespace,
            task.name
        ))
    })?;
    // The anchor the operator uses: the Task's creation time.
    let created = store
        .dev_created_at(task.uid)
        .await
        .map_err(CliError::failed)?
        .unwrap_or(now);
    let schedule = compile_schedule(&spec.schedule, created)
        .map_err(|p| CliError::failed(anyhow!("{}: {}", p.path, p.message)))?
        .ok_or_else(|| {
            CliError::invalid(anyhow!(
                "{}/{} runs on events, not on a schedule: nothing to backfill",
                task.namespace,
                task.name
            ))
        })?;
    // `between` excludes its lower bound; the range given includes it.
    let instants: Vec<DateTime<Utc>> = schedule
        .between(from - TimeDelta::microseconds(1), to, a.max + 1)
        .map_err(|e| CliError::failed(anyhow!("{e}")))?
        .into_iter()
        .map(|t| t.to_utc())
        .collect();
    if instants.len() > a.max {
        return Err(CliError::invalid(anyhow!(
            "the range holds more than {} occurrences; narrow it or raise --max",
            a.max
        )));
    }
    let occupied = store
        .occupied_instants(task.uid, from, to)
        .await
        .map_err(CliError::failed)?;
    let todo: Vec<NewOccurrence> = instants
        .iter()
        .filter(|t| !occupied.contains(t))
        .map(|t| NewOccurrence {
            task_uid: task.uid,
            scheduled_for: *t,
            run_at: now,
            priority: task.priority,
            trigger: Trigger::Backfill,
            payload: json!({}),
        })
        .collect();
    let cid = correlation_id();
    let queued = if todo.is_empty() {
        0
    } else {
        let request = ManualRequest {
            actor: actor(),
            correlation_id: Some(cid.clone()),
            action: "task.backfill".into(),
            detail: json!({"from": from, "to": to}),
        };
        store
            .queue_by_hand(&todo, &request)
            .await
            .map_err(CliError::failed)?
    };
    let name = format!("{}/{}", task.namespace, task.name);
    let skipped = instants.len() - todo.len();
    emit(
        format,
        &format!(
            "queued {queued} backfill run(s) of {name}: {} occurrence(s) from {} to {}, {skipped} already run or queued{}",
            instants.len(),
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            to.to_rfc3339_opts(SecondsFormat::Secs, true),
            if queued > 0 {
                format!(" [audit {cid}]")
            } else {
                String::new()
            }
        ),
        json!({"task": name, "inRange": instants.len(), "skipped": skipped, "queued": queued,
               "correlationId": (queued > 0).then_some(&cid)}),
    );
    Ok(())
}

async fn snooze(store: &Store, a: SnoozeArgs, format: Format) -> Result<(), CliError> {
    let (ns, name) = &a.task;
    if !store.is_dev_database().await.map_err(CliError::failed)? {
        return Err(CliError::failed(anyhow!(
            "this database is not an `ordinaut dev` instance's; in a cluster, patch the Task: \
             kubectl patch task {name} -n {ns} --type merge -p '{{\"spec\":{{\"snoozeUntil\":\"…\"}}}}'"
        )));
    }
    let until = match &a.until {
        Some(u) => Some(
            when::instant(u, Utc::now()).map_err(|e| CliError::invalid(anyhow!("--until {e}")))?,
        ),
        None => None,
    };
    if !store
        .set_dev_snooze(ns, name, until)
        .await
        .map_err(CliError::failed)?
    {
        return Err(CliError::failed(anyhow!(
            "the dev instance has never loaded a Task {ns}/{name}"
        )));
    }
    let cid = correlation_id();
    store
        .audit_entry(&AuditEntry {
            actor: actor(),
            action: "task.snooze".into(),
            allowed: true,
            namespace: Some(ns.clone()),
            subject: Some(name.clone()),
            detail: json!({
                "snoozeUntil": until,
                "outcome": if until.is_some() { "snoozed" } else { "cleared" },
            }),
            correlation_id: Some(cid.clone()),
        })
        .await
        .map_err(CliError::failed)?;
    match until {
        Some(t) => emit(
            format,
            &format!(
                "snoozed {ns}/{name} until {}: its occurrences before then are skipped (manual runs still run) [audit {cid}]",
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            json!({"task": format!("{ns}/{name}"), "snoozeUntil": t, "correlationId": cid}),
        ),
        None => emit(
            format,
            &format!("{ns}/{name}: snooze cleared [audit {cid}]"),
            json!({"task": format!("{ns}/{name}"), "snoozeUntil": null, "correlationId": cid}),
        ),
    }
    Ok(())
}
