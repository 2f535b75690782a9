//! Bearer-token authentication for the gRPC API, in the manner of bitcoind's cookie file.
//!
//! At first start the node writes a random 256-bit token (hex) to the token file (0600).
//! Clients send `authorization: Bearer <token>`; [`TokenAuth`] checks it in constant time
//! on every service but health.

use std::{fmt, fs, io, io::Write, path::Path, sync::Arc};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, service::Interceptor};
use zeroize::Zeroizing;

/// The API bearer token.
#[derive(Clone)]
pub struct ApiToken(Arc<Zeroizing<String>>);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// Reads the token file, or creates it (0600) with a fresh random token when missing.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim();
                if token.is_empty() || token.chars().any(|c| !c.is_ascii_graphic()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "token file {} is empty or holds non-printable characters — delete it to get a new token",
                            path.display()
                        ),
                    ));
                }
                Ok(Self(Arc::new(Zeroizing::new(token.to_owned()))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
                let token = Zeroizing::new(hex::encode(bytes.as_ref()));
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                file.write_all(token.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()?;
                Ok(Self(Arc::new(token)))
            }
            Err(e) => Err(e),
        }
    }

    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// Interceptor rejecting calls without the right bearer token (UNAUTHENTICATED).
#[derive(Clone, Debug)]
pub struct TokenAuth {
    token: ApiToken,
}

impl TokenAuth {
    pub fn new(token: ApiToken) -> Self {
        Self { token }
    }
}

impl Interceptor for TokenAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get(airbloc_proto::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(token) if self.token.matches(token.trim().as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong bearer token — use the token in the node's api.token file")),
            None => Err(Status::unauthenticated(
                "missing bearer token — send `authorization: Bearer <token>` with the token from the node's api.token file",
            )),
        }
    }
}
