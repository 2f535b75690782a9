//! `deployment.json`: which chain, and where each airbloc contract lives.
//!
//! ```json
//! { "chainId": 31337,
//!   "contracts": { "NodeRegistry": { "address": "0x…", "block": 3 }, … } }
//! ```

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, io, path::Path};

/// Every contract a full deployment holds (TestToken only on local networks).
pub const CONTRACTS: &[&str] = &[
    "ControllerRegistry",
    "NodeRegistry",
    "Users",
    "AppRegistry",
    "DataTypeRegistry",
    "Consents",
    "DataRegistry",
    "Exchange",
];

/// Where one contract lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub address: Address,
    /// Block of the deployment transaction; the indexer starts here.
    pub block: u64,
}

/// The contents of `deployment.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    pub chain_id: u64,
    pub contracts: BTreeMap<String, Deployed>,
}

/// Errors reading a deployment file.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error(
        "cannot read deployment file {path}: {source} — deploy with `airbloc admin deploy` or fix --chain.deployment"
    )]
    Read { path: String, source: io::Error },
    #[error("deployment file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
    #[error("deployment has no {0} contract — redeploy with a current `airbloc admin deploy`")]
    Missing(&'static str),
}

impl Deployment {
    /// Reads and checks a deployment file: every contract of [`CONTRACTS`] must be present.
    pub fn load(path: &Path) -> Result<Self, DeploymentError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| DeploymentError::Read { path: shown.clone(), source })?;
        let deployment: Self = serde_json::from_slice(&bytes)
            .map_err(|e| DeploymentError::Invalid { path: shown.clone(), message: e.to_string() })?;
        for name in CONTRACTS {
            deployment.get(name)?;
        }
        Ok(deployment)
    }

    /// Writes the file atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).map_err(io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    /// Where contract `name` lives.
    pub fn get(&self, name: &'static str) -> Result<Deployed, DeploymentError> {
        self.contracts.get(name).copied().ok_or(DeploymentError::Missing(name))
    }

    /// Address of contract `name`.
    pub fn address(&self, name: &'static str) -> Result<Address, DeploymentError> {
        self.get(name).map(|d| d.address)
    }

    /// The earliest deployment block (where log indexing starts).
    pub fn first_block(&self) -> u64 {
        self.contracts.values().map(|d| d.block).min().unwrap_or(0)
    }
}
