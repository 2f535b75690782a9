//! The whole story through the `airbloc` binary against real `airblocd` processes on a real
//! anvil: wallets (cast-compatible), deploy, controllers, nodes, apps, data types, users through
//! the keeper and with a wallet (EIP-712 consents), ingest from NDJSON and CSV, bundles, offers,
//! orders, download, settle, export — every command's `--json` output parsed, and bad input
//! answered with the documented exit code.

use super::{RuntimeInfo, airbloc, airblocd};
use airbloc_eth::test_utils::{foundry_tool, spawn_anvil_with};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const PASSWORD: &str = "story-password";

/// Runs `airbloc` with `args`.
fn run(args: &[&str]) -> Output {
    airbloc().args(args).output().expect("airbloc runs")
}

/// Runs `airbloc --json …`, asserts success and parses stdout.
fn json(args: &[&str]) -> Value {
    let out = airbloc().arg("--json").args(args).output().expect("airbloc runs");
    assert!(
        out.status.success(),
        "airbloc {} failed ({:?}): {}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("airbloc {}: not JSON ({e}): {}", args.join(" "), String::from_utf8_lossy(&out.stdout))
    })
}

/// Retries `json(args)` until `done` holds (another node may not have indexed the block yet).
fn json_until(args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = airbloc().arg("--json").args(args).output().expect("airbloc runs");
        if out.status.success() {
            let value: Value = serde_json::from_slice(&out.stdout).unwrap();
            if done(&value) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "airbloc {} never got there: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts a failure with `code` and a message containing `hint`.
fn fails(args: &[&str], code: i32, hint: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "airbloc {}: {stderr}", args.join(" "));
    assert!(stderr.contains(hint), "airbloc {}: expected `{hint}` in: {stderr}", args.join(" "));
}

struct Node {
    child: Child,
    dir: PathBuf,
    address: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(dir: &Path, rpc: &str, deployment: &Path, role: &str, extra: &[&str]) -> Node {
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    let child = Command::new(airblocd())
        .arg("--datadir")
        .arg(dir)
        .args(["--roles", role, "--api.grpc-addr", "127.0.0.1:0", "--chain.rpc-url", rpc])
        .args(["--chain.confirmations", "0", "--p2p.listen", "/ip4/127.0.0.1/tcp/0", "--chain.deployment"])
        .arg(deployment)
        .args(extra)
        .env("AIRBLOC_KEYSTORE_PASSWORD", "node-password")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let runtime = loop {
        if let Ok(rt) = RuntimeInfo::read(dir)
            && rt.pid == child.id()
        {
            break rt;
        }
        assert!(Instant::now() < deadline, "{role} node did not start; see {}", dir.with_extension("log").display());
        std::thread::sleep(Duration::from_millis(50));
    };
    Node { child, dir: dir.to_owned(), address: runtime.address }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_whole_story_through_the_cli() {
    let anvil = spawn_anvil_with(&["--block-time", "1"]);
    let rpc = anvil.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(d("governor.key"), hex::encode(anvil.keys()[0].to_bytes())).unwrap();
    std::fs::write(d("pw"), PASSWORD).unwrap();
    std::fs::write(d("wrong-pw"), "not the password").unwrap();
    let (governor_key, pw, deployment_file) = (d("governor.key"), d("pw"), d("deployment.json"));
    let governor = ["--private-key-file", s(&governor_key), "--rpc-url", &rpc];

    // Deploy.
    let deployment =
        json(&[&["admin", "deploy", "--test-token", "--out", s(&deployment_file)][..], &governor[..]].concat());
    assert_eq!(deployment["chainId"], 31337);
    let chain = ["--rpc-url", rpc.as_str(), "--deployment", s(&deployment_file)];

    // Wallets: new, list, address, import (hex from stdin, and a keystore `cast` made), and cast
    // reads ours.
    let keystores = d("keystores");
    let wallet = ["--dir", s(&keystores), "--password-file", s(&pw)];
    let alice = json(&[&["wallet", "new", "--name", "alice"][..], &wallet[..]].concat());
    let alice_address = alice["address"].as_str().unwrap().to_owned();
    let listed = json(&["wallet", "list", "--dir", s(&keystores)]);
    assert_eq!(listed["accounts"][0]["address"].as_str().unwrap().to_lowercase(), alice_address.to_lowercase());
    let alice_keystore = keystores.join("alice.json");
    let address = json(&["wallet", "address", "--keystore", s(&alice_keystore), "--password-file", s(&d("pw"))]);
    assert_eq!(address["address"], alice_address.as_str());
    let cast = Command::new(foundry_tool("cast"))
        .args(["wallet", "address", "--keystore", s(&alice_keystore), "--password", PASSWORD])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&cast.stdout).trim().to_lowercase(),
        alice_address.to_lowercase(),
        "cast reads it"
    );
    let mut import = airbloc()
        .args(["--json", "wallet", "import", "--private-key-file", "-", "--name", "bob"])
        .args(wallet)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(hex::encode(anvil.keys()[7].to_bytes()).as_bytes()).unwrap();
    let imported: Value = serde_json::from_slice(&import.wait_with_output().unwrap().stdout).unwrap();
    let bob_address = imported["address"].as_str().unwrap().to_owned();
    assert_eq!(bob_address.to_lowercase(), anvil.addresses()[7].to_string().to_lowercase());
    let cast_dir = d("cast-keystores");
    std::fs::create_dir_all(&cast_dir).unwrap();
    let made = Command::new(foundry_tool("cast"))
        .args(["wallet", "new", s(&cast_dir), "castkey", "--unsafe-password", PASSWORD])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let cast_file = std::fs::read_dir(&cast_dir).unwrap().next().unwrap().unwrap().path();
    let from_cast =
        json(&[&["wallet", "import", "--keystore", s(&cast_file), "--name", "carol"][..], &wallet[..]].concat());
    assert!(from_cast["address"].as_str().unwrap().starts_with("0x"));
    fails(
        &["wallet", "address", "--keystore", s(&alice_keystore), "--password-file", s(&d("wrong-pw"))],
        1,
        "password",
    );
    fails(&["wallet", "address", "--keystore", s(&d("nope.json")), "--password-file", s(&d("pw"))], 2, "no keystore");

    // Send and balances.
    json(&[&["wallet", "send", "--to", &alice_address, "--amount", "2.5eth"][..], &governor[..]].concat());
    let balance = json(&["wallet", "balance", &alice_address, "--rpc-url", &rpc]);
    assert_eq!(balance["balance"], "2500000000000000000");

    // Nodes: a bootnode, a keeper, a provider that signs users up through it, a consumer.
    let boot = start_node(&d("boot"), &rpc, &deployment_file, "bootnode", &[]);
    let boot_addr = RuntimeInfo::read(&boot.dir).unwrap().p2p_addrs[0].clone();
    let keeper = start_node(&d("keeper"), &rpc, &deployment_file, "keeper", &["--p2p.bootnodes", &boot_addr]);
    let provider = start_node(
        &d("provider"),
        &rpc,
        &deployment_file,
        "provider",
        &["--p2p.bootnodes", &boot_addr, "--provider.keeper", &keeper.address],
    );
    let consumer = start_node(&d("consumer"), &rpc, &deployment_file, "consumer", &["--p2p.bootnodes", &boot_addr]);
    for node in [&keeper, &provider, &consumer] {
        json(&[&["wallet", "send", "--to", &node.address, "--amount", "10eth"][..], &governor[..]].concat());
    }
    let at = |node: &Node| vec!["--datadir".to_owned(), node.dir.display().to_string()];
    let with =
        |args: &[&str], node: &Node| -> Vec<String> { args.iter().map(|a| (*a).to_owned()).chain(at(node)).collect() };
    let call = |args: &[&str], node: &Node| json(&with(args, node).iter().map(String::as_str).collect::<Vec<_>>());
    let call_until = |args: &[&str], node: &Node, done: &dyn Fn(&Value) -> bool| {
        json_until(&with(args, node).iter().map(String::as_str).collect::<Vec<_>>(), done)
    };

    // Admin: the keeper becomes a controller; the nodes registered themselves.
    json(
        &[
            &["admin", "controllers", "add", &keeper.address][..],
            &governor[..],
            &["--deployment", s(&deployment_file)][..],
        ]
        .concat(),
    );
    let controllers = json(&[&["admin", "controllers", "list"][..], &chain[..]].concat());
    assert_eq!(controllers["controllers"], serde_json::json!([keeper.address]));
    json_until(&[&["admin", "nodes"][..], &chain[..]].concat(), |v| {
        v["nodes"].as_array().is_some_and(|n| n.len() == 3)
    });
    let mut wrong_chain: Value = serde_json::from_str(&std::fs::read_to_string(&deployment_file).unwrap()).unwrap();
    wrong_chain["chainId"] = 1.into();
    std::fs::write(d("wrong-chain.json"), wrong_chain.to_string()).unwrap();
    fails(&["admin", "nodes", "--rpc-url", &rpc, "--deployment", s(&d("wrong-chain.json"))], 3, "wrong chain");
    call_until(&["node", "peers"], &provider, &|v| {
        v["peers"].as_array().is_some_and(|p| p.iter().filter(|p| p["admitted"] == true).count() >= 2)
    });

    // App and data type.
    let app = call(&["app", "register", "fitness"], &provider);
    let app_id = app["app_id"].as_str().unwrap().to_owned();
    let shown = call_until(&["app", "show", "fitness"], &consumer, &|_| true);
    assert_eq!(
        (shown["app_id"].as_str().unwrap(), shown["owner"].as_str().unwrap()),
        (app_id.as_str(), provider.address.as_str())
    );
    let schema =
        r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"integer"},"city":{"type":"string"}}}"#;
    std::fs::write(d("schema.json"), schema).unwrap();
    fails(
        &with(&["datatype", "register", "steps", "--schema", s(&d("missing.json"))], &provider)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
        "cannot read",
    );
    call(&["datatype", "register", "steps", "--schema", s(&d("schema.json"))], &provider);
    let data_type =
        call_until(&["datatype", "show", "steps", "--schema-out", s(&d("fetched.json"))], &consumer, &|_| true);
    assert_eq!(data_type["name"], "steps");
    assert_eq!(std::fs::read_to_string(d("fetched.json")).unwrap(), schema, "the schema came over the network");

    // A user without a wallet, through the keeper.
    let signed = call(&["user", "signup", "alice@example.com", "--app", "fitness"], &provider);
    let alice_id = signed["user_id"].as_str().unwrap().to_owned();
    let account = call(&["user", "show", "alice@example.com"], &keeper);
    assert_eq!(account["status"], "temporary");
    let by_id = call_until(&["user", "show", "--id", &alice_id], &consumer, &|_| true);
    assert_eq!(
        (by_id["status"].as_str(), by_id["controller"].as_str()),
        (Some("temporary"), Some(keeper.address.as_str()))
    );
    // A user can also sign up at the keeper directly, and the keeper writes consents for them.
    let dana = call(&["user", "signup", "dana@example.com"], &keeper);
    assert_eq!(dana["status"], "temporary");
    call(
        &[
            "consent",
            "allow",
            "--identity",
            "dana@example.com",
            "--app",
            "fitness",
            "--data-type",
            "steps",
            "--action",
            "collect",
        ],
        &keeper,
    );
    let dana_consents = call(&["consent", "list", "--identity", "dana@example.com"], &keeper);
    assert_eq!(dana_consents["consents"][0]["allowed"], true);
    call(
        &["user", "policy", "alice@example.com", "--grant", "collect:fitness", "--grant", "exchange:fitness"],
        &keeper,
    );
    // Reading the policy leaves it as it was.
    for _ in 0..2 {
        let read = call(&["user", "policy", "alice@example.com"], &keeper);
        assert_eq!(read["policy"].as_array().map(Vec::len), Some(2), "a read keeps both grants: {read}");
    }
    call(
        &[
            "consent",
            "request",
            "--user",
            &alice_id,
            "--app",
            "fitness",
            "--data-type",
            "steps",
            "--action",
            "collect,exchange",
        ],
        &provider,
    );
    let consents = call(&["consent", "list", "--identity", "alice@example.com"], &keeper);
    assert_eq!(consents["consents"].as_array().unwrap().len(), 2);
    assert!(consents["consents"].as_array().unwrap().iter().all(|c| c["allowed"] == true && c["set_by_user"] == false));

    // A user with a wallet: account and EIP-712-signed consents.
    json(&[&["wallet", "send", "--to", &bob_address, "--amount", "1eth"][..], &governor[..]].concat());
    let bob_keystore = keystores.join("bob.json");
    let bob = json(
        &[&["user", "create", "--wallet", s(&bob_keystore), "--password-file", s(&d("pw"))][..], &chain[..]].concat(),
    );
    let bob_id = bob["user_id"].as_str().unwrap().to_owned();
    json(
        &[
            &["consent", "allow", "--user", &bob_id, "--wallet", s(&bob_keystore), "--password-file", s(&d("pw"))][..],
            &["--app", "fitness", "--data-type", "steps", "--action", "collect,exchange"][..],
            &chain[..],
        ]
        .concat(),
    );
    let bob_consents = call_until(&["consent", "list", "--user", &bob_id], &provider, &|v| {
        v["consents"].as_array().is_some_and(|c| c.len() == 2)
    });
    assert!(bob_consents["consents"].as_array().unwrap().iter().all(|c| c["set_by_user"] == true));

    // Ingest: NDJSON (by identity and by user id; one line off schema, one not JSON) and CSV.
    let mut ndjson = String::new();
    for i in 0..40 {
        let who = if i % 2 == 0 {
            r#""identity":"alice@example.com""#.to_owned()
        } else {
            format!(r#""user_id":"{bob_id}""#)
        };
        ndjson.push_str(&format!(
            "{{{who},\"collected_at_ms\":{},\"payload\":{{\"steps\":{i}}}}}\n",
            1_700_000_000_000u64 + i
        ));
    }
    ndjson.push_str("{\"identity\":\"alice@example.com\",\"payload\":{\"steps\":\"lots\"}}\nnot json at all\n");
    std::fs::write(d("records.ndjson"), ndjson).unwrap();
    let summary =
        call(&["data", "ingest", s(&d("records.ndjson")), "--app", "fitness", "--data-type", "steps"], &provider);
    assert_eq!(summary["accepted"], 40);
    let reasons: Vec<&str> =
        summary["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["schema", "malformed"]);
    std::fs::write(
        d("records.csv"),
        format!(
            "user_id,collected_at_ms,steps,city\n{bob_id},1800000000000,77,Seoul\n{bob_id},1800000000001,78,Busan\n"
        ),
    )
    .unwrap();
    let summary =
        call(&["data", "ingest", s(&d("records.csv")), "--app", "fitness", "--data-type", "steps"], &provider);
    assert_eq!(summary["accepted"], 2, "{summary}");
    fails(
        &with(&["data", "ingest", s(&d("nope.ndjson")), "--app", "fitness", "--data-type", "steps"], &provider)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
        "cannot read",
    );

    // Bundle, offer, order, delivery, download, settle.
    let bundle = call(&["bundle", "seal", "--app", "fitness", "--data-type", "steps"], &provider);
    let bundle_id = bundle["bundle_id"].as_str().unwrap().to_owned();
    assert_eq!(bundle["record_count"], 42);
    let listed = call(&["bundle", "list"], &provider);
    assert_eq!(listed["bundles"][0]["bundle_id"], bundle_id.as_str());
    let shown = call_until(&["bundle", "show", &bundle_id], &consumer, &|_| true);
    assert_eq!(shown["provider"], provider.address.as_str());
    fails(
        &with(&["bundle", "show", &format!("0x{}", "00".repeat(31) + "01")], &consumer)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        2,
        "not registered",
    );
    let offer =
        call(&["offer", "create", "--bundle", &bundle_id, "--price", "0.05eth", "--delivery-window", "10m"], &provider);
    let offer_id = offer["offer_id"].as_str().unwrap().to_owned();
    call_until(&["offer", "list"], &consumer, &|v| {
        v["offers"].as_array().is_some_and(|o| o.iter().any(|o| o["offer_id"] == offer_id.as_str()))
    });
    let order = call(&["order", "place", &offer_id], &consumer);
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    call_until(&["order", "status", &order_id], &consumer, &|v| {
        v["status"] == "delivered" && v["key_received"] == true
    });
    let out = d("bought.ndjson");
    let downloaded = call(&["download", &order_id, "--out", s(&out)], &consumer);
    assert_eq!(downloaded["records"], 42);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 42);
    fails(
        &with(&["order", "refund", &order_id], &consumer).iter().map(String::as_str).collect::<Vec<_>>(),
        3,
        "WrongOrderStatus",
    );
    let settled = call(&["order", "settle", &order_id], &consumer);
    assert_eq!(settled["status"], "settled");
    // The data matched the chain: there is nothing to dispute.
    fails(
        &with(&["order", "dispute", &order_id], &consumer).iter().map(String::as_str).collect::<Vec<_>>(),
        1,
        "nothing to dispute",
    );
    let credits = json(&[&["wallet", "credits", &provider.address][..], &chain[..]].concat());
    assert_eq!(credits["credits"], "50000000000000000");

    // Alice withdraws exchange consent through the keeper.
    call(
        &[
            "consent",
            "revoke",
            "--identity",
            "alice@example.com",
            "--app",
            "fitness",
            "--data-type",
            "steps",
            "--action",
            "exchange",
        ],
        &keeper,
    );
    let consents = call(&["consent", "list", "--identity", "alice@example.com"], &keeper);
    let exchange = consents["consents"].as_array().unwrap().iter().find(|c| c["action"] == "exchange").unwrap().clone();
    assert_eq!(exchange["allowed"], false);
    assert_eq!(exchange["history"].as_array().unwrap().len(), 2);

    // Alice's own data, through the keeper; then she takes her account over.
    let export = call(&["user", "export", "alice@example.com", "--out", s(&d("alice.ndjson"))], &keeper);
    assert_eq!(export["providers"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum::<u64>(), 20);
    assert_eq!(std::fs::read_to_string(d("alice.ndjson")).unwrap().lines().count(), 20);
    let unlocked = call(&["user", "unlock", "alice@example.com", "--owner", &alice_address], &keeper);
    assert_eq!(
        (unlocked["status"].as_str().unwrap(), unlocked["owner"].as_str().unwrap()),
        ("active", alice_address.as_str())
    );

    // A node that is down, and completions.
    drop(consumer);
    fails(&["order", "status", &order_id, "--datadir", s(&d("consumer"))], 4, "is airblocd running");
    let completions = run(&["completions", "bash"]);
    assert!(completions.status.success() && String::from_utf8_lossy(&completions.stdout).contains("airbloc"));
    drop((boot, keeper, provider));
}
