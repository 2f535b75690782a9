//! Configuration layering, unknown keys and --dump-config, through the real binary.

use super::support::run;
use airbloc_node::config::{Config, Role};
use std::path::Path;

fn dump(args: &[&str], env: &[(&str, &str)]) -> Config {
    let out = run(&[args, &["--dump-config"]].concat(), env);
    assert!(out.status.success(), "dump-config failed: {}", String::from_utf8_lossy(&out.stderr));
    Config::from_toml(&String::from_utf8(out.stdout).unwrap(), Path::new("<stdout>")).expect("dump is valid config")
}

#[test]
fn defaults_when_nothing_is_given() {
    assert_eq!(dump(&[], &[]), Config::default());
}

#[test]
fn precedence_is_defaults_then_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airbloc.toml");
    std::fs::write(
        &file,
        r#"
roles = ["provider", "keeper"]
datadir = "/from/file"

[chain]
rpc_url = "http://file:8545"
confirmations = 3

[p2p]
mdns = true
"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();

    // File over defaults.
    let c = dump(&["--config", f], &[]);
    assert_eq!(c.roles, vec![Role::Provider, Role::Keeper]);
    assert_eq!(c.datadir, Path::new("/from/file"));
    assert_eq!(c.chain.rpc_url, "http://file:8545");
    assert_eq!(c.chain.confirmations, 3);
    assert!(c.p2p.mdns);
    assert_eq!(c.api, Config::default().api, "untouched sections keep their defaults");

    // Environment over file.
    let env = [("AIRBLOC_CHAIN_RPC_URL", "ws://env:8546"), ("AIRBLOC_ROLES", "consumer"), ("AIRBLOC_CONFIG", f)];
    let c = dump(&[], &env);
    assert_eq!(c.chain.rpc_url, "ws://env:8546");
    assert_eq!(c.roles, vec![Role::Consumer]);
    assert_eq!(c.chain.confirmations, 3, "file still applies where env is silent");

    // Flags over environment.
    let c = dump(&["--chain.rpc-url", "https://flag", "--roles", "bootnode,consumer", "--log.json"], &env);
    assert_eq!(c.chain.rpc_url, "https://flag");
    assert_eq!(c.roles, vec![Role::Bootnode, Role::Consumer]);
    assert!(c.log.json);
    assert_eq!(c.datadir, Path::new("/from/file"));
}

#[test]
fn unknown_key_in_file_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airbloc.toml");
    std::fs::write(&file, "[chain]\nrpc_url = \"http://x\"\nconfirmatoins = 2\n").unwrap();
    let out = run(&["--config", file.to_str().unwrap(), "--dump-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("confirmatoins"), "error should name the key: {err}");
    assert!(err.contains(file.to_str().unwrap()), "error should name the file: {err}");
}

#[test]
fn bad_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airbloc.toml");
    std::fs::write(&file, "roles = [\"miner\"]\n").unwrap();
    let out = run(&["--config", file.to_str().unwrap(), "--dump-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("miner"));

    let out = run(&["--chain.rpc-url", "localhost:8545", "--dump-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with http://"));

    let out = run(&["--config", "/nonexistent/airbloc.toml", "--dump-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/airbloc.toml"));
}

#[test]
fn dump_is_a_valid_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = dump(&["--roles", "provider", "--p2p.bootnodes", "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2"], &[]);
    let file = dir.path().join("dumped.toml");
    std::fs::write(&file, first.to_toml()).unwrap();
    assert_eq!(dump(&["--config", file.to_str().unwrap()], &[]), first);
    assert_eq!(first.p2p.bootnodes.len(), 2);
}
