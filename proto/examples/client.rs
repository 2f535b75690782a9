//! A program that talks to an airblocd node with nothing but `airbloc-proto`: connects with the
//! node's token, checks its status, streams records into a provider, and downloads a bundle of
//! an order from a consumer.
//!
//! ```sh
//! cargo run -p airbloc-proto --example client -- status   --datadir testnet/state/provider-1
//! cargo run -p airbloc-proto --example client -- ingest   --datadir testnet/state/provider-1 \
//!     --app 0x… --data-type 0x… --user 0x… --count 100 [--payload '{"steps":1}']
//! cargo run -p airbloc-proto --example client -- download --datadir testnet/state/consumer-1 \
//!     --order 0x… --bundle 0x… --out /tmp/records.ndjson
//! ```
//!
//! The data dir gives the endpoint (`node.json`) and the token (`api.token`); a remote node
//! needs `--grpc http://host:port --token-file FILE` instead.

use airbloc_proto::v1::{
    DownloadRequest, IngestRecord, StatusRequest, consumer_client::ConsumerClient, node_client::NodeClient,
    provider_client::ProviderClient,
};
use std::{collections::HashMap, error::Error, path::PathBuf};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// `--name value` pairs after the command.
fn flags(args: &[String]) -> HashMap<String, String> {
    args.chunks(2).filter_map(|p| Some((p[0].trim_start_matches("--").to_owned(), p.get(1)?.clone()))).collect()
}

fn id(text: &str) -> Result<Vec<u8>> {
    let hex = text.trim_start_matches("0x");
    if hex.len() != 64 {
        return Err(format!("{text} is not a 32-byte 0x id").into());
    }
    (0..64).step_by(2).map(|i| Ok(u8::from_str_radix(&hex[i..i + 2], 16)?)).collect()
}

/// The node's endpoint and token, from its data dir or from flags.
fn endpoint(flags: &HashMap<String, String>) -> Result<(String, String)> {
    let (url, token_file) = match flags.get("datadir") {
        Some(dir) => {
            // node.json: {"grpc_addr": "127.0.0.1:9640", "token_file": "…/api.token", …}
            let runtime: serde_json::Value =
                serde_json::from_slice(&std::fs::read(PathBuf::from(dir).join("node.json"))?)?;
            let field = |name: &str| runtime[name].as_str().map(str::to_owned).ok_or(format!("no {name} in node.json"));
            (format!("http://{}", field("grpc_addr")?), field("token_file")?)
        }
        None => (
            flags.get("grpc").cloned().ok_or("give --datadir, or --grpc and --token-file")?,
            flags.get("token-file").cloned().ok_or("give --token-file")?,
        ),
    };
    Ok((url, std::fs::read_to_string(token_file)?.trim().to_owned()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        return Err("usage: client status|ingest|download --datadir DIR …".into());
    };
    let flags = flags(rest);
    let (url, token) = endpoint(&flags)?;
    let channel = tonic::transport::Endpoint::from_shared(url)?.connect().await?;
    let auth = airbloc_proto::bearer(&token)?;

    match command.as_str() {
        "status" => {
            let status = NodeClient::with_interceptor(channel, auth).status(StatusRequest {}).await?.into_inner();
            println!(
                "{} ({}) on chain {:?}, block {}",
                status.address, status.peer_id, status.chain_id, status.indexed_block
            );
        }
        "ingest" => {
            let (app, data_type, user) = (id(&flags["app"])?, id(&flags["data-type"])?, id(&flags["user"])?);
            let count: u64 = flags.get("count").map_or(Ok(10), |c| c.parse())?;
            // --payload '{"steps":1,"date":"2026-01-01"}' to match the data type's schema.
            let payload = flags.get("payload").cloned();
            // A client stream: records are sent as they are produced; the summary comes at the end.
            let records = (0..count).map(move |i| IngestRecord {
                app_id: app.clone(),
                data_type_id: data_type.clone(),
                user_id: user.clone(),
                collected_at_ms: 1_767_225_600_000 + i,
                payload_json: payload.clone().unwrap_or_else(|| format!(r#"{{"steps":{i}}}"#)),
                ..Default::default()
            });
            let mut provider = ProviderClient::with_interceptor(channel, auth);
            let summary = provider.ingest(tokio_stream::iter(records)).await?.into_inner();
            println!(
                "{} accepted, {} duplicates, {} rejected",
                summary.accepted,
                summary.duplicates,
                summary.rejected.len()
            );
            for r in summary.rejected.iter().take(5) {
                println!("  record {}: {}", r.index, r.message);
            }
        }
        "download" => {
            let request = DownloadRequest {
                order_id: id(&flags["order"])?,
                bundle_id: id(&flags["bundle"])?,
                output_path: std::path::absolute(&flags["out"])?.display().to_string(),
            };
            let mut progress = ConsumerClient::with_interceptor(channel, auth).download(request).await?.into_inner();
            // A server stream: progress messages, the last one with done = true.
            while let Some(p) = progress.message().await? {
                if p.done {
                    eprintln!();
                    println!("{} records verified and decrypted to {}", p.records, p.output_path);
                } else {
                    eprint!("\r{} / {} bytes", p.bytes, p.total);
                }
            }
        }
        other => return Err(format!("unknown command {other}: status, ingest or download").into()),
    }
    Ok(())
}
