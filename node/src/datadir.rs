//! The data directory and its lock.
//!
//! A node owns its data dir exclusively: [`DataDir::open`] takes an OS file lock on
//! `<datadir>/LOCK` (released by the OS when the process dies, even on `kill -9`) and writes
//! its pid into it, so a second node on the same directory fails fast with a clear message.
//! The directory also holds `node.json`, the running node's endpoints, for tools and tests.

use serde::{Deserialize, Serialize};
use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, Read, Seek, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// File name of the lock.
pub const LOCK_FILE: &str = "LOCK";
/// File name of the runtime info of a running node.
pub const RUNTIME_FILE: &str = "node.json";

/// Errors opening a data dir.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "data dir {path} is in use by another airblocd{pid} — stop that node or choose another data dir with --datadir"
    )]
    Locked { path: PathBuf, pid: String },
    #[error("cannot use data dir {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// An exclusively locked data directory. The lock is held until this value drops.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates (0700) and locks the directory.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        let io_err = |source| DataDirError::Io { path: root.to_path_buf(), source };
        crate::keys::create_private_dir(root).map_err(io_err)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join(LOCK_FILE))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let pid = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                return Err(DataDirError::Locked { path: root.to_path_buf(), pid });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        lock.set_len(0).map_err(io_err)?;
        lock.rewind().map_err(io_err)?;
        write!(lock, "{}", std::process::id()).map_err(io_err)?;
        lock.sync_all().map_err(io_err)?;
        Ok(Self { root: root.to_path_buf(), _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Publishes the running node's endpoints to `node.json` (atomically: write + rename).
    pub fn write_runtime(&self, info: &RuntimeInfo) -> io::Result<()> {
        let tmp = self.root.join(format!("{RUNTIME_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(info).map_err(io::Error::other)?)?;
        fs::rename(tmp, self.root.join(RUNTIME_FILE))
    }

    /// Removes `node.json` at a clean stop.
    pub fn clear_runtime(&self) {
        let _ = fs::remove_file(self.root.join(RUNTIME_FILE));
    }
}

/// What `node.json` holds: how to reach the running node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub pid: u32,
    pub version: String,
    pub address: String,
    pub peer_id: String,
    /// Bound gRPC address (the real port when the config asked for port 0).
    pub grpc_addr: SocketAddr,
    /// Bound metrics address, when metrics are on.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// libp2p addresses with `/p2p/<PeerId>`, ready to dial.
    #[serde(default)]
    pub p2p_addrs: Vec<String>,
    /// Bearer token file for the gRPC API.
    pub token_file: PathBuf,
}

impl RuntimeInfo {
    /// Reads `<datadir>/node.json`.
    pub fn read(datadir: &Path) -> io::Result<Self> {
        let bytes = fs::read(datadir.join(RUNTIME_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
