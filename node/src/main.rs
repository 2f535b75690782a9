//! `airblocd` — the airbloc node daemon.

use airbloc_node::{
    config::{Config, ConfigArgs},
    daemon,
};
use clap::Parser;
use std::{process::ExitCode, time::Duration};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// How long running work gets to finish after SIGINT/SIGTERM before the process exits anyway.
const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// airblocd — the airbloc node: provider, consumer, identity keeper and bootnode roles over one
/// backend (keys, store, chain client, p2p).
///
/// Settings come from defaults < the --config TOML file < AIRBLOC_* environment < flags.
/// The keystore password is read from --keystore.password-file or AIRBLOC_KEYSTORE_PASSWORD.
#[derive(Debug, Parser)]
#[command(name = "airblocd", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    dump_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("airblocd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.dump_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    init_tracing(&config);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("airblocd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let cancel = CancellationToken::new();
    let mut node = tokio::spawn(daemon::run(config, cancel.clone()));
    let outcome = tokio::select! {
        joined = &mut node => joined,
        signal = shutdown_signal() => {
            info!(target: "node", %signal, "shutting down");
            cancel.cancel();
            match tokio::time::timeout(GRACE_PERIOD, &mut node).await {
                Ok(joined) => joined,
                Err(_) => {
                    error!(target: "node", "did not stop within {GRACE_PERIOD:?}; exiting anyway");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            error!(target: "node", "{e}");
            eprintln!("airblocd: {e}");
            ExitCode::FAILURE
        }
        Err(panic) => {
            error!(target: "node", "node task panicked: {panic}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}
