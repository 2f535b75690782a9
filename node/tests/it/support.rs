//! Running `airblocd` as a child process and talking to it.

use airbloc_node::datadir::RuntimeInfo;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};
use tonic::transport::Channel;

/// Password the test nodes' keystores use.
pub const PASSWORD: &str = "correct horse battery staple";

/// Path of the `airblocd` binary under test.
pub fn airblocd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airblocd"))
}

/// `airblocd` with a clean environment of AIRBLOC_* variables.
pub fn command() -> Command {
    let mut cmd = Command::new(airblocd());
    for (key, _) in std::env::vars() {
        if key.starts_with("AIRBLOC_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `airblocd` to completion (for quick commands like `--dump-config`).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("airblocd runs")
}

/// A running `airblocd`; killed when dropped.
pub struct NodeProcess {
    child: Child,
    pub runtime: RuntimeInfo,
}

impl NodeProcess {
    /// Starts a node on `datadir` with a free gRPC port and waits until it serves.
    pub fn start(datadir: &Path, rpc_url: &str, extra: &[&str]) -> Self {
        let mut child = spawn_logged(datadir, rpc_url, extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(runtime) = RuntimeInfo::read(datadir) {
                if runtime.pid == child.id() {
                    return Self { child, runtime };
                }
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                let stderr = std::fs::read_to_string(log_file(datadir)).unwrap_or_default();
                panic!("airblocd exited early with {status}: {stderr}");
            }
            assert!(Instant::now() < deadline, "airblocd did not publish node.json within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The API token the node wrote.
    pub fn token(&self) -> String {
        std::fs::read_to_string(&self.runtime.token_file).expect("token file").trim().to_owned()
    }

    /// A gRPC channel to the node.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.runtime.grpc_addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to airblocd")
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "airblocd did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a spawned node's log goes: next to its data dir (a pipe nobody reads would fill up and
/// stall the node).
pub fn log_file(datadir: &Path) -> PathBuf {
    datadir.with_extension("log")
}

/// Spawns `airblocd` without waiting for it; its stderr is a pipe (for short-lived runs).
pub fn spawn(datadir: &Path, rpc_url: &str, extra: &[&str]) -> Child {
    spawn_with(datadir, rpc_url, extra, Stdio::piped())
}

/// Spawns a long-running `airblocd` logging to [`log_file`].
pub fn spawn_logged(datadir: &Path, rpc_url: &str, extra: &[&str]) -> Child {
    if let Some(parent) = datadir.parent() {
        std::fs::create_dir_all(parent).expect("create the data dir's parent");
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file(datadir)).expect("open the node log");
    spawn_with(datadir, rpc_url, extra, log.into())
}

fn spawn_with(datadir: &Path, rpc_url: &str, extra: &[&str], stderr: Stdio) -> Child {
    command()
        .arg("--datadir")
        .arg(datadir)
        .args(["--api.grpc-addr", "127.0.0.1:0", "--chain.rpc-url", rpc_url, "--log.filter"])
        // AIRBLOC_TEST_LOG raises a test node's log level, e.g. `info,p2p=debug`.
        .arg(std::env::var("AIRBLOC_TEST_LOG").unwrap_or_else(|_| "info".into()))
        .args(["--p2p.listen", "/ip4/127.0.0.1/tcp/0"])
        .args(extra)
        .env("AIRBLOC_KEYSTORE_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn airblocd")
}
