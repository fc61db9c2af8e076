//! `ordinaut audit list`: the audit log from the database (the dev instance's, or
//! `--database-url`), newest first: who did what to which object, allowed or refused, and the
//! correlation id that also appears in the gateway's logs.

use anyhow::anyhow;
use chrono::SecondsFormat;
use clap::{Args, Subcommand};
use ordinaut_store::AuditQuery;
use serde_json::json;

use crate::CliError;
use crate::dev::output::Format;
use crate::target::{Target, runtime};

/// `ordinaut audit …`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    #[command(flatten)]
    pub target: Target,
    /// `text` for a person, `json` for scripts (one object per line).
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The latest entries, newest first.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only this actor (`agent:NAMESPACE/NAME`, `admin`, `cli:USER`, `worker`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (`task.create`, `task.run-now`, `tool.call`…).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub fn run(args: AuditArgs) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        let store = args.target.store().await?;
        let AuditCommand::List(a) = args.command;
        if a.limit < 1 {
            return Err(CliError::invalid(anyhow!("--limit must be at least 1")));
        }
        let rows = store
            .audit_page(&AuditQuery {
                namespace: a.namespace,
                actor: a.actor,
                action: a.action,
                before: None,
                limit: a.limit,
            })
            .await
            .map_err(CliError::failed)?;
        for r in rows {
            match args.output {
                Format::Json => println!(
                    "{}",
                    json!({"id": r.id, "at": r.at, "actor": r.actor, "action": r.action,
                        "allowed": r.allowed, "namespace": r.namespace, "subject": r.subject,
                        "detail": r.detail, "correlationId": r.correlation_id})
                ),
                Format::Text => println!(
                    "{}  {:<7} {:<24} {:<14} {}/{}{}",
                    r.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    if r.allowed { "allowed" } else { "refused" },
                    r.actor,
                    r.action,
                    r.namespace.as_deref().unwrap_or("-"),
                    r.subject.as_deref().unwrap_or("-"),
                    r.correlation_id
                        .map(|c| format!("  [{c}]"))
                        .unwrap_or_default(),
                ),
            }
        }
        Ok(())
    })
}
