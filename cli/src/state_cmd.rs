//! `ordinaut state get|put|list|delete|history`: agent memory (the keys agents and pipelines
//! keep between runs) in the database of `ordinaut dev` (or `--database-url`). Writes are
//! audited as `cli:<user>`, with the same compare-and-set and limits as every other door.

use std::io::Write;

use anyhow::anyhow;
use chrono::SecondsFormat;
use clap::{Args, Subcommand};
use ordinaut_store::{StateEntry, StateError, StateOwner, StatePut, StateQuery, StateRef, Store};
use serde_json::Value;

use crate::CliError;
use crate::dev::output::Format;
use crate::target::{Target, runtime};

/// `ordinaut state …`
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
    #[command(flatten)]
    pub target: Target,
    /// The keys' namespace.
    #[arg(long, short = 'n', default_value = "default", global = true)]
    pub namespace: String,
    /// `text` for a person, `json` for scripts.
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print a key's value (stdout) and its version (stderr).
    Get(KeyArgs),
    /// Write a key: VALUE is JSON (quote a string: '"text"').
    Put(PutArgs),
    /// List keys with their versions and values.
    List(ListArgs),
    /// Delete a key.
    Delete(DeleteArgs),
    /// The kept versions of a key (the last 5), newest first.
    History(KeyArgs),
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key, e.g. `cursors/inbox`.
    pub key: String,
    /// Whose key: `agent:<name>` or `task:<name>`.
    #[arg(long, value_parser = owner)]
    pub owner: StateOwner,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key, e.g. `cursors/inbox`.
    pub key: String,
    /// The value, as JSON: `42`, `'{"lastId": 41}'`, `'"text"'`.
    #[arg(value_parser = json_value)]
    pub value: Value,
    /// Whose key: `agent:<name>` or `task:<name>`.
    #[arg(long, value_parser = owner)]
    pub owner: StateOwner,
    /// Write only if the key is at this version (0: only if it is missing).
    #[arg(long)]
    pub if_version: Option<i64>,
    /// Expire the key this long after the write (`30m`, `7d`).
    #[arg(long, value_parser = ordinaut_schedule::duration::parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this owner's keys (`agent:<name>`, `task:<name>`); every owner's by default.
    #[arg(long, value_parser = owner)]
    pub owner: Option<StateOwner>,
    /// Only keys starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key.
    pub key: String,
    /// Whose key: `agent:<name>` or `task:<name>`.
    #[arg(long, value_parser = owner)]
    pub owner: StateOwner,
    /// Delete only if the key is at this version.
    #[arg(long)]
    pub if_version: Option<i64>,
}

fn owner(s: &str) -> Result<StateOwner, String> {
    StateOwner::parse(s).map_err(|e| e.to_string())
}

fn json_value(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| {
        format!("not JSON ({e}); quote a string as '\"{s}\"', or write a number, list or object")
    })
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn state_error(e: StateError) -> CliError {
    match e {
        StateError::Store(s) => CliError::failed(s),
        StateError::Conflict { .. } | StateError::TooManyKeys { .. } => CliError::failed(e),
        other => CliError::invalid(other),
    }
}

pub fn run(args: StateArgs) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        let store = args.target.store().await?;
        let ns = args.namespace.as_str();
        let out = args.output;
        match args.command {
            StateCommand::Get(a) => get(&store, StateRef::new(ns, a.owner, &a.key), out).await,
            StateCommand::Put(a) => put(&store, ns, a, out).await,
            StateCommand::List(a) => list(&store, ns, a, out).await,
            StateCommand::Delete(a) => delete(&store, ns, a, out).await,
            StateCommand::History(a) => {
                history(&store, StateRef::new(ns, a.owner, &a.key), out).await
            }
        }
    })
}

async fn get(store: &Store, at: StateRef, format: Format) -> Result<(), CliError> {
    let Some(e) = store.state_get(&at).await.map_err(state_error)? else {
        return Err(CliError::failed(anyhow!(
            "no key `{}` of {} in namespace `{}` (never written, deleted or expired)",
            at.key,
            at.owner,
            at.namespace
        )));
    };
    let write = || -> std::io::Result<()> {
        if format == Format::Json {
            return writeln!(std::io::stdout(), "{}", entry_json(&e));
        }
        writeln!(std::io::stdout(), "{}", e.value)?;
        writeln!(std::io::stderr(), "{}", about(&e))
    };
    write().map_err(CliError::failed)
}

async fn put(store: &Store, ns: &str, a: PutArgs, format: Format) -> Result<(), CliError> {
    let at = StateRef::new(ns, a.owner, &a.key);
    let actor = actor();
    let put = StatePut {
        at: &at,
        value: &a.value,
        if_version: a.if_version,
        ttl: a.ttl,
        actor: &actor,
        correlation_id: None,
    };
    let e = store.state_put(&put).await.map_err(state_error)?;
    let line = match format {
        Format::Json => entry_json(&e).to_string(),
        Format::Text => format!("{} = {}  ({})", e.key, e.value, about(&e)),
    };
    writeln!(std::io::stdout(), "{line}").map_err(CliError::failed)
}

async fn list(store: &Store, ns: &str, a: ListArgs, format: Format) -> Result<(), CliError> {
    let query = StateQuery {
        namespace: ns.to_string(),
        owner: a.owner,
        prefix: a.prefix,
        after: None,
        limit: a.limit,
    };
    let entries = store.state_list(&query).await.map_err(state_error)?;
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock| -> std::io::Result<()> {
        if format == Format::Json {
            for e in &entries {
                writeln!(out, "{}", entry_json(e))?;
            }
            return Ok(());
        }
        if entries.is_empty() {
            return writeln!(out, "no keys in namespace `{ns}`");
        }
        let kw = entries
            .iter()
            .map(|e| e.key.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let ow = entries
            .iter()
            .map(|e| e.owner.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(out, "{:kw$}  {:ow$}  VERSION  VALUE", "KEY", "OWNER")?;
        for e in &entries {
            let mut value = e.value.to_string();
            if value.chars().count() > 60 {
                value = value.chars().take(59).collect::<String>() + "…";
            }
            writeln!(
                out,
                "{:kw$}  {:ow$}  {:<7}  {value}",
                e.key, e.owner, e.version
            )?;
        }
        Ok(())
    };
    write(&mut out).map_err(CliError::failed)
}

async fn delete(store: &Store, ns: &str, a: DeleteArgs, format: Format) -> Result<(), CliError> {
    let at = StateRef::new(ns, a.owner, &a.key);
    let version = store
        .state_delete(&at, a.if_version, &actor(), None)
        .await
        .map_err(state_error)?;
    let line = match (format, version) {
        (Format::Json, v) => serde_json::json!({
            "namespace": at.namespace, "owner": at.owner.to_string(), "key": at.key,
            "deleted": v.is_some(), "version": v,
        })
        .to_string(),
        (Format::Text, Some(v)) => format!("deleted {} of {} (version {v})", at.key, at.owner),
        (Format::Text, None) => format!("{} of {}: nothing to delete", at.key, at.owner),
    };
    writeln!(std::io::stdout(), "{line}").map_err(CliError::failed)
}

async fn history(store: &Store, at: StateRef, format: Format) -> Result<(), CliError> {
    let versions = store.state_history(&at).await.map_err(state_error)?;
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock| -> std::io::Result<()> {
        for v in &versions {
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_value(v).unwrap_or_default())?,
                Format::Text => {
                    let value = v.value.as_ref().map_or("-".to_string(), Value::to_string);
                    let at = v.at.to_rfc3339_opts(SecondsFormat::Secs, true);
                    writeln!(out, "{:<4} {:<6} {at} {} {value}", v.version, v.op, v.actor)?
                }
            }
        }
        Ok(())
    };
    write(&mut out).map_err(CliError::failed)
}

fn about(e: &StateEntry) -> String {
    let mut s = format!("version {} of {} in {}", e.version, e.owner, e.namespace);
    if let Some(t) = e.expires_at {
        s += &format!(", expires {}", t.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    s
}

fn entry_json(e: &StateEntry) -> Value {
    serde_json::to_value(e).unwrap_or_default()
}
