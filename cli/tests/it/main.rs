//! Integration tests of the `airbloc` binary against a real anvil and a real airblocd.
#![allow(clippy::unwrap_used)] // a test stops loudly on any failure
#![allow(unreachable_pub)]

mod admin;
mod amounts;
mod chain_admin;
mod node;
mod story;

use serde::Deserialize;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The `airbloc` binary under test.
pub fn airbloc() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airbloc"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AIRBLOC_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The `airblocd` binary built beside `airbloc` in the same target directory.
///
/// The CLI does not depend on the node crate, so `cargo test -p airbloc-cli` alone does not
/// build it; a workspace build does.
pub fn airblocd() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_airbloc")).with_file_name("airblocd");
    assert!(
        path.is_file(),
        "{} is missing — these tests start a real node: build it into the same target directory first \
         (`cargo build --workspace`, or `cargo build -p airbloc-node --bin airblocd`)",
        path.display()
    );
    path
}

/// The parts of a running node's `<datadir>/node.json` the tests read.
#[derive(Debug, Deserialize)]
pub struct RuntimeInfo {
    pub pid: u32,
    pub address: String,
    pub peer_id: String,
    #[serde(default)]
    pub p2p_addrs: Vec<String>,
}

impl RuntimeInfo {
    /// Reads `<datadir>/node.json`, which airblocd writes once it serves.
    pub fn read(datadir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(datadir.join("node.json"))?;
        serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
