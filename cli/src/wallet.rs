//! `airbloc wallet …` and where a command's signing key comes from: a v3 keystore (password
//! from a prompt, a file or `AIRBLOC_KEYSTORE_PASSWORD`, never an argument) or a file holding a
//! hex private key. Keystores are Web3 Secret Storage v3, the format `cast wallet` reads and
//! writes, kept in one directory (`--dir`, default `~/.airbloc/keystores`).

use crate::{
    Failure, amount,
    chain::{RpcArgs, send},
    client::output,
    exit,
};
use airbloc_eth::{
    contracts::IERC20,
    keys::{self, KeyError, NodeKey},
};
use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    sol_types::SolCall,
};
use clap::{Args, Subcommand};
use std::{
    io::{IsTerminal, Read},
    path::{Path, PathBuf},
};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false, id = "key_source")]
pub(crate) struct KeyArgs {
    /// Web3 v3 keystore of the signing account.
    #[arg(long, env = "AIRBLOC_KEYSTORE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) keystore: Option<PathBuf>,
    /// File holding the signing account's private key as hex (e.g. anvil's dev keys).
    #[arg(long, env = "AIRBLOC_PRIVATE_KEY_FILE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) private_key_file: Option<PathBuf>,
}

/// The keystore password file, when a keystore is used.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswordArgs {
    /// File holding the keystore password (else AIRBLOC_KEYSTORE_PASSWORD, else a prompt).
    #[arg(long, env = "AIRBLOC_KEYSTORE_PASSWORD_FILE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password: from the file, the environment, or a prompt on a terminal.
    fn read(&self, confirm: bool) -> Result<Zeroizing<String>, Failure> {
        match keys::read_password(self.password_file.as_deref()) {
            Ok(pw) => Ok(pw),
            Err(KeyError::NoPassword) if std::io::stdin().is_terminal() => {
                let pw = Zeroizing::new(
                    rpassword::prompt_password("keystore password: ")
                        .map_err(|e| Failure::new(exit::USAGE, format!("cannot read the password: {e}")))?,
                );
                if confirm {
                    let again = Zeroizing::new(
                        rpassword::prompt_password("again: ")
                            .map_err(|e| Failure::new(exit::USAGE, format!("cannot read the password: {e}")))?,
                    );
                    if again != pw {
                        return Err(Failure::new(exit::USAGE, "the passwords differ"));
                    }
                }
                if pw.is_empty() {
                    return Err(Failure::new(exit::USAGE, "the password is empty"));
                }
                Ok(pw)
            }
            Err(KeyError::NoPassword) => Err(Failure::new(
                exit::USAGE,
                "no keystore password: give --password-file or set AIRBLOC_KEYSTORE_PASSWORD (no terminal to prompt on)",
            )),
            Err(e) => Err(Failure::new(exit::USAGE, e.to_string())),
        }
    }
}

fn key_failure(e: KeyError) -> Failure {
    let code = match e {
        KeyError::Missing(_) => exit::NOT_FOUND,
        _ => exit::USAGE,
    };
    Failure::new(code, e.to_string())
}

fn read_hex_key(text: &str, source: &str) -> Result<NodeKey, Failure> {
    let hex_text = text.trim().trim_start_matches("0x");
    let mut secret = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text, secret.as_mut())
        .map_err(|_| Failure::new(exit::USAGE, format!("{source} must hold a 32-byte private key in hex")))?;
    NodeKey::from_secret(&secret).map_err(|e| Failure::new(exit::USAGE, e.to_string()))
}

impl KeyArgs {
    pub(crate) fn load(&self, password: &PasswordArgs) -> Result<NodeKey, Failure> {
        if let Some(path) = &self.keystore {
            if !path.exists() {
                return Err(Failure::new(exit::NOT_FOUND, format!("no keystore at {}", path.display())));
            }
            let pw = password.read(false)?;
            return keys::open_keystore(path, &pw).map_err(key_failure);
        }
        let path = self.private_key_file.as_ref().expect("clap requires one key source");
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", path.display())))?,
        );
        read_hex_key(&text, &path.display().to_string())
    }
}

/// The keystore directory.
#[derive(Debug, Clone, Args)]
pub(crate) struct DirArgs {
    /// Keystore directory (default ~/.airbloc/keystores).
    #[arg(long, env = "AIRBLOC_KEYSTORE_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl DirArgs {
    fn path(&self) -> Result<PathBuf, Failure> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".airbloc").join("keystores"))
                .ok_or_else(|| Failure::new(exit::USAGE, "HOME is not set; give --dir")),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalletCommand {
    /// Create a new account in the keystore directory.
    ///
    /// Example: airbloc wallet new --name alice --password-file pw.txt
    New {
        /// File name (without .json) in the keystore directory; default: the address.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        dir: DirArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Import an account: a hex private key from a file or stdin, or an existing v3 keystore.
    ///
    /// Example: airbloc wallet import --private-key-file dev.key --name dev --password-file pw.txt
    Import {
        /// File holding a hex private key ("-" reads stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "keystore", required_unless_present = "keystore")]
        private_key_file: Option<PathBuf>,
        /// An existing v3 keystore (e.g. from `cast wallet new`); copied after checking its password.
        #[arg(long, value_name = "FILE")]
        keystore: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        dir: DirArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Accounts in the keystore directory.
    List {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// The address of an account, and the libp2p PeerId a node with this key has.
    Address {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// ETH (or, with --token, ERC-20) balance of an address.
    Balance {
        address: Address,
        /// ERC-20 token contract.
        #[arg(long)]
        token: Option<Address>,
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Payments the exchange holds for an address (ETH, or with --token an ERC-20): what
    /// `withdraw` would pay out.
    Credits {
        address: Address,
        #[arg(long)]
        token: Option<Address>,
        #[command(flatten)]
        chain: crate::chain::ChainArgs,
    },
    /// Send ETH (or, with --token, an ERC-20).
    ///
    /// Example: airbloc wallet send --keystore alice.json --to 0x… --amount 0.5eth
    Send {
        #[arg(long)]
        to: Address,
        /// Amount with a unit: 1.5eth, 20gwei, 100wei (ETH without one); with --token, in the
        /// token's units (decimals read from the token).
        #[arg(long)]
        amount: String,
        #[arg(long)]
        token: Option<Address>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        rpc: RpcArgs,
    },
}

/// The decimals and symbol an ERC-20 reports about itself.
async fn token_units<P: alloy::providers::Provider>(provider: &P, token: Address) -> Result<(u8, String), Failure> {
    let erc20 = IERC20::new(token, provider);
    let decimals = erc20.decimals().call().await.map_err(|e| {
        Failure::new(exit::CHAIN, format!("{token} does not answer decimals() as an ERC-20 does; is it a token? ({e})"))
    })?;
    let symbol = erc20.symbol().call().await.unwrap_or_else(|_| format!("tokens of {token}"));
    Ok((decimals, symbol))
}

/// Where a new keystore for `address` goes: `<dir>/<name or address>.json`, not yet taken.
fn new_keystore_path(dir: &Path, name: Option<&str>, address: Address) -> Result<PathBuf, Failure> {
    let name = name.map(str::to_owned).unwrap_or_else(|| address.to_string());
    if name.is_empty() || name.contains('/') {
        return Err(Failure::new(exit::USAGE, format!("`{name}` is not a usable file name")));
    }
    let path = dir.join(format!("{name}.json"));
    if path.exists() {
        return Err(Failure::new(exit::USAGE, format!("{} exists; choose another --name", path.display())));
    }
    Ok(path)
}

fn store(dir: &Path, name: Option<&str>, key: &NodeKey, password: &str) -> Result<PathBuf, Failure> {
    let path = new_keystore_path(dir, name, key.address())?;
    keys::write_keystore(&path, key, password).map_err(key_failure)?;
    Ok(path)
}

fn print_account(json: bool, address: Address, path: &Path) {
    output(json, serde_json::json!({ "address": address.to_string(), "keystore": path }), || {
        println!("{address}  {}", path.display())
    });
}

pub(crate) async fn run(cmd: WalletCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        WalletCommand::New { name, dir, password } => {
            let pw = password.read(true)?;
            let key = NodeKey::random();
            let path = store(&dir.path()?, name.as_deref(), &key, &pw)?;
            print_account(json, key.address(), &path);
        }
        WalletCommand::Import { private_key_file, keystore, name, dir, password } => {
            let dir = dir.path()?;
            if let Some(source) = keystore {
                let pw = password.read(false)?;
                let key = keys::open_keystore(&source, &pw).map_err(key_failure)?;
                let path = new_keystore_path(&dir, name.as_deref(), key.address())?;
                keys::create_private_dir(&dir)
                    .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
                    .and_then(|()| std::fs::copy(&source, &path).map(drop))
                    .and_then(|()| keys::set_mode(&path, 0o600))
                    .map_err(|e| Failure::new(exit::FAILED, format!("cannot write {}: {e}", path.display())))?;
                print_account(json, key.address(), &path);
                return Ok(());
            }
            let source = private_key_file.expect("clap requires a key source");
            let text = Zeroizing::new(if source.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::new(exit::USAGE, format!("cannot read stdin: {e}")))?;
                text
            } else {
                std::fs::read_to_string(&source)
                    .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", source.display())))?
            });
            let key = read_hex_key(&text, "the private key input")?;
            let pw = password.read(true)?;
            let path = store(&dir, name.as_deref(), &key, &pw)?;
            print_account(json, key.address(), &path);
        }
        WalletCommand::List { dir } => {
            let dir = dir.path()?;
            let mut accounts = Vec::new();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_none_or(|e| e != "json") {
                        continue;
                    }
                    let address = std::fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| v["address"].as_str().map(str::to_owned))
                        .and_then(|a| format!("0x{}", a.trim_start_matches("0x")).parse::<Address>().ok());
                    accounts.push((address, path));
                }
            }
            accounts.sort_by(|a, b| a.1.cmp(&b.1));
            let list: Vec<_> = accounts
                .iter()
                .map(|(a, p)| serde_json::json!({ "address": a.map(|a| a.to_string()), "keystore": p }))
                .collect();
            output(json, serde_json::json!({ "accounts": list }), || {
                if accounts.is_empty() {
                    println!("no accounts in {} — create one with `airbloc wallet new`", dir.display());
                }
                for (address, path) in &accounts {
                    let address = address.map_or_else(|| "(address not recorded)".to_owned(), |a| a.to_string());
                    println!("{address}  {}", path.display());
                }
            });
        }
        WalletCommand::Address { key, password } => {
            let key = key.load(&password)?;
            let (address, peer_id) = (key.address(), key.peer_id());
            output(json, serde_json::json!({ "address": address.to_string(), "peer_id": peer_id.to_string() }), || {
                println!("{address}  (libp2p PeerId of a node with this key: {peer_id})")
            });
        }
        WalletCommand::Balance { address, token, rpc } => {
            let provider = rpc.connect(None).await?;
            let (balance, unit, decimals) = match token {
                None => (
                    provider.get_balance(address).await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?,
                    "ETH".to_owned(),
                    18,
                ),
                Some(token) => {
                    let erc20 = IERC20::new(token, &provider);
                    let balance =
                        erc20.balanceOf(address).call().await.map_err(|e| {
                            Failure::new(exit::CHAIN, format!("{token} does not answer as an ERC-20: {e}"))
                        })?;
                    let (decimals, symbol) = token_units(&provider, token).await?;
                    (balance, symbol, decimals)
                }
            };
            output(
                json,
                serde_json::json!({ "address": address.to_string(), "balance": balance.to_string(), "unit": unit, "token": token.map(|t| t.to_string()) }),
                || println!("{}", amount::format_token(balance, decimals, &unit)),
            );
        }
        WalletCommand::Credits { address, token, chain } => {
            let (provider, deployment) = chain.connect(None).await?;
            let exchange =
                airbloc_eth::contracts::Exchange::new(crate::chain::contract(&deployment, "Exchange")?, &provider);
            let (decimals, unit) = match token {
                None => (18, "ETH".to_owned()),
                Some(token) => token_units(&provider, token).await?,
            };
            let credits = exchange
                .credits(address, token.unwrap_or(Address::ZERO))
                .call()
                .await
                .map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
            output(
                json,
                serde_json::json!({ "address": address.to_string(), "credits": credits.to_string(), "token": token.map(|t| t.to_string()) }),
                || println!("{}", amount::format_token(credits, decimals, &unit)),
            );
        }
        WalletCommand::Send { to, amount, token, key, password, rpc } => {
            let key = key.load(&password)?;
            let provider = rpc.connect(Some(&key)).await?;
            let (decimals, unit) = match token {
                None => (18, "ETH".to_owned()),
                Some(token) => token_units(&provider, token).await?,
            };
            let amount = match token {
                None => amount::parse_eth(&amount)?,
                Some(_) => amount::parse_token(&amount, decimals, &unit)?,
            };
            if amount.is_zero() {
                return Err(Failure::new(exit::USAGE, "the amount is zero; nothing to send"));
            }
            let receipt = match token {
                None => send(&provider, to, Vec::new(), amount).await?,
                Some(token) => {
                    let data = IERC20::transferCall { to, amount }.abi_encode();
                    send(&provider, token, data, U256::ZERO).await?
                }
            };
            output(
                json,
                serde_json::json!({ "tx": receipt.transaction_hash.to_string(), "block": receipt.block_number }),
                || {
                    println!(
                        "sent {} to {to} in {}",
                        amount::format_token(amount, decimals, &unit),
                        receipt.transaction_hash
                    )
                },
            );
        }
    }
    Ok(())
}
