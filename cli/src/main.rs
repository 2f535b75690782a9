//! `airbloc` — command-line client for airbloc nodes.

mod admin;
mod amount;
mod chain;
mod client;
mod data;
mod exchange;
mod node;
mod registry;
mod users;
mod wallet;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes scripts can rely on.
pub(crate) mod exit {
    pub(crate) const OK: u8 = 0;
    /// Bad arguments, an unreadable or invalid input file, a wrong password.
    pub(crate) const USAGE: u8 = 1;
    /// The app, data type, user, bundle, offer, order or keystore does not exist.
    pub(crate) const NOT_FOUND: u8 = 2;
    /// The chain refused or could not be reached, or it is not the deployment's chain.
    pub(crate) const CHAIN: u8 = 3;
    /// The node is not running or not reachable.
    pub(crate) const NODE_UNREACHABLE: u8 = 4;
    /// Anything else that failed.
    pub(crate) const FAILED: u8 = 5;
    /// The node or a peer refused (not permitted, no consent, not the owner).
    pub(crate) const REFUSED: u8 = 6;
    /// Delivered data does not match the chain.
    pub(crate) const MISMATCH: u8 = 7;
}

const EXIT_CODES: &str = "\
Exit codes: 0 ok · 1 usage (bad arguments, unreadable file, wrong password) · 2 not found ·
3 chain error (refused, unreachable, wrong chain id) · 4 node unreachable · 5 failed ·
6 refused by the node or a peer · 7 delivered data does not match the chain

Every command talking to a node takes --datadir of a local node (or --grpc and --token-file).
Add --json to any command for machine-readable output.";

/// airbloc — wallet, admin tool and client for airblocd nodes.
#[derive(Debug, Parser)]
#[command(name = "airbloc", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accounts: create, import, list, balances, transfers (v3 keystores, cast-compatible).
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// Deploy and govern the contracts; NodeRegistry entries.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Talk to a running node: status, peers, its outbox.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Apps (register through a provider node; show from any node).
    #[command(subcommand)]
    App(registry::AppCommand),
    /// Data types with their JSON Schemas.
    #[command(subcommand, name = "datatype")]
    DataType(registry::DataTypeCommand),
    /// User accounts: sign-up through a keeper, policy, hand-over, export.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Consents: allow, revoke, request, list.
    #[command(subcommand)]
    Consent(users::ConsentCommand),
    /// Records into a provider node.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Bundles: list, show, seal.
    #[command(subcommand)]
    Bundle(data::BundleCommand),
    /// Offers on the exchange.
    #[command(subcommand)]
    Offer(exchange::OfferCommand),
    /// Orders: place, status, settle, refund.
    #[command(subcommand)]
    Order(exchange::OrderCommand),
    /// Download an ordered bundle: verified against the chain, decrypted to NDJSON.
    ///
    /// Example: airbloc download 0xORDER… --out records.ndjson --datadir testnet/state/consumer-1
    Download(exchange::DownloadArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: airbloc completions bash > /etc/bash_completion.d/airbloc
    Completions { shell: clap_complete::Shell },
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

/// A reader that stopped reading (`airbloc --json offer list | head -1`) ends the program
/// quietly with exit 0: `println!` panics on a closed stdout, and that panic is not a failure.
fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(i32::from(exit::OK));
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let json = cli.json;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Wallet(cmd) => wallet::run(cmd, json).await,
            Command::Admin(cmd) => admin::run(cmd, json).await,
            Command::Node(cmd) => node::run(cmd, json).await,
            Command::App(cmd) => registry::run_app(cmd, json).await,
            Command::DataType(cmd) => registry::run_data_type(cmd, json).await,
            Command::User(cmd) => users::run_user(cmd, json).await,
            Command::Consent(cmd) => users::run_consent(cmd, json).await,
            Command::Data(cmd) => data::run_data(cmd, json).await,
            Command::Bundle(cmd) => data::run_bundle(cmd, json).await,
            Command::Offer(cmd) => exchange::run_offer(cmd, json).await,
            Command::Order(cmd) => exchange::run_order(cmd, json).await,
            Command::Download(args) => exchange::run_download(args, json).await,
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "airbloc", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            if json {
                println!("{}", serde_json::json!({ "error": f.message, "exit_code": f.code }));
            }
            eprintln!("airbloc: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
