//! The cluster commands (`kubectl ordinaut run-now|suspend|resume|snooze|backfill|preview|get|
//! runs`): they act through the Kubernetes API as the user of the kubeconfig (`--kubeconfig`
//! or `KUBECONFIG`, `--context`, `-n`, default namespace from the context), so RBAC and the
//! API server's audit log apply, and they change only what GitOps tools can see: the
//! `ordinaut.dev/run-now` and `ordinaut.dev/backfill` annotations (the operator records the
//! values it handled in status) and `spec.suspend` / `spec.snoozeUntil`. `runs` (alias
//! `history`; `ordinaut history`, since `ordinaut runs` reads `ordinaut dev`'s database) reads
//! run history from the gateway's REST API.

use std::path::PathBuf;

use anyhow::anyhow;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use ordinaut_api::Task;
use ordinaut_api::constants::{BACKFILL_ANNOTATION, FIELD_MANAGER, RUN_NOW_ANNOTATION};
use serde_json::{Value, json};

use crate::CliError;
use crate::target::runtime;
use crate::when;

/// Which cluster, namespace and output: kubectl's flags.
#[derive(Debug, Args)]
pub struct KubeFlags {
    /// The kubeconfig file (default: the files in $KUBECONFIG, else ~/.kube/config, as
    /// kubectl reads them; in a pod, its service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output: `text` for a person, `wide` with more columns, `json` or `yaml` for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output formats of the cluster commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Wide,
    Json,
    Yaml,
}

/// The cluster commands, flattened into the top level.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a Task now (sets the `ordinaut.dev/run-now` annotation; the operator queues one
    /// run and records the value in status.handledRunNow).
    RunNow(TaskOnly),
    /// Stop scheduling a Task (spec.suspend: true; queued occurrences are withdrawn).
    Suspend(TaskOnly),
    /// Schedule a suspended Task again (spec.suspend: false).
    Resume(TaskOnly),
    /// Skip a Task's occurrences until an instant (spec.snoozeUntil), or --clear it.
    Snooze(SnoozeArgs),
    /// Queue the occurrences a Task's schedule had in a past range (sets the
    /// `ordinaut.dev/backfill` annotation to FROM/TO; the operator queues them and records the
    /// value in status.handledBackfill).
    Backfill(BackfillArgs),
    /// The next occurrences of a Task, as the operator will queue them.
    Preview(PreviewArgs),
    /// List Tasks (or one) with their status.
    Get(GetArgs),
    /// Run history of a Task in a cluster, from the gateway's REST API (`kubectl ordinaut
    /// runs`; `ordinaut history`, as `ordinaut runs` reads `ordinaut dev`'s database).
    History(RunsArgs),
}

#[derive(Debug, Args)]
pub struct TaskOnly {
    /// The Task's name.
    pub task: String,
    #[command(flatten)]
    pub kube: KubeFlags,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).multiple(false)))]
pub struct SnoozeArgs {
    /// The Task's name.
    pub task: String,
    /// Skip occurrences before this instant: RFC 3339 or `now+DURATION`.
    #[arg(long, group = "when")]
    pub until: Option<String>,
    /// Remove spec.snoozeUntil.
    #[arg(long, group = "when")]
    pub clear: bool,
    #[command(flatten)]
    pub kube: KubeFlags,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The Task's name.
    pub task: String,
    /// Start of the range, included: RFC 3339, `now` or `now-DURATION`.
    #[arg(long)]
    pub from: String,
    /// End of the range, included (not in the future).
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub kube: KubeFlags,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The Task's name.
    pub task: String,
    /// How many occurrences.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    #[command(flatten)]
    pub kube: KubeFlags,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// One Task; all of the namespace when absent.
    pub task: Option<String>,
    #[command(flatten)]
    pub kube: KubeFlags,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The Task's name.
    pub task: String,
    /// The gateway's base URL (its REST API is under /v1).
    #[arg(long, env = "ORDINAUT_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// The bearer token for the gateway (an Agent's token, or the admin token).
    #[arg(long, env = "ORDINAUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub kube: KubeFlags,
}

pub fn run(cmd: ClusterCommand) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        match cmd {
            ClusterCommand::RunNow(a) => {
                let value = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
                let patch = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: value}}});
                let what = format!("run requested ({RUN_NOW_ANNOTATION}={value})");
                act(&a.kube, &a.task, patch, &what).await
            }
            ClusterCommand::Suspend(a) => {
                act(
                    &a.kube,
                    &a.task,
                    json!({"spec": {"suspend": true}}),
                    "suspended",
                )
                .await
            }
            ClusterCommand::Resume(a) => {
                act(
                    &a.kube,
                    &a.task,
                    json!({"spec": {"suspend": false}}),
                    "resumed",
                )
                .await
            }
            ClusterCommand::Snooze(a) => snooze(a).await,
            ClusterCommand::Backfill(a) => backfill(a).await,
            ClusterCommand::Preview(a) => preview(a).await,
            ClusterCommand::Get(a) => get(a).await,
            ClusterCommand::History(a) => runs(a).await,
        }
    })
}

/// A client for the kubeconfig and context chosen, and the namespace to act in.
async fn connect(flags: &KubeFlags) -> Result<(kube::Client, String), CliError> {
    // kube, sqlx and reqwest enable both ring and aws-lc-rs: rustls must be told which.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                CliError::failed(anyhow!("reading the kubeconfig {}: {e}", path.display()))
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| CliError::failed(anyhow!("no usable kubeconfig: {e}")))?;
    let namespace = flags
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(CliError::failed)?;
    Ok((client, namespace))
}

/// The API server's refusal in the user's terms. A 403 names the verb, the resource and the
/// namespace that RBAC refused, and the grant to ask for.
fn api_error(e: kube::Error, verb: &str, ns: &str, name: &str) -> CliError {
    match e {
        kube::Error::Api(s) if s.code == 404 => CliError::failed(anyhow!(
            "no Task {name} in namespace {ns} (tasks.ordinaut.dev; pick another with -n)"
        )),
        kube::Error::Api(s) if s.code == 403 => CliError::failed(anyhow!(
            "forbidden: you may not {verb} tasks.ordinaut.dev in namespace {ns}{}; \
             ask for a Role granting `{verb}` on `tasks` in API group `ordinaut.dev` there. \
             The API server said: {}",
            if name == "*" {
                String::new()
            } else {
                format!(" (Task {name})")
            },
            s.message
        )),
        e => CliError::failed(anyhow!("Task {ns}/{name}: {e}")),
    }
}

/// Patches a Task (a JSON merge patch: annotations or spec fields) as the user.
async fn act(flags: &KubeFlags, name: &str, patch: Value, what: &str) -> Result<(), CliError> {
    let (client, ns) = connect(flags).await?;
    let api: Api<Task> = Api::namespaced(client, &ns);
    let pp = PatchParams {
        field_manager: Some(format!("{FIELD_MANAGER}-cli")),
        ..PatchParams::default()
    };
    api.patch(name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, "patch", &ns, name))?;
    let result = json!({"namespace": ns, "task": name, "result": what, "patch": patch});
    print(flags.output, &format!("task {ns}/{name}: {what}"), &result)
}

async fn snooze(a: SnoozeArgs) -> Result<(), CliError> {
    let (patch, what) = match &a.until {
        Some(until) => {
            let t = when::instant(until, Utc::now())
                .map_err(|e| CliError::invalid(anyhow!("--until {e}")))?;
            let t = t.to_rfc3339_opts(SecondsFormat::Secs, true);
            (
                json!({"spec": {"snoozeUntil": t}}),
                format!("snoozed until {t}"),
            )
        }
        None => (
            json!({"spec": {"snoozeUntil": null}}),
            "snooze cleared".into(),
        ),
    };
    act(&a.kube, &a.task, patch, &what).await
}

async fn backfill(a: BackfillArgs) -> Result<(), CliError> {
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
    let value = format!(
        "{}/{}",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let patch = json!({"metadata": {"annotations": {BACKFILL_ANNOTATION: value}}});
    let what = format!(
        "backfill of {value} requested ({BACKFILL_ANNOTATION}); the operator queues it and records it in status.handledBackfill"
    );
    act(&a.kube, &a.task, patch, &what).await
}

async fn fetch(flags: &KubeFlags, name: &str) -> Result<(Task, String), CliError> {
    let (client, ns) = connect(flags).await?;
    let api: Api<Task> = Api::namespaced(client, &ns);
    let task = api
        .get(name)
        .await
        .map_err(|e| api_error(e, "get", &ns, name))?;
    Ok((task, ns))
}

async fn preview(a: PreviewArgs) -> Result<(), CliError> {
    let (task, ns) = fetch(&a.kube, &a.task).await?;
    let now = Utc::now();
    let created = task
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(ordinaut_reconcile_core::time::chrono_time)
        .unwrap_or(now);
    let s = &task.spec.schedule;
    let schedule = ordinaut_reconcile_core::validate::compile_schedule(s, created)
        .map_err(|p| CliError::invalid(anyhow!("{}: {}", p.path, p.message)))?
        .ok_or_else(|| {
            CliError::invalid(anyhow!(
                "{ns}/{}: runs on events, not on a schedule",
                a.task
            ))
        })?;
    let after = ordinaut_reconcile_core::validate::first_run_bound(s, now);
    let mut rows = Vec::new();
    for t in schedule.iter_after(after).take(a.count) {
        let t = t.map_err(|e| CliError::failed(anyhow!("{e}")))?.to_utc();
        if s.end_at.is_some_and(|end| t > end) {
            break;
        }
        let note = if task.spec.suspend {
            "suspended"
        } else if task.spec.snooze_until.is_some_and(|u| t < u) {
            "snoozed"
        } else {
            ""
        };
        rows.push((t, note));
    }
    let text = rows
        .iter()
        .map(|(t, note)| {
            format!(
                "{}{}",
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
                if note.is_empty() {
                    String::new()
                } else {
                    format!("  ({note}: skipped)")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let fields = json!({"namespace": ns, "task": a.task, "occurrences": rows.iter().map(|(t, note)| json!({"at": t, "skipped": (!note.is_empty()).then_some(*note)})).collect::<Vec<_>>()});
    print(a.kube.output, &text, &fields)
}

async fn get(a: GetArgs) -> Result<(), CliError> {
    let tasks = match &a.task {
        Some(name) => vec![fetch(&a.kube, name).await?.0],
        None => {
            let (client, ns) = connect(&a.kube).await?;
            Api::<Task>::namespaced(client, &ns)
                .list(&Default::default())
                .await
                .map_err(|e| api_error(e, "list", &ns, "*"))?
                .items
        }
    };
    let wide = a.kube.output == Output::Wide;
    let mut lines = vec![row(None, wide)];
    lines.extend(tasks.iter().map(|t| row(Some(t), wide)));
    let json = serde_json::to_value(&tasks).map_err(CliError::failed)?;
    let json = if a.task.is_some() {
        json[0].clone()
    } else {
        json!({"items": json})
    };
    print(a.kube.output, &lines.join("\n"), &json)
}

/// One line of `get` (the header when `task` is None): the printer columns of the CRD.
fn row(task: Option<&Task>, wide: bool) -> String {
    let Some(t) = task else {
        let mut h = format!(
            "{:<28} {:<26} {:<22} {:<12} {:<6} {:<20}",
            "NAME", "SCHEDULE", "NEXT RUN", "LAST STATUS", "READY", "REASON"
        );
        if wide {
            h.push_str(&format!(
                " {:<14} {:<9} {:<22} {}",
                "TIMEZONE", "SUSPENDED", "LAST RUN", "LAST RUN ID"
            ));
        }
        return h;
    };
    let s = t.status.clone().unwrap_or_default();
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready");
    let time = |t: Option<DateTime<Utc>>| {
        t.map_or("<none>".into(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    let mut line = format!(
        "{:<28} {:<26} {:<22} {:<12} {:<6} {:<20}",
        t.metadata.name.as_deref().unwrap_or_default(),
        s.schedule_summary.as_deref().unwrap_or("<none>"),
        time(s.next_run_time),
        s.last_run_status.as_deref().unwrap_or("<none>"),
        ready.map_or("<none>", |c| c.status.as_str()),
        ready.map_or("<none>", |c| c.reason.as_str()),
    );
    if wide {
        line.push_str(&format!(
            " {:<14} {:<9} {:<22} {}",
            t.spec.schedule.timezone,
            t.spec.suspend,
            time(s.last_run_time),
            s.last_run_id.as_deref().unwrap_or("<none>")
        ));
    }
    line
}

async fn runs(a: RunsArgs) -> Result<(), CliError> {
    let (_, ns) = connect(&a.kube).await?;
    let Some(url) = a.gateway_url.as_deref() else {
        return Err(CliError::failed(anyhow!(
            "run history lives in Ordinaut's database, not in the Kubernetes API: `runs` reads it \
             from the gateway's REST API. Pass --gateway-url (or ORDINAUT_GATEWAY_URL) and a \
             token in ORDINAUT_TOKEN; the Task's status shows the latest run meanwhile \
             (`kubectl ordinaut get {} -n {ns} -o wide`)",
            a.task
        )));
    };
    let mut request = reqwest::Client::new().get(format!(
        "{}/v1/runs?namespace={ns}&task={}",
        url.trim_end_matches('/'),
        a.task
    ));
    if let Some(token) = &a.token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| CliError::failed(anyhow!("the gateway at {url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(CliError::failed(anyhow!(
            "the gateway at {url} answered {status}: {body}"
        )));
    }
    let items = body
        .get("items")
        .or(body.get("runs"))
        .cloned()
        .unwrap_or(body.clone());
    let text = items
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    format!(
                        "{}  {}  {}",
                        r["id"].as_str().unwrap_or("?"),
                        r["status"].as_str().unwrap_or("?"),
                        r["startedAt"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|| body.to_string());
    print(a.kube.output, &text, &body)
}

fn print(output: Output, text: &str, fields: &Value) -> Result<(), CliError> {
    match output {
        Output::Text | Output::Wide => println!("{text}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(fields).map_err(CliError::failed)?
        ),
        Output::Yaml => print!(
            "{}",
            serde_yaml::to_string(fields).map_err(CliError::failed)?
        ),
    }
    Ok(())
}
