//! Amounts through the binary: bad input is refused with a message naming the cause and nothing
//! reaches the chain; good input is printed with its unit and token symbol; a closed stdout ends quietly.

use super::airbloc;
use airbloc_eth::test_utils::{foundry_tool, spawn_anvil};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    airbloc().args(args).output().expect("airbloc runs")
}

fn refused(args: &[&str], hint: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "airbloc {}: {stderr}", args.join(" "));
    assert!(stderr.contains(hint), "airbloc {}: expected `{hint}` in: {stderr}", args.join(" "));
}

fn nonce(rpc: &str, address: &str) -> String {
    let out = Command::new(foundry_tool("cast")).args(["nonce", address, "--rpc-url", rpc]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn amounts_are_refused_before_the_chain_and_printed_with_their_unit() {
    let anvil = spawn_anvil();
    let rpc = anvil.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("governor.key");
    std::fs::write(&key, hex::encode(anvil.keys()[0].to_bytes())).unwrap();
    let governor_address = anvil.addresses()[0].to_string();
    let to = anvil.addresses()[5].to_string();
    let deployment = dir.path().join("deployment.json");
    let deployed = run(&[
        "--json",
        "admin",
        "deploy",
        "--test-token",
        "--out",
        deployment.to_str().unwrap(),
        "--private-key-file",
        key.to_str().unwrap(),
        "--rpc-url",
        &rpc,
    ]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let before = nonce(&rpc, &governor_address);
    let send = |amount: &str| {
        vec![
            "wallet".to_owned(),
            "send".to_owned(),
            "--to".to_owned(),
            to.clone(),
            format!("--amount={amount}"),
            "--private-key-file".to_owned(),
            key.display().to_string(),
            "--rpc-url".to_owned(),
            rpc.clone(),
        ]
    };
    for (amount, hint) in [
        ("-1eth", "negative"),
        ("-0.5eth", "negative"),
        ("0.0000000000000000001eth", "18 decimal places"),
        ("1.5wei", "0 decimal places"),
        (&format!("{}wei", "9".repeat(80)), "256 bits"),
        ("5 dollars", "use eth, gwei or wei"),
        ("0eth", "zero"),
    ] {
        let args = send(amount);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), hint);
    }
    assert_eq!(nonce(&rpc, &governor_address), before, "nothing was sent");

    // Offers: refused before the node is even asked (no node listens on the port: that would be
    // exit 4, not 1).
    let offer = |price: &[&str]| {
        let mut args =
            vec!["offer", "create", "--bundle", "0x0101010101010101010101010101010101010101010101010101010101010101"];
        args.extend_from_slice(price);
        args.extend_from_slice(&["--grpc", "http://127.0.0.1:9", "--token-file", "/dev/null"]);
        args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    for (price, hint) in [
        (&["--price=-1"][..], "negative"),
        (&["--price=-0.5eth"][..], "negative"),
        (&["--price", "0.0000000000000000001eth"][..], "18 decimal places"),
        (&["--price", "0"][..], "--free"),
        (&["--price", "0.00eth"][..], "--free"),
    ] {
        let args = offer(price);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), hint);
    }

    // Good amounts: sent and printed with the unit.
    let args = send("0.5 eth");
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("sent 0.5 ETH to "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let balance = run(&["wallet", "balance", &to, "--rpc-url", &rpc]);
    assert!(String::from_utf8_lossy(&balance.stdout).trim().ends_with(" ETH"));
    let deployment: Value = serde_json::from_slice(&std::fs::read(&deployment).unwrap()).unwrap();
    let entry = &deployment["contracts"]["TestToken"];
    let token = entry["address"].as_str().or(entry.as_str()).expect("the deployment names TestToken").to_owned();
    let balance = run(&["wallet", "balance", &to, "--token", &token, "--rpc-url", &rpc]);
    assert_eq!(
        String::from_utf8_lossy(&balance.stdout).trim(),
        "0 ABLT",
        "{}",
        String::from_utf8_lossy(&balance.stderr)
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = airbloc()
        .args(["--json", "wallet", "list", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "quiet: {}", String::from_utf8_lossy(&out.stderr));
}
