//! `airbloc app …` and `airbloc datatype …`: registering through a provider node, reading
//! through any node's Registry service.

use crate::{
    Failure, client,
    client::{Connection, hex_id, output, parse_id, status_failure},
    exit,
};
use airbloc_proto::v1::{
    AppRef, DataTypeRef, RegisterAppRequest, RegisterDataTypeRequest, provider_client::ProviderClient,
    registry_client::RegistryClient,
};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Register an app owned by the provider node (waits until mined).
    ///
    /// Example: airbloc app register fitness --datadir testnet/state/provider-1
    Register {
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Let another node address ingest and register bundles for the app (owner's node only).
    ///
    /// Example: airbloc app authorize fitness --node 0x… --datadir testnet/state/provider-1
    Authorize {
        /// Name, or 0x id.
        app: String,
        #[arg(long)]
        node: alloy::primitives::Address,
        /// Withdraw the authorization instead.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// An app by name or id: owner, authorized nodes.
    Show {
        /// Name, or 0x id.
        app: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataTypeCommand {
    /// Register a data type with a JSON Schema file (the node keeps the schema; its hash goes on
    /// chain).
    ///
    /// Example: airbloc datatype register daily-steps --schema steps.schema.json --datadir testnet/state/provider-1
    Register {
        name: String,
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// A data type by name or id, with its schema (fetched from the network if needed).
    Show {
        /// Name, or 0x id.
        data_type: String,
        /// Write the schema to this file.
        #[arg(long, value_name = "FILE")]
        schema_out: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// A name or a 0x id, as (id bytes, name).
pub(crate) fn name_or_id(text: &str, what: &str) -> Result<(Vec<u8>, String), Failure> {
    if text.starts_with("0x") && text.len() == 66 {
        Ok((parse_id(text, what)?, String::new()))
    } else {
        Ok((Vec::new(), text.to_owned()))
    }
}

/// An app or data type id given by name or 0x id (registry ids are keccak256 of the name).
pub(crate) fn registry_id(text: &str, what: &str) -> Result<Vec<u8>, Failure> {
    if text.starts_with("0x") && text.len() == 66 {
        return parse_id(text, what);
    }
    Ok(alloy::primitives::keccak256(text.as_bytes()).to_vec())
}

pub(crate) async fn run_app(cmd: AppCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        AppCommand::Register { name, conn } => {
            let mut provider = client!(conn, ProviderClient);
            let app = provider.register_app(RegisterAppRequest { name: name.clone() }).await.map_err(status_failure)?;
            let app = app.into_inner();
            output(
                json,
                serde_json::json!({ "app_id": hex_id(&app.app_id), "name": name, "tx_id": app.tx_id }),
                || println!("app {name} registered: {}", hex_id(&app.app_id)),
            );
        }
        AppCommand::Authorize { app, node, revoke, conn } => {
            let mut provider = client!(conn, ProviderClient);
            let request = airbloc_proto::v1::AuthorizeNodeRequest {
                app_id: registry_id(&app, "app")?,
                node: node.to_string(),
                authorized: !revoke,
            };
            let done = provider.authorize_node(request).await.map_err(status_failure)?.into_inner();
            output(
                json,
                serde_json::json!({ "tx_id": done.tx_id, "node": node.to_string(), "authorized": !revoke }),
                || println!("{node} {} for {app}", if revoke { "is no longer authorized" } else { "is authorized" }),
            );
        }
        AppCommand::Show { app, conn } => {
            let (app_id, name) = name_or_id(&app, "app")?;
            let mut registry = client!(conn, RegistryClient);
            let app = registry.get_app(AppRef { app_id, name }).await.map_err(status_failure)?.into_inner();
            output(
                json,
                serde_json::json!({
                    "app_id": hex_id(&app.app_id), "name": app.name, "owner": app.owner,
                    "authorized": app.authorized, "retired": app.retired,
                }),
                || {
                    println!("app        {} ({})", app.name, hex_id(&app.app_id));
                    println!("owner      {}", app.owner);
                    println!(
                        "authorized {}",
                        if app.authorized.is_empty() { "-".into() } else { app.authorized.join(", ") }
                    );
                    if app.retired {
                        println!("retired");
                    }
                },
            );
        }
    }
    Ok(())
}

pub(crate) async fn run_data_type(cmd: DataTypeCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        DataTypeCommand::Register { name, schema, conn } => {
            let schema_json = std::fs::read_to_string(&schema)
                .map_err(|e| Failure::new(exit::USAGE, format!("cannot read the schema {}: {e}", schema.display())))?;
            let mut provider = client!(conn, ProviderClient);
            let registered = provider
                .register_data_type(RegisterDataTypeRequest { name: name.clone(), schema_json })
                .await
                .map_err(status_failure)?
                .into_inner();
            output(
                json,
                serde_json::json!({
                    "data_type_id": hex_id(&registered.data_type_id), "name": name,
                    "schema_hash": hex_id(&registered.schema_hash), "tx_id": registered.tx_id,
                }),
                || println!("data type {name} registered: {}", hex_id(&registered.data_type_id)),
            );
        }
        DataTypeCommand::Show { data_type, schema_out, conn } => {
            let (data_type_id, name) = name_or_id(&data_type, "data type")?;
            let mut registry = client!(conn, RegistryClient);
            let info =
                registry.get_data_type(DataTypeRef { data_type_id, name }).await.map_err(status_failure)?.into_inner();
            if let Some(path) = &schema_out {
                std::fs::write(path, &info.schema_json)
                    .map_err(|e| Failure::new(exit::FAILED, format!("cannot write {}: {e}", path.display())))?;
            }
            let schema: serde_json::Value =
                serde_json::from_str(&info.schema_json).unwrap_or(serde_json::Value::String(info.schema_json.clone()));
            output(
                json,
                serde_json::json!({
                    "data_type_id": hex_id(&info.data_type_id), "name": info.name, "owner": info.owner,
                    "schema_hash": hex_id(&info.schema_hash), "version": info.version, "schema": schema,
                }),
                || {
                    println!("data type  {} ({})", info.name, hex_id(&info.data_type_id));
                    println!("owner      {}", info.owner);
                    println!("schema     {} (version {})", hex_id(&info.schema_hash), info.version);
                    println!("{schema:#}");
                },
            );
        }
    }
    Ok(())
}
