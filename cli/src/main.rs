//! `ordinaut`: the command-line entry point. Parses flags and dispatches; the logic lives in
//! one module per command.

mod schedule_cmd;
mod validate_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schedule(cmd) => schedule_cmd::run(cmd),
        Command::Validate(args) => validate_cmd::run(args),
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
