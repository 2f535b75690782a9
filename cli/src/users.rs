//! `airbloc user …` and `airbloc consent …`: accounts and consents — through an identity keeper
//! for users without a wallet, or signed with the user's own wallet.

use crate::{
    Failure,
    chain::{ChainArgs, contract, send},
    client,
    client::{Connection, hex_id, output, parse_id, status_failure},
    exit,
    registry::registry_id,
    wallet::PasswordArgs,
};
use airbloc_crypto::eip712::{Consent, ConsentBatch, consents_domain};
use airbloc_eth::contracts::Consents;
use airbloc_proto::v1::{
    ConsentChange, ExportRequest, Grant, IdentityRequest, KeeperSignUpRequest, ListConsentsResponse,
    ProviderSignUpRequest, RequestConsentsRequest, SetConsentsRequest, SetPolicyRequest, UnlockRequest, UserRef,
    keeper_client::KeeperClient, provider_client::ProviderClient, registry_client::RegistryClient,
};
use alloy::{
    primitives::{Address, B256, U256},
    signers::SignerSync,
    sol_types::{SolCall, SolStruct},
};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Sign a user up by identity (e-mail, phone): with --app through a provider node (which asks
    /// its keeper), without it directly at a keeper node.
    ///
    /// Example: airbloc user signup alice@example.com --app fitness --datadir testnet/state/provider-1
    Signup {
        identity: String,
        /// The app (name or 0x id) the provider signs the user up for.
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Create an account for a wallet (Users.create, sent by the wallet).
    ///
    /// Example: airbloc user create --wallet ~/.airbloc/keystores/bob.json
    Create {
        /// The user's wallet keystore.
        #[arg(long, value_name = "FILE")]
        wallet: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// A user's account: by identity at their keeper, or by --id at any node.
    Show {
        #[arg(required_unless_present = "id")]
        identity: Option<String>,
        #[arg(long, conflicts_with = "identity")]
        id: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// What providers may have without asking the user again (at the keeper). Without
    /// --grant or --clear it only shows the policy.
    ///
    /// Example: airbloc user policy alice@example.com --grant collect:fitness --grant exchange:fitness:daily-steps
    Policy {
        identity: String,
        /// ACTION[:APP[:DATA_TYPE]]; names or 0x ids; missing parts mean any. Replaces the policy.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Remove every grant.
        #[arg(long, conflicts_with = "grants")]
        clear: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Hand the account over to the user's wallet (at the keeper).
    Unlock {
        identity: String,
        #[arg(long)]
        owner: Address,
        #[command(flatten)]
        conn: Connection,
    },
    /// The user's own records, collected by the keeper from every provider, as NDJSON.
    Export {
        identity: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Action {
    Collect,
    Exchange,
}

impl Action {
    fn code(self) -> u32 {
        match self {
            Action::Collect => 0,
            Action::Exchange => 1,
        }
    }
}

/// What a consent change is about.
#[derive(Debug, Args)]
pub(crate) struct ConsentTarget {
    /// App, by name or 0x id.
    #[arg(long)]
    app: String,
    /// Data type, by name or 0x id.
    #[arg(long)]
    data_type: String,
    /// collect, exchange (repeat or comma separate for both).
    #[arg(long = "action", value_enum, value_delimiter = ',', required = true)]
    actions: Vec<Action>,
}

/// Who changes the consent.
#[derive(Debug, Args)]
pub(crate) struct ConsentWriter {
    /// A user without a wallet: their keeper (--datadir of the keeper node) writes it.
    #[arg(long, conflicts_with = "user")]
    identity: Option<String>,
    /// A user with a wallet: their account id; the wallet signs (EIP-712) and sends it.
    #[arg(long, requires = "wallet")]
    user: Option<String>,
    /// The user's wallet keystore.
    #[arg(long, value_name = "FILE")]
    wallet: Option<PathBuf>,
    #[command(flatten)]
    password: PasswordArgs,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Allow an app to collect or exchange a data type of the user.
    ///
    /// Example: airbloc consent allow --identity alice@example.com --app fitness --data-type daily-steps --action collect,exchange --datadir testnet/state/keeper
    Allow {
        #[command(flatten)]
        target: ConsentTarget,
        #[command(flatten)]
        writer: ConsentWriter,
    },
    /// Withdraw it.
    Revoke {
        #[command(flatten)]
        target: ConsentTarget,
        #[command(flatten)]
        writer: ConsentWriter,
    },
    /// A provider asks the user's keeper to grant consents (within the user's policy).
    Request {
        /// The user's account id.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        target: ConsentTarget,
        /// Ask to withdraw instead.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// A user's consents with their history: by identity at the keeper, or by --user anywhere.
    List {
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        identity: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

fn account_json(a: &airbloc_proto::v1::Account) -> serde_json::Value {
    serde_json::json!({
        "user_id": hex_id(&a.user_id), "identity_hash": hex_id(&a.identity_hash), "status": a.status,
        "owner": a.owner, "controller": a.controller,
        "policy": a.policy.iter().map(|g| serde_json::json!({
            "action": if g.action == 0 { "collect" } else { "exchange" },
            "app_id": if g.app_id.is_empty() { None } else { Some(hex_id(&g.app_id)) },
            "data_type_id": if g.data_type_id.is_empty() { None } else { Some(hex_id(&g.data_type_id)) },
        })).collect::<Vec<_>>(),
    })
}

fn print_account(json: bool, a: &airbloc_proto::v1::Account) {
    output(json, account_json(a), || {
        println!("user       {}", hex_id(&a.user_id));
        println!("status     {}", a.status);
        if !a.owner.is_empty() {
            println!("owner      {}", a.owner);
        }
        println!("controller {}", if a.controller.is_empty() { "-" } else { &a.controller });
        println!("grants     {}", a.policy.len());
        for g in &a.policy {
            let part = |id: &[u8]| if id.is_empty() { "any".to_owned() } else { hex_id(id) };
            println!(
                "  {:<8} app {}  data type {}",
                if g.action == 0 { "collect" } else { "exchange" },
                part(&g.app_id),
                part(&g.data_type_id)
            );
        }
    });
}

fn parse_grant(spec: &str) -> Result<Grant, Failure> {
    let mut parts = spec.split(':');
    let action = match parts.next() {
        Some("collect") => 0,
        Some("exchange") => 1,
        _ => return Err(Failure::new(exit::USAGE, format!("grant `{spec}` must start with collect or exchange"))),
    };
    let app_id = parts.next().filter(|p| !p.is_empty()).map(|p| registry_id(p, "app")).transpose()?.unwrap_or_default();
    let data_type_id =
        parts.next().filter(|p| !p.is_empty()).map(|p| registry_id(p, "data type")).transpose()?.unwrap_or_default();
    Ok(Grant { app_id, action, data_type_id })
}

fn print_consents(json: bool, list: &ListConsentsResponse) {
    let rows: Vec<_> = list
        .consents
        .iter()
        .map(|c| {
            serde_json::json!({
                "app_id": hex_id(&c.app_id), "data_type_id": hex_id(&c.data_type_id),
                "action": if c.action == 0 { "collect" } else { "exchange" },
                "allowed": c.allowed, "set_by_user": c.set_by_user,
                "history": c.history.iter().map(|e| serde_json::json!({"block": e.block, "allowed": e.allowed})).collect::<Vec<_>>(),
            })
        })
        .collect();
    output(json, serde_json::json!({ "consents": rows }), || {
        if list.consents.is_empty() {
            println!("no consents");
        }
        for c in &list.consents {
            let history: Vec<String> = c
                .history
                .iter()
                .map(|e| format!("{}@{}", if e.allowed { "allow" } else { "revoke" }, e.block))
                .collect();
            println!(
                "{:<8} {:<8} app {} data type {}  [{}]{}",
                if c.action == 0 { "collect" } else { "exchange" },
                if c.allowed { "allowed" } else { "denied" },
                hex_id(&c.app_id),
                hex_id(&c.data_type_id),
                history.join(" "),
                if c.set_by_user { " (set by the user)" } else { "" }
            );
        }
    });
}

pub(crate) async fn run_user(cmd: UserCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        UserCommand::Signup { identity, app: Some(app), conn } => {
            let app_id = registry_id(&app, "app")?;
            let mut provider = client!(conn, ProviderClient);
            let signed = provider
                .sign_up(ProviderSignUpRequest { identity: identity.clone(), app_id })
                .await
                .map_err(status_failure)?
                .into_inner();
            output(
                json,
                serde_json::json!({ "user_id": hex_id(&signed.user_id), "existing": signed.existing }),
                || {
                    let what = if signed.existing { "already had" } else { "now has" };
                    println!("{identity} {what} account {}", hex_id(&signed.user_id));
                },
            );
        }
        UserCommand::Create { wallet, password, chain } => {
            let key = crate::wallet::KeyArgs { keystore: Some(wallet), private_key_file: None }.load(&password)?;
            let (provider, deployment) = chain.connect(Some(&key)).await?;
            let data = airbloc_eth::contracts::Users::createCall {}.abi_encode();
            let receipt = send(&provider, contract(&deployment, "Users")?, data, U256::ZERO).await?;
            let user = receipt
                .decoded_log::<airbloc_eth::contracts::Users::UserCreated>()
                .map(|log| log.userId)
                .ok_or_else(|| Failure::new(exit::CHAIN, "the account was created but its event is missing"))?;
            output(
                json,
                serde_json::json!({ "user_id": user.to_string(), "owner": key.address().to_string() }),
                || println!("account {user} belongs to {}", key.address()),
            );
        }
        UserCommand::Signup { identity, app: None, conn } => {
            let mut keeper = client!(conn, KeeperClient);
            let account = keeper.sign_up(KeeperSignUpRequest { identity }).await.map_err(status_failure)?.into_inner();
            print_account(json, &account);
        }
        UserCommand::Show { identity: Some(identity), conn, .. } => {
            let mut keeper = client!(conn, KeeperClient);
            let account = keeper.get_account(IdentityRequest { identity }).await.map_err(status_failure)?.into_inner();
            print_account(json, &account);
        }
        UserCommand::Show { id, conn, .. } => {
            let user_id = parse_id(id.as_deref().unwrap_or_default(), "user id")?;
            let mut registry = client!(conn, RegistryClient);
            let user = registry.get_user(UserRef { user_id }).await.map_err(status_failure)?.into_inner();
            output(
                json,
                serde_json::json!({ "user_id": hex_id(&user.user_id), "status": user.status, "owner": user.owner, "controller": user.controller }),
                || {
                    println!("user       {}", hex_id(&user.user_id));
                    println!("status     {}", user.status);
                    println!("owner      {}", if user.owner.is_empty() { "-" } else { &user.owner });
                    println!("controller {}", if user.controller.is_empty() { "-" } else { &user.controller });
                },
            );
        }
        UserCommand::Policy { identity, grants, clear, conn } => {
            let grants = grants.iter().map(|g| parse_grant(g)).collect::<Result<Vec<_>, _>>()?;
            let mut keeper = client!(conn, KeeperClient);
            let account = if grants.is_empty() && !clear {
                keeper.get_account(IdentityRequest { identity }).await
            } else {
                keeper.set_policy(SetPolicyRequest { identity, grants }).await
            }
            .map_err(status_failure)?
            .into_inner();
            print_account(json, &account);
        }
        UserCommand::Unlock { identity, owner, conn } => {
            let mut keeper = client!(conn, KeeperClient);
            let account = keeper
                .unlock(UnlockRequest { identity, new_owner: owner.to_string() })
                .await
                .map_err(status_failure)?
                .into_inner();
            print_account(json, &account);
        }
        UserCommand::Export { identity, out, conn } => {
            let mut keeper = client!(conn, KeeperClient);
            let export = keeper
                .export(ExportRequest { identity, public_key: vec![] })
                .await
                .map_err(status_failure)?
                .into_inner();
            let records: String = export.providers.iter().map(|p| p.records_ndjson.as_str()).collect();
            std::fs::write(&out, &records)
                .map_err(|e| Failure::new(exit::FAILED, format!("cannot write {}: {e}", out.display())))?;
            let providers: Vec<_> = export
                .providers
                .iter()
                .map(|p| serde_json::json!({ "provider": p.provider, "count": p.count, "error": p.error }))
                .collect();
            output(json, serde_json::json!({ "providers": providers, "out": out }), || {
                for p in &export.providers {
                    match p.error.is_empty() {
                        true => println!("{}: {} record(s)", p.provider, p.count),
                        false => println!("{}: {}", p.provider, p.error),
                    }
                }
                println!("wrote {}", out.display());
            });
        }
    }
    Ok(())
}

fn changes(target: &ConsentTarget, allowed: bool) -> Result<Vec<ConsentChange>, Failure> {
    let app_id = registry_id(&target.app, "app")?;
    let data_type_id = registry_id(&target.data_type, "data type")?;
    Ok(target
        .actions
        .iter()
        .map(|a| ConsentChange {
            app_id: app_id.clone(),
            action: a.code(),
            data_type_id: data_type_id.clone(),
            allowed,
        })
        .collect())
}

async fn write_consents(
    target: ConsentTarget,
    writer: ConsentWriter,
    allowed: bool,
    json: bool,
) -> Result<(), Failure> {
    let changes = changes(&target, allowed)?;
    if let Some(identity) = writer.identity {
        let mut keeper = client!(writer.conn, KeeperClient);
        let done = keeper
            .set_consents(SetConsentsRequest { identity: identity.clone(), changes })
            .await
            .map_err(status_failure)?
            .into_inner();
        output(json, serde_json::json!({ "tx_id": done.tx_id, "block": done.block }), || {
            println!("consents of {identity} written by the keeper in block {}", done.block)
        });
        return Ok(());
    }
    let (Some(user), Some(wallet)) = (writer.user, writer.wallet) else {
        return Err(Failure::new(exit::USAGE, "give --identity (through a keeper) or --user with --wallet"));
    };
    let user = B256::from_slice(&parse_id(&user, "user id")?);
    let key = crate::wallet::KeyArgs { keystore: Some(wallet), private_key_file: None }.load(&writer.password)?;
    let (provider, deployment) = writer.chain.connect(Some(&key)).await?;
    let consents_address = contract(&deployment, "Consents")?;
    let consents = Consents::new(consents_address, &provider);
    let nonce = consents.nonces(key.address()).call().await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
    let deadline = U256::from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600,
    );
    let items: Vec<Consent> = changes
        .iter()
        .map(|c| Consent {
            app: B256::from_slice(&c.app_id),
            action: c.action as u8,
            dataType: B256::from_slice(&c.data_type_id),
            allowed: c.allowed,
        })
        .collect();
    let batch = ConsentBatch { user, consents: items.clone(), nonce, deadline };
    let digest = batch.eip712_signing_hash(&consents_domain(deployment.chain_id, consents_address));
    let signature =
        key.signer().sign_hash_sync(&digest).map_err(|e| Failure::new(exit::FAILED, format!("cannot sign: {e}")))?;
    let signed: Vec<Consents::SignedConsent> = items
        .iter()
        .map(|c| Consents::SignedConsent { appId: c.app, action: c.action, dataTypeId: c.dataType, allowed: c.allowed })
        .collect();
    let data = Consents::setConsentsBySigCall {
        userId: user,
        consents: signed,
        deadline,
        signature: signature.as_bytes().to_vec().into(),
    }
    .abi_encode();
    let receipt = send(&provider, consents_address, data, U256::ZERO).await?;
    output(
        json,
        serde_json::json!({ "tx": receipt.transaction_hash.to_string(), "block": receipt.block_number }),
        || {
            println!(
                "consents signed by {} and written in block {}",
                key.address(),
                receipt.block_number.unwrap_or_default()
            )
        },
    );
    Ok(())
}

pub(crate) async fn run_consent(cmd: ConsentCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        ConsentCommand::Allow { target, writer } => write_consents(target, writer, true, json).await,
        ConsentCommand::Revoke { target, writer } => write_consents(target, writer, false, json).await,
        ConsentCommand::Request { user, target, revoke, conn } => {
            let changes = changes(&target, !revoke)?;
            let request = RequestConsentsRequest {
                user_id: parse_id(&user, "user id")?,
                app_id: changes[0].app_id.clone(),
                changes,
            };
            let mut provider = client!(conn, ProviderClient);
            let done = provider.request_consents(request).await.map_err(status_failure)?.into_inner();
            output(json, serde_json::json!({ "tx_id": done.tx_id }), || {
                println!("the keeper granted it ({})", done.tx_id)
            });
            Ok(())
        }
        ConsentCommand::List { identity: Some(identity), conn, .. } => {
            let mut keeper = client!(conn, KeeperClient);
            let list = keeper.list_consents(IdentityRequest { identity }).await.map_err(status_failure)?.into_inner();
            print_consents(json, &list);
            Ok(())
        }
        ConsentCommand::List { user, conn, .. } => {
            let user_id = parse_id(user.as_deref().unwrap_or_default(), "user id")?;
            let mut registry = client!(conn, RegistryClient);
            let list = registry.list_user_consents(UserRef { user_id }).await.map_err(status_failure)?.into_inner();
            print_consents(json, &list);
            Ok(())
        }
    }
}
