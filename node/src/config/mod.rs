//! Node configuration.
//!
//! One serde struct, [`Config`], holds every setting. The [`config`](::config) crate builds it in
//! layers, each overriding the one before:
//!
//! 1. built-in defaults ([`Config::default`], through `#[serde(default)]`),
//! 2. the TOML file given with `--config` (unknown keys are an error naming the key and the file),
//! 3. `AIRBLOC_*` environment variables,
//! 4. command-line flags.
//!
//! Layers 3 and 4 are the same [`ConfigArgs`]: every flag has an environment variable, and
//! a flag beats its variable; [`ConfigArgs::overrides`] turns what was given into the top layer.
//! An `AIRBLOC_<SECTION>_*` variable that names no setting is an error naming the variable (see
//! [`check_environment`]). `airblocd --dump-config` prints the effective result as TOML.
//!
//! Secrets never live here: the keystore password comes from a file or the
//! `AIRBLOC_KEYSTORE_PASSWORD` variable (see [`crate::keys`]), the API token from its file.

mod args;
mod env;

pub use args::ConfigArgs;
pub use env::check_environment;

use serde::{Deserialize, Serialize};
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// A role the node can run. See the design document, section 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ingests, seals, anchors, announces, sells and delivers data.
    Provider,
    /// Discovers, orders, downloads, verifies and settles data.
    Consumer,
    /// Acts for users without wallets (identity keeper / data controller).
    Keeper,
    /// Discovery only.
    Bootnode,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Provider => "provider",
            Self::Consumer => "consumer",
            Self::Keeper => "keeper",
            Self::Bootnode => "bootnode",
        })
    }
}

/// The whole node configuration. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its state: store, keystore, API token, lock file.
    pub datadir: PathBuf,
    /// Roles to run.
    pub roles: Vec<Role>,
    pub keystore: KeystoreConfig,
    pub chain: ChainConfig,
    pub p2p: P2pConfig,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub provider: ProviderConfig,
}

/// The provider role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Node address (0x…) of the identity keeper users without wallets are signed up through.
    pub keeper: Option<alloy::primitives::Address>,
    /// Seal an app's pending records of one data type once this many are waiting (0: never).
    pub seal_records: u64,
    /// Seal pending records once the oldest has waited this long, in seconds (0: never).
    pub seal_age_secs: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self { keeper: None, seal_records: 100_000, seal_age_secs: 0 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            datadir: PathBuf::from("airbloc-data"),
            roles: Vec::new(),
            keystore: KeystoreConfig::default(),
            chain: ChainConfig::default(),
            p2p: P2pConfig::default(),
            api: ApiConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            provider: ProviderConfig::default(),
        }
    }
}

/// The node key's keystore (Web3 Secret Storage v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoreConfig {
    /// Keystore file; relative paths are under the data dir. Default `keystore.json`.
    pub path: PathBuf,
    /// File holding the keystore password. When unset, the password comes from
    /// `AIRBLOC_KEYSTORE_PASSWORD`.
    pub password_file: Option<PathBuf>,
    /// Create a fresh key when the keystore file does not exist.
    pub create: bool,
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("keystore.json"), password_file: None, create: true }
    }
}

/// The Ethereum chain the node anchors to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint, `http(s)://` or `ws(s)://`.
    pub rpc_url: String,
    /// `deployment.json` written by the deploy step (chain id and contract addresses).
    pub deployment: Option<PathBuf>,
    /// Blocks on top of a transaction's block before it counts as final.
    pub confirmations: u64,
    /// Blocks the event indexer stays behind the head (0 follows the head).
    pub indexer_lag: u64,
    /// Most blocks per `eth_getLogs` request.
    pub log_page_size: u64,
    /// Seconds a sent transaction may wait without a receipt before its fees are bumped.
    pub stuck_after_secs: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            deployment: None,
            confirmations: 1,
            indexer_lag: 0,
            log_page_size: 2000,
            stuck_after_secs: 30,
        }
    }
}

/// libp2p networking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs (with `/p2p/<PeerId>`) of bootnodes to dial at start.
    pub bootnodes: Vec<String>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Established connections allowed in total.
    pub max_connections: u32,
    /// Register (or update) this node in the NodeRegistry at start, through the outbox, so peers
    /// admit it. Needs a deployment and gas on the node's address.
    pub register: bool,
    /// Multiaddrs published in the NodeRegistry; empty means the addresses the node listens on.
    pub external_addrs: Vec<String>,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/9650".into(), "/ip4/0.0.0.0/udp/9650/quic-v1".into()],
            bootnodes: Vec::new(),
            mdns: false,
            max_connections: 256,
            register: true,
            external_addrs: Vec::new(),
        }
    }
}

/// The gRPC API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the gRPC server binds; port 0 picks a free one (see `<datadir>/node.json`).
    pub grpc_addr: SocketAddr,
    /// Bearer token file; relative paths are under the data dir. Created with a random token
    /// at first start. Default `api.token`.
    pub token_file: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { grpc_addr: SocketAddr::from(([127, 0, 0, 1], 9640)), token_file: PathBuf::from("api.token") }
    }
}

/// Prometheus metrics endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address serving `/metrics`.
    pub addr: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: false, addr: SocketAddr::from(([127, 0, 0, 1], 9641)) }
    }
}

/// Logging. `RUST_LOG`, when set, overrides `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directives, e.g. `info,airbloc_node::api=debug`.
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), json: false }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} — check the path given with --config")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("unknown setting in the environment: {name} — the {section} settings are {known} (see `airblocd --help`)")]
    UnknownEnv { name: String, section: String, known: String },
}

impl Config {
    /// Parses a TOML document over the defaults. Unknown keys are an error naming the key.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        Self::build(Some((text, origin)), &ConfigArgs::default())
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_file(path)?;
        Self::from_toml(&text, path)
    }

    /// Builds the effective configuration: defaults < file < environment < flags.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        check_environment(std::env::vars_os())?;
        let text = args.config.as_deref().map(read_file).transpose()?;
        let file = text.as_deref().zip(args.config.as_deref());
        let config = Self::build(file, args)?;
        config.validate()?;
        Ok(config)
    }

    /// Layers `file` (TOML text and where it came from) and the `args` overrides over the
    /// defaults with the `config` crate.
    fn build(file: Option<(&str, &Path)>, args: &ConfigArgs) -> Result<Self, ConfigError> {
        // The bottom layer, the defaults, is `#[serde(default)]` on every section: a key no
        // layer sets keeps the value `Config::default` gives it.
        let mut builder = ::config::Config::builder();
        if let Some((text, _)) = file {
            builder = builder.add_source(::config::File::from_str(text, ::config::FileFormat::Toml));
        }
        for (key, value) in args.overrides() {
            builder = builder.set_override(key, value).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let origin = file.map(|(_, path)| path);
        builder.build().and_then(::config::Config::try_deserialize).map_err(|e| {
            let message = e.to_string().trim_end().replace('\n', " ");
            match origin {
                Some(path) => ConfigError::Parse { path: path.to_path_buf(), message },
                None => ConfigError::Invalid(message),
            }
        })
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.datadir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("datadir is empty — set it with --datadir".into()));
        }
        let url = self.chain.rpc_url.as_str();
        if !["http://", "https://", "ws://", "wss://"].iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::Invalid(format!(
                "chain.rpc_url `{url}` must start with http://, https://, ws:// or wss://"
            )));
        }
        let mut roles = self.roles.clone();
        roles.sort();
        roles.dedup();
        if roles.len() != self.roles.len() {
            return Err(ConfigError::Invalid("roles lists a role twice".into()));
        }
        for (field, addrs) in [
            ("p2p.listen", &self.p2p.listen),
            ("p2p.bootnodes", &self.p2p.bootnodes),
            ("p2p.external_addrs", &self.p2p.external_addrs),
        ] {
            for addr in addrs {
                if let Err(e) = addr.parse::<libp2p::Multiaddr>() {
                    return Err(ConfigError::Invalid(format!(
                        "{field}: `{addr}` is not a multiaddr ({e}) — write it like /ip4/127.0.0.1/tcp/9650"
                    )));
                }
            }
        }
        if self.p2p.max_connections == 0 {
            return Err(ConfigError::Invalid("p2p.max_connections must be at least 1".into()));
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `--dump-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serializes")
    }

    /// A path from the config, resolved against the data dir when relative.
    pub fn in_datadir(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.datadir.join(path) }
    }

    /// Whether the node runs `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/airbloc.toml"))
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn a_list_in_the_file_replaces_the_default_list() {
        let config = parse("[p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/1\"]\n").unwrap();
        assert_eq!(config.p2p.listen, vec!["/ip4/127.0.0.1/tcp/1".to_owned()]);
        assert_eq!(config.p2p.max_connections, P2pConfig::default().max_connections);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        for (text, key) in [
            ("[chain]\nconfirmatoins = 2\n", "confirmatoins"),
            ("[chian]\nrpc_url = \"http://x\"\n", "chian"),
            ("roles = [\"miner\"]\n", "miner"),
            ("[chain]\nconfirmations = \"many\"\n", "many"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
            assert!(err.contains("/etc/airbloc.toml"), "{text:?}: {err}");
        }
    }

    #[test]
    fn every_setting_survives_a_dump_and_reload() {
        let mut config = Config::default();
        config.roles = vec![Role::Provider, Role::Keeper];
        config.keystore.password_file = Some(PathBuf::from("/run/secrets/pw"));
        config.chain.deployment = Some(PathBuf::from("deployment.json"));
        config.chain.confirmations = 12;
        config.p2p.bootnodes = vec!["/ip4/10.0.0.1/tcp/9650".into()];
        config.p2p.listen = Vec::new();
        config.provider.keeper = Some(alloy::primitives::Address::repeat_byte(0xab));
        config.provider.seal_records = u64::from(u32::MAX) + 1;
        config.metrics.enabled = true;
        config.log.filter = "info,airbloc_node::api=debug".into();
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn flags_and_environment_override_the_file() {
        let args = ConfigArgs {
            roles: Some(vec![Role::Consumer]),
            chain_rpc_url: Some("ws://flag:8546".into()),
            p2p_bootnodes: Some(Vec::new()),
            provider_keeper: Some(alloy::primitives::Address::repeat_byte(1)),
            ..ConfigArgs::default()
        };
        let text = "roles = [\"provider\", \"keeper\"]\n[chain]\nrpc_url = \"http://file\"\nconfirmations = 3\n\
                    [p2p]\nbootnodes = [\"/ip4/10.0.0.1/tcp/1\"]\n";
        let config = Config::build(Some((text, Path::new("f.toml"))), &args).unwrap();
        assert_eq!(config.roles, vec![Role::Consumer]);
        assert_eq!(config.chain.rpc_url, "ws://flag:8546");
        assert_eq!(config.chain.confirmations, 3, "the file still applies where flags are silent");
        assert!(config.p2p.bootnodes.is_empty(), "an empty list given on the command line empties the list");
        assert_eq!(config.provider.keeper, Some(alloy::primitives::Address::repeat_byte(1)));
    }
}
