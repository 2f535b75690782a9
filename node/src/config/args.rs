//! Command-line flags and `AIRBLOC_*` environment variables that override the config file.

use super::Role;
use clap::Args;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Settings that can be given as flags (or the environment variable named in `--help`).
/// Every field is optional: only what is given overrides the file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML config file.
    #[arg(long, short = 'c', env = "AIRBLOC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory: store, keystore, API token, lock file.
    #[arg(long, env = "AIRBLOC_DATADIR", value_name = "DIR")]
    pub datadir: Option<PathBuf>,

    /// Roles to run, comma separated.
    #[arg(long, env = "AIRBLOC_ROLES", value_delimiter = ',', value_name = "ROLE,...")]
    pub roles: Option<Vec<Role>>,

    /// Keystore file of the node key.
    #[arg(long = "keystore.path", env = "AIRBLOC_KEYSTORE_PATH", value_name = "FILE", help_heading = "Keystore")]
    pub keystore_path: Option<PathBuf>,

    /// File holding the keystore password (else AIRBLOC_KEYSTORE_PASSWORD is read).
    #[arg(
        long = "keystore.password-file",
        env = "AIRBLOC_KEYSTORE_PASSWORD_FILE",
        value_name = "FILE",
        help_heading = "Keystore"
    )]
    pub keystore_password_file: Option<PathBuf>,

    /// Create a fresh node key if the keystore is missing.
    #[arg(long = "keystore.create", env = "AIRBLOC_KEYSTORE_CREATE", value_name = "BOOL", help_heading = "Keystore")]
    pub keystore_create: Option<bool>,

    /// Chain JSON-RPC endpoint (http, https, ws, wss).
    #[arg(long = "chain.rpc-url", env = "AIRBLOC_CHAIN_RPC_URL", value_name = "URL", help_heading = "Chain")]
    pub chain_rpc_url: Option<String>,

    /// deployment.json with the contract addresses.
    #[arg(long = "chain.deployment", env = "AIRBLOC_CHAIN_DEPLOYMENT", value_name = "FILE", help_heading = "Chain")]
    pub chain_deployment: Option<PathBuf>,

    /// Confirmations before a transaction counts as final.
    #[arg(long = "chain.confirmations", env = "AIRBLOC_CHAIN_CONFIRMATIONS", value_name = "N", help_heading = "Chain")]
    pub chain_confirmations: Option<u64>,

    /// libp2p listen multiaddr (repeatable).
    #[arg(
        long = "p2p.listen",
        env = "AIRBLOC_P2P_LISTEN",
        value_delimiter = ',',
        value_name = "MULTIADDR",
        help_heading = "P2P"
    )]
    pub p2p_listen: Option<Vec<String>>,

    /// Bootnode multiaddr (repeatable).
    #[arg(
        long = "p2p.bootnodes",
        env = "AIRBLOC_P2P_BOOTNODES",
        value_delimiter = ',',
        value_name = "MULTIADDR",
        help_heading = "P2P"
    )]
    pub p2p_bootnodes: Option<Vec<String>>,

    /// Discover peers on the local network with mDNS.
    #[arg(long = "p2p.mdns", env = "AIRBLOC_P2P_MDNS", value_name = "BOOL", help_heading = "P2P")]
    pub p2p_mdns: Option<bool>,

    /// Register this node in the NodeRegistry at start (needs gas on its address).
    #[arg(long = "p2p.register", env = "AIRBLOC_P2P_REGISTER", value_name = "BOOL", help_heading = "P2P")]
    pub p2p_register: Option<bool>,

    /// Established connections allowed in total.
    #[arg(long = "p2p.max-connections", env = "AIRBLOC_P2P_MAX_CONNECTIONS", value_name = "N", help_heading = "P2P")]
    pub p2p_max_connections: Option<u32>,

    /// gRPC listen address (port 0 picks a free port).
    /// Node address of the identity keeper this provider signs users up through.
    #[arg(long = "provider.keeper", env = "AIRBLOC_PROVIDER_KEEPER", value_name = "ADDRESS", help_heading = "Roles")]
    pub provider_keeper: Option<alloy::primitives::Address>,

    /// Seal pending records once this many wait for one app and data type (0: never).
    #[arg(
        long = "provider.seal-records",
        env = "AIRBLOC_PROVIDER_SEAL_RECORDS",
        value_name = "N",
        help_heading = "Roles"
    )]
    pub provider_seal_records: Option<u64>,

    /// Seal pending records once the oldest has waited this many seconds (0: never).
    #[arg(
        long = "provider.seal-age-secs",
        env = "AIRBLOC_PROVIDER_SEAL_AGE_SECS",
        value_name = "SECS",
        help_heading = "Roles"
    )]
    pub provider_seal_age_secs: Option<u64>,

    #[arg(long = "api.grpc-addr", env = "AIRBLOC_API_GRPC_ADDR", value_name = "ADDR", help_heading = "API")]
    pub api_grpc_addr: Option<SocketAddr>,

    /// Bearer token file for the gRPC API.
    #[arg(long = "api.token-file", env = "AIRBLOC_API_TOKEN_FILE", value_name = "FILE", help_heading = "API")]
    pub api_token_file: Option<PathBuf>,

    /// Serve Prometheus metrics.
    #[arg(long = "metrics.enabled", env = "AIRBLOC_METRICS_ENABLED", value_name = "BOOL", help_heading = "Metrics")]
    pub metrics_enabled: Option<bool>,

    /// Metrics listen address.
    #[arg(long = "metrics.addr", env = "AIRBLOC_METRICS_ADDR", value_name = "ADDR", help_heading = "Metrics")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log filter directives (RUST_LOG wins when set).
    #[arg(long = "log.filter", env = "AIRBLOC_LOG_FILTER", value_name = "DIRECTIVES", help_heading = "Logging")]
    pub log_filter: Option<String>,

    /// Log one JSON object per line.
    #[arg(long = "log.json", env = "AIRBLOC_LOG_JSON", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Logging")]
    pub log_json: Option<bool>,
}

impl ConfigArgs {
    /// Every setting given here, as `(key path, value)` overrides for the `config` crate's top
    /// layer (keys as in the TOML file).
    pub fn overrides(&self) -> Vec<(&'static str, ::config::Value)> {
        fn text(value: impl ToString) -> ::config::Value {
            value.to_string().into()
        }
        fn path(value: &Path) -> ::config::Value {
            value.to_string_lossy().into_owned().into()
        }
        fn list<T: ToString>(values: &[T]) -> ::config::Value {
            values.iter().map(ToString::to_string).collect::<Vec<_>>().into()
        }
        let given: [(&'static str, Option<::config::Value>); 22] = [
            ("datadir", self.datadir.as_deref().map(path)),
            ("roles", self.roles.as_deref().map(list)),
            ("keystore.path", self.keystore_path.as_deref().map(path)),
            ("keystore.password_file", self.keystore_password_file.as_deref().map(path)),
            ("keystore.create", self.keystore_create.map(Into::into)),
            ("chain.rpc_url", self.chain_rpc_url.as_deref().map(text)),
            ("chain.deployment", self.chain_deployment.as_deref().map(path)),
            ("chain.confirmations", self.chain_confirmations.map(Into::into)),
            ("p2p.listen", self.p2p_listen.as_deref().map(list)),
            ("p2p.bootnodes", self.p2p_bootnodes.as_deref().map(list)),
            ("p2p.mdns", self.p2p_mdns.map(Into::into)),
            ("p2p.register", self.p2p_register.map(Into::into)),
            ("p2p.max_connections", self.p2p_max_connections.map(Into::into)),
            ("provider.keeper", self.provider_keeper.map(text)),
            ("provider.seal_records", self.provider_seal_records.map(Into::into)),
            ("provider.seal_age_secs", self.provider_seal_age_secs.map(Into::into)),
            ("api.grpc_addr", self.api_grpc_addr.map(text)),
            ("api.token_file", self.api_token_file.as_deref().map(path)),
            ("metrics.enabled", self.metrics_enabled.map(Into::into)),
            ("metrics.addr", self.metrics_addr.map(text)),
            ("log.filter", self.log_filter.as_deref().map(text)),
            ("log.json", self.log_json.map(Into::into)),
        ];
        given.into_iter().filter_map(|(key, value)| Some((key, value?))).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_given_settings_override() {
        assert!(ConfigArgs::default().overrides().is_empty());
        let args = ConfigArgs {
            config: Some(PathBuf::from("airbloc.toml")),
            roles: Some(vec![Role::Provider, Role::Bootnode]),
            p2p_max_connections: Some(8),
            log_json: Some(true),
            ..ConfigArgs::default()
        };
        let keys: Vec<_> = args.overrides().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["roles", "p2p.max_connections", "log.json"], "--config is not a setting");
    }
}
