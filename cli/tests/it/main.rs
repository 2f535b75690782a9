//! Integration tests of the `airbloc` binary against a real anvil and a real airblocd.

#![allow(unreachable_pub)]

mod admin;
mod chain_admin;
mod node;
mod story;

use std::{path::PathBuf, process::Command};

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

/// The `airblocd` binary built beside `airbloc` in the same workspace build.
pub fn airblocd() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_airbloc")).with_file_name("airblocd");
    assert!(path.is_file(), "{} missing — build the workspace (`cargo build --workspace`) first", path.display());
    path
}
