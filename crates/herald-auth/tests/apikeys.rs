//! API keys on a real file: create, verify, revoke, and two instances (a CLI
//! and a server) sharing one file.

use herald_auth::{Action, ApiKeys, AuthErrorKind, Permissions};
use std::path::PathBuf;

fn file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apikeys.json");
    (dir, path)
}

fn perms(items: &[&str]) -> Permissions {
    Permissions::parse(items).unwrap()
}

fn secret_of(key: &str) -> &str {
    &key["hrld_".len() + 12 + 1..]
}

#[test]
fn a_created_key_verifies_with_its_permissions() {
    let (_dir, path) = file();
    let keys = ApiKeys::open(&path).unwrap();
    assert!(keys.is_empty());
    let (info, key) = keys
        .create("billing", &perms(&["read:*", "publish:chat:*"]))
        .unwrap();
    assert!(ApiKeys::looks_like_key(&key));
    assert!(key.starts_with(&format!("hrld_{}_", info.id)));
    assert_eq!(info.id.len(), 12);
    assert!(
        info.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(secret_of(&key).len(), 43);
    assert_eq!(info.name, "billing");
    assert_eq!(info.permissions, ["read:*", "publish:chat:*"]);
    assert!(info.created_at > 1_700_000_000_000);

    let (who, can) = keys.verify(&key).unwrap();
    assert_eq!(who, info);
    assert!(can.allows(Action::Read, "orders"));
    assert!(can.allows(Action::Publish, "chat:lobby"));
    assert!(!can.allows(Action::Write, "orders"));
    assert_eq!(keys.list(), [info]);
    assert!(!keys.is_empty());
}

#[test]
fn wrong_or_malformed_keys_are_unknown_without_saying_why() {
    let (_dir, path) = file();
    let keys = ApiKeys::open(&path).unwrap();
    let (_, key) = keys.create("svc", &perms(&["read:*"])).unwrap();
    let (_, other) = keys.create("svc2", &perms(&["read:*"])).unwrap();
    let mut flipped = key.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // Right id, another key's secret; wrong id, right secret.
    let swapped = format!("{}{}", &key[..18], secret_of(&other));
    let wrong_id = format!("hrld_zzzzzzzzzzzz_{}", secret_of(&key));
    let mut messages = Vec::new();
    for presented in [
        flipped.as_str(),
        swapped.as_str(),
        wrong_id.as_str(),
        &key[..key.len() - 1],
        &format!("{key}x"),
        "hrld_",
        "",
        "eyJhbGciOiJIUzI1NiJ9.e30.x",
    ] {
        let err = keys.verify(presented).unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::UnknownApiKey);
        messages.push(err.message);
    }
    messages.dedup();
    assert_eq!(messages, ["unknown API key"]);
    assert!(!ApiKeys::looks_like_key("eyJhbGciOiJIUzI1NiJ9.e30.x"));
}

#[test]
fn the_file_holds_hashes_never_secrets_and_is_private() {
    let (_dir, path) = file();
    let keys = ApiKeys::open(&path).unwrap();
    let (info, key) = keys.create("svc", &perms(&["admin"])).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&info.id));
    assert!(!text.contains(secret_of(&key)));
    assert!(!text.contains(&key));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["keys"][0]["secret_sha256"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn revoked_keys_stop_verifying() {
    let (_dir, path) = file();
    let keys = ApiKeys::open(&path).unwrap();
    let (a, key_a) = keys.create("a", &perms(&["read:*"])).unwrap();
    let (b, key_b) = keys.create("b", &perms(&["read:*"])).unwrap();
    assert!(keys.revoke(&a.id).unwrap());
    assert!(!keys.revoke(&a.id).unwrap());
    assert!(!keys.revoke("nonexistent1").unwrap());
    assert_eq!(
        keys.verify(&key_a).unwrap_err().kind,
        AuthErrorKind::UnknownApiKey
    );
    assert!(keys.verify(&key_b).is_ok());
    assert_eq!(keys.list(), [b]);
    // Reopened from disk, the same.
    let reopened = ApiKeys::open(&path).unwrap();
    assert!(reopened.verify(&key_a).is_err());
    assert!(reopened.verify(&key_b).is_ok());
}

#[test]
fn two_instances_on_one_file_see_each_others_changes() {
    let (_dir, path) = file();
    let server = ApiKeys::open(&path).unwrap();
    let cli = ApiKeys::open(&path).unwrap();
    assert!(!server.reload_if_changed().unwrap());

    let (info, key) = cli.create("from-cli", &perms(&["write:orders"])).unwrap();
    assert!(server.verify(&key).is_err(), "not reloaded yet");
    assert!(server.reload_if_changed().unwrap());
    assert!(
        !server.reload_if_changed().unwrap(),
        "nothing changed since"
    );
    assert_eq!(server.verify(&key).unwrap().0, info);

    // A write by the server re-reads the file first: the CLI's key survives.
    let (_, server_key) = server.create("from-server", &perms(&["read:*"])).unwrap();
    let (_, cli_key2) = cli.create("from-cli-2", &perms(&["read:*"])).unwrap();
    assert!(
        cli.verify(&server_key).is_ok(),
        "a write reloads the writer"
    );
    assert!(server.reload_if_changed().unwrap());
    for key in [&key, &server_key, &cli_key2] {
        assert!(server.verify(key).is_ok());
        assert!(cli.verify(key).is_ok());
    }
    assert_eq!(server.list().len(), 3);

    assert!(cli.revoke(&info.id).unwrap());
    assert!(server.verify(&key).is_ok(), "not reloaded yet");
    assert!(server.reload_if_changed().unwrap());
    assert!(server.verify(&key).is_err());

    // A deleted file means no keys.
    std::fs::remove_file(&path).unwrap();
    assert!(server.reload_if_changed().unwrap());
    assert!(server.is_empty());
}

#[test]
fn concurrent_writers_lose_nothing() {
    let (_dir, path) = file();
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &path;
            s.spawn(move || {
                // Each thread its own instance, as separate processes would be.
                let keys = ApiKeys::open(path).unwrap();
                for i in 0..10 {
                    keys.create(&format!("t{t}-{i}"), &perms(&["read:*"]))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(ApiKeys::open(&path).unwrap().list().len(), 40);
}

#[test]
fn a_corrupt_file_is_an_error_naming_it_and_old_keys_stay() {
    let (_dir, path) = file();
    std::fs::write(&path, "{not json").unwrap();
    let err = ApiKeys::open(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    std::fs::remove_file(&path).unwrap();
    let keys = ApiKeys::open(&path).unwrap();
    let (_, key) = keys.create("a", &perms(&["read:*"])).unwrap();
    std::fs::write(&path, r#"{"version": 1, "keys": [{"id": "x"}]}"#).unwrap();
    let err = keys.reload_if_changed().unwrap_err().to_string();
    assert!(err.contains("apikeys.json"), "{err}");
    // Reported once; the keys loaded before stay in use until it is fixed.
    assert!(!keys.reload_if_changed().unwrap());
    assert!(keys.verify(&key).is_ok());
    // And a write refuses to build on a file it cannot read.
    assert!(keys.create("b", &perms(&["read:*"])).is_err());

    for bad in [
        r#"{"version": 2, "keys": []}"#,
        r#"{"version": 1, "keys": [], "extra": 1}"#,
        r#"{"version": 1, "keys": [{"id": "abcdefghijkl", "name": "a", "permissions": ["nope"], "created_at": 1, "secret_sha256": "00"}]}"#,
    ] {
        std::fs::write(&path, bad).unwrap();
        assert!(ApiKeys::open(&path).is_err(), "{bad}");
    }
}

#[test]
fn names_and_permissions_are_checked_on_create() {
    let (_dir, path) = file();
    let keys = ApiKeys::open(&path).unwrap();
    for bad in ["", "has space", &"n".repeat(65)] {
        assert!(keys.create(bad, &perms(&["read:*"])).is_err(), "{bad:?}");
    }
    assert!(keys.create("ok", &Permissions::none()).is_err());
    assert!(!path.exists(), "nothing written for refused keys");
}

#[test]
fn the_store_is_shareable() {
    fn assert_shareable<T: Send + Sync + 'static>() {}
    assert_shareable::<ApiKeys>();
}
