//! Keystores: round trips with the real `cast` binary, wrong passwords, corrupt files.

use airbloc_node::{
    keys::{self, KeyError, NodeKey},
    test_utils::foundry_tool,
};
use std::process::Command;

const PASSWORD: &str = "hunter2-but-longer";

#[test]
fn keystore_written_by_us_opens_with_cast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.json");
    let key = NodeKey::random();
    keys::write_keystore(&path, &key, PASSWORD).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "keystore must be private");
    }

    let out = Command::new(foundry_tool("cast"))
        .args(["wallet", "address", "--keystore"])
        .arg(&path)
        .args(["--password", PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "cast failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), key.address().to_string());
}

#[test]
fn keystore_written_by_cast_opens_with_us() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(foundry_tool("cast"))
        .args(["wallet", "new"])
        .arg(dir.path())
        .args(["castkey", "--unsafe-password", PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "cast failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let address = stdout
        .split_whitespace()
        .find(|w| w.starts_with("0x") && w.len() == 42)
        .unwrap_or_else(|| panic!("no address in cast output: {stdout}"));

    let key = keys::open_keystore(&dir.path().join("castkey"), PASSWORD).unwrap();
    assert_eq!(key.address().to_string(), address);
    assert_eq!(keys::address_of_peer(&key.peer_id()), Some(key.address()));
}

#[test]
fn wrong_password_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    keys::write_keystore(&path, &NodeKey::random(), PASSWORD).unwrap();
    let err = keys::open_keystore(&path, "not the password").unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword(_)), "{err:?}");
    assert!(err.to_string().contains("wrong password"));
}

#[test]
fn corrupt_keystores_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    keys::write_keystore(&path, &NodeKey::random(), PASSWORD).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();

    for broken in [
        String::from("not json at all"),
        good[..good.len() / 2].to_owned(),
        good.replace("\"scrypt\"", "\"md5\""),
        String::from("{}"),
    ] {
        std::fs::write(&path, &broken).unwrap();
        let err = keys::open_keystore(&path, PASSWORD).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "for {broken:.40}: {err:?}");
        assert!(err.to_string().contains("not a valid Web3 Secret Storage"));
    }
}

#[test]
fn missing_keystore_is_created_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/k.json");
    let err = keys::load_or_create(&path, PASSWORD, false).unwrap_err();
    assert!(matches!(err, KeyError::Missing(_)));
    assert!(!path.exists());

    let (key, created) = keys::load_or_create(&path, PASSWORD, true).unwrap();
    assert!(created);
    let (again, created) = keys::load_or_create(&path, PASSWORD, true).unwrap();
    assert!(!created);
    assert_eq!(key.address(), again.address());
}

#[test]
fn refuses_to_overwrite_a_keystore() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    let first = NodeKey::random();
    keys::write_keystore(&path, &first, PASSWORD).unwrap();
    assert!(keys::write_keystore(&path, &NodeKey::random(), PASSWORD).is_err());
    assert_eq!(keys::open_keystore(&path, PASSWORD).unwrap().address(), first.address());
}

#[test]
fn password_from_file_drops_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret \n").unwrap();
    assert_eq!(keys::read_password(Some(&file)).unwrap().as_str(), "s3cret ");
    std::fs::write(&file, "\n").unwrap();
    assert!(matches!(keys::read_password(Some(&file)), Err(KeyError::EmptyPassword)));
    assert!(matches!(keys::read_password(Some(&dir.path().join("absent"))), Err(KeyError::PasswordFile { .. })));
}
