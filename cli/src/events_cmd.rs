//! `ordinaut events publish TOPIC --data JSON` and `ordinaut events tail TOPIC`: publish an
//! event that starts the Tasks `on: {topic}`, and watch a topic's stream. They work on the
//! `ordinaut dev` running on `--data-dir`, or on `--database-url`/`--redis-url`.

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use ordinaut_events::StreamTail;
use ordinaut_store::{PublishRequest, topic_stream};
use serde_json::Value;

use crate::CliError;
use crate::dev::output::Format;
use crate::dev::state;
use crate::target::{Target, runtime};

/// `ordinaut events …`
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
    #[command(flatten)]
    pub target: Target,
    /// Ordinaut's Redis (for `tail`). Default: the Redis of the `ordinaut dev` running on
    /// --data-dir.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// `text` for a person, `json` for scripts.
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish an event: every Task `on: {topic: TOPIC}` starts one run with it as
    /// `${params.event}`.
    Publish(PublishArgs),
    /// Print the events published on a topic as they arrive (Ctrl-C to stop).
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The topic (letters, digits, `.`, `_`, `:`, `-`).
    pub topic: String,
    /// The event's data, as JSON (`'{"order": 7}'`).
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// The event id, 1 to 256 characters (default: a new UUID). Publishing again with the
    /// same id starts nothing new.
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// The topic.
    pub topic: String,
    /// Start with the events still in the stream instead of only new ones.
    #[arg(long)]
    pub from_start: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<usize>,
}

pub fn run(args: EventsArgs) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        match &args.command {
            EventsCommand::Publish(p) => publish(&args, p).await,
            EventsCommand::Tail(t) => tail(&args, t).await,
        }
    })
}

async fn publish(args: &EventsArgs, p: &PublishArgs) -> Result<(), CliError> {
    let data: Value = serde_json::from_str(&p.data).map_err(|e| {
        CliError::invalid(anyhow!(
            "--data is not JSON ({e}); write e.g. --data '{{\"order\": 7}}'"
        ))
    })?;
    let store = args.target.store().await?;
    let req = PublishRequest {
        topic: &p.topic,
        data: &data,
        source: "cli",
        id: p.id.clone(),
    };
    let event = store.publish_event(&req).await.map_err(|e| {
        if e.is_invalid_input() {
            CliError::invalid(e)
        } else {
            CliError::failed(e)
        }
    })?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string(&event).unwrap_or_default()),
        Format::Text => println!(
            "published {} on {} ({})",
            event.id, event.topic, event.stream
        ),
    }
    Ok(())
}

async fn tail(args: &EventsArgs, t: &TailArgs) -> Result<(), CliError> {
    let url = match &args.redis_url {
        Some(url) => url.clone(),
        None => state::read(&args.target.data_dir)
            .map(|s| s.redis_url)
            .ok_or_else(|| {
                CliError::failed(anyhow!(
                    "no Redis: no `ordinaut dev` is running on {}; start one with `ordinaut dev \
                     DIR`, or pass --redis-url",
                    args.target.data_dir.display()
                ))
            })?,
    };
    let mut tail = StreamTail::open(&url, topic_stream(&t.topic), t.from_start)
        .map_err(|e| CliError::invalid(anyhow!("--redis-url: {e}")))?;
    let mut seen = 0usize;
    let mut out = std::io::stdout();
    while t.count.is_none_or(|n| seen < n) {
        let entries = tail
            .next(100, Duration::from_secs(1))
            .await
            .map_err(|e| CliError::failed(anyhow!("reading {}: {e}", topic_stream(&t.topic))))?;
        for e in entries
            .into_iter()
            .take(t.count.map_or(usize::MAX, |n| n - seen))
        {
            seen += 1;
            let line = match args.output {
                Format::Json => e.payload.to_string(),
                Format::Text => format!(
                    "{}  {}  {}",
                    e.payload["publishedAt"].as_str().unwrap_or("-"),
                    e.payload["id"].as_str().unwrap_or("-"),
                    e.payload["data"]
                ),
            };
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    Ok(())
}
