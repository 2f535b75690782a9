//! `airbloc offer …`, `airbloc order …` and `airbloc download`: selling through a provider
//! node, buying and fetching through a consumer node.

use crate::amount;
use crate::{
    Failure, client,
    client::{Connection, hex_id, output, parse_id, status_failure},
    exit,
};
use airbloc_proto::v1::{
    CreateOfferRequest, DownloadRequest, GetOrderRequest, ListOffersRequest, OrderAction, OrderInfo, PlaceOrderRequest,
    consumer_client::ConsumerClient, provider_client::ProviderClient, registry_client::RegistryClient,
};
use alloy::primitives::{Address, U256};
use clap::Subcommand;
use std::{io::IsTerminal, path::PathBuf};

/// Seconds from `90`, `90s`, `15m`, `2h`, `7d`.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 2h, 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` is not a duration like 90s, 15m, 2h, 7d")),
    };
    Ok(n * scale)
}

#[derive(Debug, Subcommand)]
pub(crate) enum OfferCommand {
    /// Offer bundles on the exchange (waits until mined).
    ///
    /// Example: airbloc offer create --bundle 0x… --price 0.01eth --datadir testnet/state/provider-1
    Create {
        /// Bundle id (repeat for several).
        #[arg(long = "bundle", required = true)]
        bundles: Vec<String>,
        /// Price with a unit (0.01eth, 5gwei, 100wei); with --token, in whole 18-decimal tokens.
        #[arg(long, required_unless_present = "free")]
        price: Option<String>,
        /// Offer at no charge (a zero price is refused without this flag).
        #[arg(long, conflicts_with = "price")]
        free: bool,
        /// Payment token (ERC-20 address); ETH when absent.
        #[arg(long)]
        token: Option<Address>,
        /// Only this consumer may order.
        #[arg(long)]
        consumer: Option<Address>,
        /// Time the provider has to deliver after an order.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        delivery_window: u64,
        /// Time the consumer has to dispute after delivery.
        #[arg(long, default_value = "1d", value_parser = parse_duration)]
        dispute_window: u64,
        /// How long the offer takes orders.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        expires_in: u64,
        #[command(flatten)]
        conn: Connection,
    },
    /// Open offers the node has indexed.
    List {
        /// Only this provider's.
        #[arg(long)]
        provider: Option<Address>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrderCommand {
    /// Order an offer: the price goes into escrow (waits until mined).
    ///
    /// Example: airbloc order place 0xOFFER… --datadir testnet/state/consumer-1
    Place {
        offer: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// An order's state and whether its key has arrived.
    Status {
        order: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Release the payment to the provider.
    Settle {
        order: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Take the payment back after a missed delivery window.
    Refund {
        order: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Dispute a delivery whose data does not match the chain (full refund), with the
    /// provider's signed statement of what it served as evidence.
    Dispute {
        order: String,
        #[command(flatten)]
        conn: Connection,
    },
}

fn order_json(o: &OrderInfo) -> serde_json::Value {
    serde_json::json!({
        "order_id": hex_id(&o.order_id), "offer_id": hex_id(&o.offer_id), "status": o.status,
        "amount": o.amount_wei, "bundle_ids": o.bundle_ids.iter().map(|b| hex_id(b)).collect::<Vec<_>>(),
        "key_received": o.key_received, "deliver_by": o.deliver_by, "tx_id": o.tx_id,
    })
}

fn print_order(json: bool, o: &OrderInfo) {
    output(json, order_json(o), || {
        println!("order      {}", hex_id(&o.order_id));
        println!("status     {}{}", o.status, if o.key_received { " (key received)" } else { "" });
        match o.amount_wei.parse::<U256>() {
            Ok(wei) => println!("amount     {}", amount::format_eth(wei)),
            Err(_) => println!("amount     {} wei", o.amount_wei),
        }
        for b in &o.bundle_ids {
            println!("bundle     {}", hex_id(b));
        }
    });
}

pub(crate) async fn run_offer(cmd: OfferCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        OfferCommand::Create {
            bundles,
            price,
            free,
            token,
            consumer,
            delivery_window,
            dispute_window,
            expires_in,
            conn,
        } => {
            let bundle_ids = bundles.iter().map(|b| parse_id(b, "bundle id")).collect::<Result<Vec<_>, _>>()?;
            let price = match (&price, token) {
                (None, _) => U256::ZERO,
                (Some(text), None) => amount::parse_eth(text)?,
                (Some(text), Some(_)) => amount::parse_token(text, 18, "")?,
            };
            if price.is_zero() && !free {
                return Err(Failure::new(
                    exit::USAGE,
                    "a zero price gives the data away; pass --free instead of --price to mean it",
                ));
            }
            let request = CreateOfferRequest {
                bundle_ids,
                price_wei: price.to_string(),
                consumer: consumer.map(|c| c.to_string()).unwrap_or_default(),
                delivery_window_secs: delivery_window,
                dispute_window_secs: dispute_window,
                expires_in_secs: expires_in,
                token: token.map(|t| t.to_string()).unwrap_or_default(),
            };
            let mut provider = client!(conn, ProviderClient);
            let offer = provider.create_offer(request).await.map_err(status_failure)?.into_inner();
            output(json, serde_json::json!({ "offer_id": hex_id(&offer.offer_id), "tx_id": offer.tx_id }), || {
                println!("offer {}", hex_id(&offer.offer_id))
            });
        }
        OfferCommand::List { provider, conn } => {
            let mut registry = client!(conn, RegistryClient);
            let request = ListOffersRequest { provider: provider.map(|p| p.to_string()).unwrap_or_default() };
            let offers = registry.list_offers(request).await.map_err(status_failure)?.into_inner().offers;
            let rows: Vec<_> = offers
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "offer_id": hex_id(&o.offer_id), "provider": o.provider,
                        "bundle_ids": o.bundle_ids.iter().map(|b| hex_id(b)).collect::<Vec<_>>(),
                        "token": o.token, "price": o.price, "consumer": o.consumer,
                        "expires_at": o.expires_at, "delivery_window_secs": o.delivery_window_secs,
                    })
                })
                .collect();
            output(json, serde_json::json!({ "offers": rows }), || {
                if offers.is_empty() {
                    println!("no open offers");
                }
                for o in &offers {
                    let price = match (o.price.parse::<U256>(), o.token.is_empty()) {
                        (Ok(wei), true) => amount::format_eth(wei),
                        (Ok(units), false) => format!("{} of token {}", amount::format_units(units, 18), o.token),
                        (Err(_), _) => o.price.clone(),
                    };
                    println!("{}  {price}  {} bundle(s) from {}", hex_id(&o.offer_id), o.bundle_ids.len(), o.provider);
                }
            });
        }
    }
    Ok(())
}

pub(crate) async fn run_order(cmd: OrderCommand, json: bool) -> Result<(), Failure> {
    let (order, conn) = match &cmd {
        OrderCommand::Place { offer, conn } => (parse_id(offer, "offer id")?, conn),
        OrderCommand::Status { order, conn }
        | OrderCommand::Settle { order, conn }
        | OrderCommand::Refund { order, conn }
        | OrderCommand::Dispute { order, conn } => (parse_id(order, "order id")?, conn),
    };
    let mut consumer = client!(conn, ConsumerClient);
    let info = match cmd {
        OrderCommand::Place { .. } => consumer.place_order(PlaceOrderRequest { offer_id: order }).await,
        OrderCommand::Status { .. } => consumer.get_order(GetOrderRequest { order_id: order }).await,
        OrderCommand::Settle { .. } => consumer.settle(OrderAction { order_id: order }).await,
        OrderCommand::Refund { .. } => consumer.refund(OrderAction { order_id: order }).await,
        OrderCommand::Dispute { .. } => consumer.dispute(OrderAction { order_id: order }).await,
    }
    .map_err(status_failure)?
    .into_inner();
    print_order(json, &info);
    Ok(())
}

/// `airbloc download`.
#[derive(Debug, clap::Args)]
pub(crate) struct DownloadArgs {
    /// The order.
    order: String,
    /// Bundle of the order (default: its only bundle).
    #[arg(long)]
    bundle: Option<String>,
    /// Where the decrypted, verified records go (NDJSON).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    conn: Connection,
}

pub(crate) async fn run_download(args: DownloadArgs, json: bool) -> Result<(), Failure> {
    let order_id = parse_id(&args.order, "order id")?;
    let mut consumer = client!(args.conn, ConsumerClient);
    let bundle_id = match &args.bundle {
        Some(b) => parse_id(b, "bundle id")?,
        None => {
            let order = consumer
                .get_order(GetOrderRequest { order_id: order_id.clone() })
                .await
                .map_err(status_failure)?
                .into_inner();
            match order.bundle_ids.as_slice() {
                [only] => only.clone(),
                _ => return Err(Failure::new(exit::USAGE, "the order covers several bundles; name one with --bundle")),
            }
        }
    };
    let out = std::path::absolute(&args.out)
        .map_err(|e| Failure::new(exit::USAGE, format!("bad output path {}: {e}", args.out.display())))?;
    let mut progress = consumer
        .download(DownloadRequest { order_id, bundle_id: bundle_id.clone(), output_path: out.display().to_string() })
        .await
        .map_err(status_failure)?
        .into_inner();
    let show = !json && std::io::stderr().is_terminal();
    let mut last = None;
    while let Some(message) = progress.message().await.map_err(status_failure)? {
        if show && !message.done {
            let pct = 100 * message.bytes / message.total.max(1);
            eprint!("\r{} / {} bytes ({pct}%)   ", message.bytes, message.total);
        }
        last = Some(message);
    }
    if show {
        eprintln!();
    }
    let done =
        last.filter(|m| m.done).ok_or_else(|| Failure::new(exit::FAILED, "the download ended without finishing"))?;
    output(
        json,
        serde_json::json!({ "bundle_id": hex_id(&bundle_id), "records": done.records, "bytes": done.total, "out": done.output_path }),
        || println!("{} records verified against the chain and decrypted to {}", done.records, done.output_path),
    );
    Ok(())
}
