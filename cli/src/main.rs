//! `ordinaut`: the command-line entry point. Parses flags and dispatches; the logic lives in
//! one module per command.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod audit_cmd;
mod dev;
mod events_cmd;
mod kube_cmd;
mod mcp_cmd;
mod runs_cmd;
mod schedule_cmd;
mod state_cmd;
mod target;
mod task_cmd;
mod validate_cmd;
mod when;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Ordinaut: a Kubernetes-native scheduler for AI agents.
#[derive(Debug, Parser)]
#[command(name = "ordinaut", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Top-level commands. Each variant's arguments live next to its implementation.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with schedules (RRULE, cron, at, every) without a cluster.
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    /// Validate Task, Pipeline, McpServer and Agent manifests without a cluster.
    Validate(validate_cmd::ValidateArgs),
    /// Run everything (operator, worker, events) in one process on a folder of manifests,
    /// without a cluster; the folder is watched.
    Dev(dev::DevArgs),
    /// Run history: list runs, show one with its steps.
    Runs(runs_cmd::RunsArgs),
    /// Act on a Task: run it now, backfill a past range, snooze it.
    Task(task_cmd::TaskArgs),
    /// Events that start Tasks `on: {topic}`: publish one, or tail a topic.
    Events(events_cmd::EventsArgs),
    /// Agent memory: the keys agents and pipelines keep between runs (get, put, list).
    State(state_cmd::StateArgs),
    /// The audit log: who did what (gateway calls, run-now, backfill, scope refusals).
    Audit(audit_cmd::AuditArgs),
    /// A stdio MCP server for desktop agents, bridged to a gateway (`ordinaut dev`'s, or
    /// --url) with the token in ORDINAUT_TOKEN.
    Mcp(mcp_cmd::McpArgs),
    /// Tasks in a cluster, through the Kubernetes API as the kubeconfig's user.
    #[command(flatten)]
    Cluster(kube_cmd::ClusterCommand),
}

/// Installed (linked or copied) as `kubectl-ordinaut`, the binary is a kubectl plugin and
/// names itself `kubectl ordinaut` in help and errors.
fn parse() -> Cli {
    let invoked = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()));
    let mut command = Cli::command();
    if invoked.as_deref() == Some("kubectl-ordinaut") {
        command = command
            .name("kubectl-ordinaut")
            .bin_name("kubectl ordinaut")
            // As a kubectl plugin, `runs` is the cluster's run history (through the
            // gateway); `ordinaut runs` reads `ordinaut dev`'s database instead.
            .mut_subcommand("runs", |c| c.name("dev-runs").hide(true))
            .mut_subcommand("history", |c| c.visible_alias("runs"));
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse();
    let result = match cli.command {
        Command::Schedule(cmd) => schedule_cmd::run(cmd),
        Command::Validate(args) => validate_cmd::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Runs(args) => runs_cmd::run(args),
        Command::Task(args) => task_cmd::run(args),
        Command::Events(args) => events_cmd::run(args),
        Command::State(args) => state_cmd::run(args),
        Command::Audit(args) => audit_cmd::run(args),
        Command::Mcp(args) => mcp_cmd::run(args),
        Command::Cluster(cmd) => kube_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command failure with the exit code it maps to (2: invalid input, as clap uses for
/// usage errors; 1: anything else).
#[derive(Debug)]
pub struct CliError {
    code: u8,
    source: anyhow::Error,
}

impl CliError {
    /// Invalid input from the user: exit code 2.
    pub fn invalid(source: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 2,
            source: source.into(),
        }
    }

    /// Any other failure: exit code 1.
    pub fn failed(source: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            source: source.into(),
        }
    }

    fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.source)
    }
}
