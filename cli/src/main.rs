//! `airbloc` — command-line client for airbloc nodes.

mod admin;
mod node;
mod wallet;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes scripts can rely on.
pub(crate) mod exit {
    pub(crate) const OK: u8 = 0;
    pub(crate) const USAGE: u8 = 1;
    pub(crate) const NOT_FOUND: u8 = 2;
    pub(crate) const CHAIN: u8 = 3;
    pub(crate) const NODE_UNREACHABLE: u8 = 4;
    pub(crate) const FAILED: u8 = 5;
}

/// airbloc — wallet, admin tool and client for airblocd nodes.
#[derive(Debug, Parser)]
#[command(name = "airbloc", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy and govern the contracts.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Talk to a running node.
    #[command(subcommand)]
    Node(node::NodeCommand),
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Admin(cmd) => admin::run(cmd, cli.json).await,
            Command::Node(cmd) => node::run(cmd, cli.json).await,
        }
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            eprintln!("airbloc: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
