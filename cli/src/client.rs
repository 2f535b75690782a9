//! Reaching a node over gRPC, and the small conversions every command shares: ids, amounts,
//! gRPC errors to exit codes, JSON or table output.

use crate::{Failure, exit};
use airbloc_proto::BearerInterceptor;
use clap::Args;
use std::path::PathBuf;
use tonic::transport::Channel;

/// How to reach a node: its data dir (endpoint and token are read from `node.json` and
/// `api.token` there), or an explicit endpoint and token file.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// Data dir of a local node.
    #[arg(long, env = "AIRBLOC_DATADIR", value_name = "DIR", help_heading = "Node")]
    pub datadir: Option<PathBuf>,
    /// gRPC endpoint, e.g. http://127.0.0.1:9640 (default: from the data dir).
    #[arg(long, env = "AIRBLOC_GRPC", value_name = "URL", help_heading = "Node", value_parser = grpc_url)]
    pub grpc: Option<String>,
    /// File holding the node's bearer token (default: from the data dir).
    #[arg(long, env = "AIRBLOC_TOKEN_FILE", value_name = "FILE", help_heading = "Node")]
    pub token_file: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct RuntimeInfo {
    grpc_addr: String,
    token_file: PathBuf,
}

impl Connection {
    /// A connected channel and the node's token.
    pub(crate) async fn channel(&self) -> Result<(Channel, String), Failure> {
        let runtime = match &self.datadir {
            Some(dir) => {
                let path = dir.join("node.json");
                let bytes = std::fs::read(&path).map_err(|e| {
                    Failure::new(
                        exit::NODE_UNREACHABLE,
                        format!(
                            "no running node at {} ({e}) — is airblocd running with --datadir {}?",
                            path.display(),
                            dir.display()
                        ),
                    )
                })?;
                Some(
                    serde_json::from_slice::<RuntimeInfo>(&bytes)
                        .map_err(|e| Failure::new(exit::FAILED, format!("{} is not valid: {e}", path.display())))?,
                )
            }
            None => None,
        };
        let endpoint = match (&self.grpc, &runtime) {
            (Some(url), _) => url.clone(),
            (None, Some(rt)) => format!("http://{}", rt.grpc_addr),
            (None, None) => {
                return Err(Failure::new(exit::USAGE, "give --datadir of a local node, or --grpc and --token-file"));
            }
        };
        let token_file = match (&self.token_file, &runtime) {
            (Some(f), _) => f.clone(),
            (None, Some(rt)) => rt.token_file.clone(),
            (None, None) => return Err(Failure::new(exit::USAGE, "give --token-file with the node's api.token")),
        };
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| Failure::new(exit::USAGE, format!("cannot read token file {}: {e}", token_file.display())))?;
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| Failure::new(exit::USAGE, format!("bad endpoint {endpoint}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                Failure::new(
                    exit::NODE_UNREACHABLE,
                    format!("cannot reach node at {endpoint}: {e} — is airblocd running?"),
                )
            })?;
        Ok((channel, token.trim().to_owned()))
    }

    /// A connected channel and the interceptor that adds the node's token.
    pub(crate) async fn authed(&self) -> Result<(Channel, BearerInterceptor), Failure> {
        let (channel, token) = self.channel().await?;
        let auth = airbloc_proto::bearer(&token)
            .map_err(|e| Failure::new(exit::USAGE, format!("the token is not a valid header value: {e}")))?;
        Ok((channel, auth))
    }
}

/// Builds a typed client for a node: `client!(conn, ProviderClient)`.
#[macro_export]
macro_rules! client {
    ($conn:expr, $client:ident) => {{
        let (channel, auth) = $conn.authed().await?;
        $client::with_interceptor(channel, auth)
    }};
}

/// A gRPC endpoint; `127.0.0.1:9645` as `node.json` writes it means `http://127.0.0.1:9645`.
fn grpc_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the gRPC endpoint is empty; give HOST:PORT or http://HOST:PORT".to_owned());
    }
    Ok(if text.contains("://") { text.to_owned() } else { format!("http://{text}") })
}

/// A gRPC error as a failure with its exit code.
pub(crate) fn status_failure(status: tonic::Status) -> Failure {
    let code = match status.code() {
        tonic::Code::NotFound => exit::NOT_FOUND,
        tonic::Code::Unavailable => exit::NODE_UNREACHABLE,
        tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => exit::USAGE,
        tonic::Code::PermissionDenied => exit::REFUSED,
        tonic::Code::Aborted => exit::CHAIN,
        tonic::Code::DataLoss => exit::MISMATCH,
        tonic::Code::Unimplemented => {
            let detail = match status.message() {
                "" => String::new(),
                message => format!(" ({message})"),
            };
            return Failure::new(
                exit::USAGE,
                format!(
                    "this node does not run the role this command needs (provider, consumer or keeper){detail} — \
                     point --datadir or --grpc at a node that runs it"
                ),
            );
        }
        _ => exit::FAILED,
    };
    Failure::new(code, status.message().to_owned())
}

/// A 32-byte id given as 0x-prefixed hex.
pub(crate) fn parse_id(text: &str, what: &str) -> Result<Vec<u8>, Failure> {
    let hex_text = text.trim().strip_prefix("0x").unwrap_or(text.trim());
    match hex::decode(hex_text) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(Failure::new(
            exit::USAGE,
            format!("{what} `{text}` is not a 32-byte id (0x followed by 64 hex digits)"),
        )),
    }
}

/// An id as 0x-prefixed hex.
pub(crate) fn hex_id(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Prints `value` as JSON with `--json`, else runs `human`.
pub(crate) fn output(json: bool, value: serde_json::Value, human: impl FnOnce()) {
    if json {
        println!("{value:#}");
    } else {
        human();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_grpc_endpoint_without_scheme_is_http() {
        assert_eq!(super::grpc_url("127.0.0.1:9645").unwrap(), "http://127.0.0.1:9645");
        assert_eq!(super::grpc_url("https://node.example:443").unwrap(), "https://node.example:443");
        assert!(super::grpc_url(" ").is_err());
    }
}
