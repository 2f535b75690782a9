//! `airbloc data ingest` and `airbloc bundle …`: records into a provider node, and the bundles
//! they are sealed into.

use crate::{
    Failure, client,
    client::{Connection, hex_id, output, parse_id, status_failure},
    exit,
    registry::registry_id,
};
use airbloc_proto::v1::{
    BundleRef, IngestRecord, ListBundlesRequest, RejectReason, SealBundleRequest, provider_client::ProviderClient,
    registry_client::RegistryClient,
};
use clap::{Subcommand, ValueEnum};
use std::{
    io::{BufRead, IsTerminal},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Ndjson,
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Stream records from a file into a provider node; prints accepted and rejected records.
    ///
    /// NDJSON: one object per line with `user_id` (0x) or `identity`, optional `collected_at_ms`,
    /// and `payload` (the record). CSV: a header naming `user_id` or `identity`, optionally
    /// `collected_at_ms`; every other column is a payload field (numbers and booleans typed).
    ///
    /// Example: airbloc data ingest steps.ndjson --app fitness --data-type daily-steps --datadir testnet/state/provider-1
    Ingest {
        file: PathBuf,
        /// App, by name or 0x id.
        #[arg(long)]
        app: String,
        /// Data type, by name or 0x id.
        #[arg(long)]
        data_type: String,
        /// File format (default: from the extension, else ndjson).
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Bundles the provider node sealed.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// A registered bundle, as the chain has it.
    Show {
        bundle: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Seal the pending records of an app and data type into a bundle (registered, announced).
    ///
    /// Example: airbloc bundle seal --app fitness --data-type daily-steps --datadir testnet/state/provider-1
    Seal {
        #[arg(long)]
        app: String,
        #[arg(long)]
        data_type: String,
        #[command(flatten)]
        conn: Connection,
    },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One NDJSON line as a record. A line that is not a JSON object is sent as is, so the node
/// rejects it with its index and the reason.
fn from_ndjson(line: &str, app: &[u8], data_type: &[u8]) -> IngestRecord {
    let mut record = IngestRecord { app_id: app.to_vec(), data_type_id: data_type.to_vec(), ..Default::default() };
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str::<serde_json::Value>(line) else {
        record.payload_json = line.to_owned();
        return record;
    };
    match fields.remove("user_id").and_then(|v| v.as_str().map(str::to_owned)) {
        Some(user) => record.user_id = parse_id(&user, "user_id").unwrap_or_else(|_| user.into_bytes()),
        None => {
            record.identity = fields.remove("identity").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        }
    }
    record.collected_at_ms = fields.remove("collected_at_ms").and_then(|v| v.as_u64()).unwrap_or_else(now_ms);
    record.payload_json = match fields.remove("payload") {
        Some(payload) => payload.to_string(),
        None => serde_json::Value::Object(fields).to_string(),
    };
    record
}

fn csv_value(text: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v,
        _ => serde_json::Value::String(text.to_owned()),
    }
}

fn from_csv(
    headers: &csv::StringRecord,
    row: Result<csv::StringRecord, csv::Error>,
    app: &[u8],
    data_type: &[u8],
) -> IngestRecord {
    let mut record = IngestRecord { app_id: app.to_vec(), data_type_id: data_type.to_vec(), ..Default::default() };
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            record.payload_json = format!("unreadable CSV row: {e}");
            return record;
        }
    };
    let mut payload = serde_json::Map::new();
    for (name, value) in headers.iter().zip(row.iter()) {
        match name {
            "user_id" => record.user_id = parse_id(value, "user_id").unwrap_or_else(|_| value.as_bytes().to_vec()),
            "identity" => record.identity = value.to_owned(),
            "collected_at_ms" => record.collected_at_ms = value.parse().unwrap_or_else(|_| now_ms()),
            name => {
                payload.insert(name.to_owned(), csv_value(value));
            }
        }
    }
    if record.collected_at_ms == 0 {
        record.collected_at_ms = now_ms();
    }
    record.payload_json = serde_json::Value::Object(payload).to_string();
    record
}

fn reason_name(reason: i32) -> &'static str {
    match RejectReason::try_from(reason) {
        Ok(RejectReason::Malformed) => "malformed",
        Ok(RejectReason::Schema) => "schema",
        Ok(RejectReason::NoConsent) => "no consent",
        Ok(RejectReason::UnknownDataType) => "unknown data type",
        Ok(RejectReason::NotAuthorized) => "not authorized",
        _ => "rejected",
    }
}

async fn ingest(
    file: PathBuf,
    app: String,
    data_type: String,
    format: Option<Format>,
    conn: Connection,
    json: bool,
) -> Result<(), Failure> {
    let app_id = registry_id(&app, "app")?;
    let data_type_id = registry_id(&data_type, "data type")?;
    let format = format.unwrap_or(match file.extension().and_then(|e| e.to_str()) {
        Some("csv") => Format::Csv,
        _ => Format::Ndjson,
    });
    let opened = std::fs::File::open(&file)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", file.display())))?;
    let total_bytes = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let mut provider = client!(conn, ProviderClient);

    // The file is read on a blocking thread and streamed; memory stays flat for any size.
    let (tx, rx) = tokio::sync::mpsc::channel::<IngestRecord>(4096);
    let sent = Arc::new(AtomicU64::new(0));
    let read_bytes = Arc::new(AtomicU64::new(0));
    let reader = {
        let (sent, read_bytes) = (sent.clone(), read_bytes.clone());
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let input = std::io::BufReader::with_capacity(1 << 20, opened);
            let push = |record: IngestRecord, bytes: usize| {
                read_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                sent.fetch_add(1, Ordering::Relaxed);
                tx.blocking_send(record).is_ok()
            };
            match format {
                Format::Ndjson => {
                    for line in input.lines() {
                        let line = line.map_err(|e| e.to_string())?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        if !push(from_ndjson(&line, &app_id, &data_type_id), line.len() + 1) {
                            break;
                        }
                    }
                }
                Format::Csv => {
                    let mut csv = csv::Reader::from_reader(input);
                    let headers = csv.headers().map_err(|e| format!("the CSV header: {e}"))?.clone();
                    if !headers.iter().any(|h| h == "user_id" || h == "identity") {
                        return Err("the CSV header needs a user_id or identity column".into());
                    }
                    for row in csv.records() {
                        let bytes = row.as_ref().map_or(0, |r| r.as_byte_record().as_slice().len() + r.len());
                        if !push(from_csv(&headers, row, &app_id, &data_type_id), bytes) {
                            break;
                        }
                    }
                }
            }
            Ok(())
        })
    };
    let progress = (!json && std::io::stderr().is_terminal()).then(|| {
        let (sent, read_bytes) = (sent.clone(), read_bytes.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let pct = 100 * read_bytes.load(Ordering::Relaxed) / total_bytes.max(1);
                eprint!("\r{} records sent ({pct}%)   ", sent.load(Ordering::Relaxed));
            }
        })
    });
    let summary = provider.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    if let Some(progress) = progress {
        progress.abort();
        eprintln!("\r{} records sent (100%)   ", sent.load(Ordering::Relaxed));
    }
    let read = reader.await.map_err(|e| Failure::new(exit::FAILED, e.to_string()))?;
    let summary = summary.map_err(status_failure)?.into_inner();
    read.map_err(|e| {
        Failure::new(exit::USAGE, format!("{} ({} records were sent and answered first)", e, summary.accepted))
    })?;
    let rejected: Vec<_> = summary
        .rejected
        .iter()
        .map(|r| serde_json::json!({ "index": r.index, "reason": reason_name(r.reason), "message": r.message }))
        .collect();
    output(
        json,
        serde_json::json!({
            "sent": sent.load(Ordering::Relaxed), "accepted": summary.accepted,
            "duplicates": summary.duplicates, "rejected": rejected,
        }),
        || {
            println!(
                "{} sent: {} accepted, {} duplicates, {} rejected",
                sent.load(Ordering::Relaxed),
                summary.accepted,
                summary.duplicates,
                summary.rejected.len()
            );
            let mut by_reason = std::collections::BTreeMap::<&str, u64>::new();
            for r in &summary.rejected {
                *by_reason.entry(reason_name(r.reason)).or_default() += 1;
            }
            for (reason, count) in by_reason {
                println!("  {count} × {reason}");
            }
            for r in summary.rejected.iter().take(10) {
                println!("  record {} ({}): {}", r.index + 1, reason_name(r.reason), r.message);
            }
            if summary.rejected.len() > 10 {
                println!("  … {} more (use --json for all)", summary.rejected.len() - 10);
            }
        },
    );
    Ok(())
}

fn bundle_json(b: &airbloc_proto::v1::Bundle) -> serde_json::Value {
    serde_json::json!({
        "bundle_id": hex_id(&b.bundle_id), "app_id": hex_id(&b.app_id), "data_type_id": hex_id(&b.data_type_id),
        "record_count": b.record_count, "size": b.size, "merkle_root": hex_id(&b.merkle_root),
        "ciphertext_hash": hex_id(&b.ciphertext_hash), "registered_block": b.registered_block,
    })
}

pub(crate) async fn run_data(cmd: DataCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        DataCommand::Ingest { file, app, data_type, format, conn } => {
            ingest(file, app, data_type, format, conn, json).await
        }
    }
}

pub(crate) async fn run_bundle(cmd: BundleCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        BundleCommand::List { conn } => {
            let mut provider = client!(conn, ProviderClient);
            let bundles =
                provider.list_bundles(ListBundlesRequest {}).await.map_err(status_failure)?.into_inner().bundles;
            output(json, serde_json::json!({ "bundles": bundles.iter().map(bundle_json).collect::<Vec<_>>() }), || {
                if bundles.is_empty() {
                    println!("no bundles — seal pending records with `airbloc bundle seal`");
                }
                for b in &bundles {
                    println!(
                        "{}  {:>8} records  {:>12} bytes  block {}",
                        hex_id(&b.bundle_id),
                        b.record_count,
                        b.size,
                        b.registered_block
                    );
                }
            });
        }
        BundleCommand::Show { bundle, conn } => {
            let bundle_id = parse_id(&bundle, "bundle id")?;
            let mut registry = client!(conn, RegistryClient);
            let b = registry.get_bundle(BundleRef { bundle_id }).await.map_err(status_failure)?.into_inner();
            output(
                json,
                serde_json::json!({
                    "bundle_id": hex_id(&b.bundle_id), "app_id": hex_id(&b.app_id), "data_type_id": hex_id(&b.data_type_id),
                    "provider": b.provider, "merkle_root": hex_id(&b.merkle_root), "record_count": b.record_count,
                    "ciphertext_hash": hex_id(&b.ciphertext_hash), "size": b.size, "active": b.active,
                    "registered_block": b.registered_block,
                }),
                || {
                    println!("bundle     {}", hex_id(&b.bundle_id));
                    println!("provider   {}", b.provider);
                    println!("app        {}", hex_id(&b.app_id));
                    println!("data type  {}", hex_id(&b.data_type_id));
                    println!("records    {}", b.record_count);
                    println!("size       {} bytes", b.size);
                    println!("root       {}", hex_id(&b.merkle_root));
                    println!("registered block {}{}", b.registered_block, if b.active { "" } else { " (withdrawn)" });
                },
            );
        }
        BundleCommand::Seal { app, data_type, conn } => {
            let mut provider = client!(conn, ProviderClient);
            let request = SealBundleRequest {
                app_id: registry_id(&app, "app")?,
                data_type_id: registry_id(&data_type, "data type")?,
            };
            let b = provider.seal_bundle(request).await.map_err(status_failure)?.into_inner();
            output(json, bundle_json(&b), || {
                println!(
                    "sealed bundle {}: {} records, {} bytes, registered in block {}",
                    hex_id(&b.bundle_id),
                    b.record_count,
                    b.size,
                    b.registered_block
                )
            });
        }
    }
    Ok(())
}
