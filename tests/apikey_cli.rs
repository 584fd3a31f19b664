//! `herald apikey`: create, list and revoke through the real binary, in a
//! temporary directory, and the key file never holds a secret.

use std::path::Path;
use std::process::{Command, Output};

/// `herald` run in `cwd`, with no inherited HERALD_* settings.
fn herald(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(cwd)
        .env_remove("HERALD_DATA_DIR")
        .env_remove("HERALD_AUTH__API_KEYS_FILE");
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("herald runs");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

fn ok(cmd: &mut Command) -> (String, String) {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "failed: {stderr}");
    (stdout, stderr)
}

fn create(cwd: &Path, data_dir: &Path, name: &str, permissions: &str) -> String {
    let (stdout, stderr) = ok(herald(cwd)
        .args([
            "apikey",
            "create",
            "--name",
            name,
            "--permissions",
            permissions,
            "--data-dir",
        ])
        .arg(data_dir));
    assert!(stderr.contains(name), "{stderr}");
    let key = stdout.trim().to_owned();
    assert!(
        key.starts_with("hrld_") && !key.contains('\n'),
        "stdout is the key alone: {stdout:?}"
    );
    key
}

#[test]
fn create_list_revoke_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("apikeys.json");

    let key = create(dir.path(), &data, "billing", "read:*,publish:chat:*");
    let id = &key[5..17];
    let secret = &key[18..];
    let text = std::fs::read_to_string(&file).expect("the data directory and file are created");
    assert!(text.contains(id));
    assert!(!text.contains(secret), "the file must not hold the secret");

    let other = create(dir.path(), &data, "ingest", "write:orders");
    let (list, _) = ok(herald(dir.path())
        .args(["apikey", "list", "--data-dir"])
        .arg(&data));
    assert!(list.starts_with("ID"), "{list}");
    for expect in [
        id,
        "billing",
        "read:*,publish:chat:*",
        &other[5..17],
        "ingest",
        "write:orders",
    ] {
        assert!(list.contains(expect), "list lacks {expect}: {list}");
    }
    for secret in [secret, &other[18..]] {
        assert!(!list.contains(secret), "list shows a secret: {list}");
    }

    ok(herald(dir.path())
        .args(["apikey", "revoke", id, "--data-dir"])
        .arg(&data));
    let (list, _) = ok(herald(dir.path())
        .args(["apikey", "list", "--data-dir"])
        .arg(&data));
    assert!(!list.contains(id) && list.contains("ingest"), "{list}");

    let (out, _, stderr) = run(herald(dir.path())
        .args(["apikey", "revoke", id, "--data-dir"])
        .arg(&data));
    assert!(!out.status.success(), "revoking twice fails");
    assert!(stderr.contains("no API key has id"), "{stderr}");

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(secret) && !text.contains(&other[18..]));
}

#[test]
fn the_key_file_is_found_like_the_server_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    // Default: ./herald-data under the working directory.
    create(dir.path(), Path::new("herald-data"), "a", "read:*");
    ok(herald(dir.path()).args(["apikey", "create", "--name", "b", "--permissions", "read:*"]));
    let (list, _) = ok(herald(dir.path()).args(["apikey", "list"]));
    assert!(list.contains(" a ") && list.contains(" b "), "{list}");

    // HERALD_DATA_DIR, then ./herald.toml's auth.api_keys_file.
    ok(herald(dir.path()).env("HERALD_DATA_DIR", "from-env").args([
        "apikey",
        "create",
        "--name",
        "c",
        "--permissions",
        "admin",
    ]));
    assert!(dir.path().join("from-env/apikeys.json").is_file());
    std::fs::write(
        dir.path().join("herald.toml"),
        "[auth]\napi_keys_file = \"keys/k.json\"\n",
    )
    .unwrap();
    ok(herald(dir.path()).args([
        "apikey",
        "create",
        "--name",
        "d",
        "--permissions",
        "metrics",
    ]));
    assert!(dir.path().join("keys/k.json").is_file());
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (args, mention) in [
        (
            vec!["--name", "x", "--permissions", "reed:orders"],
            "unknown action",
        ),
        (
            vec!["--name", "x", "--permissions", "read"],
            "read needs a pattern",
        ),
        (
            vec!["--name", "has space", "--permissions", "read:*"],
            "API key name",
        ),
        (vec!["--name", "x"], "--permissions"),
    ] {
        let (out, _, stderr) = run(herald(dir.path())
            .args(["apikey", "create"])
            .args(&args)
            .args(["--data-dir", "d"]));
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(mention),
            "{args:?}: expected {mention:?} in {stderr}"
        );
    }
    assert!(!dir.path().join("d/apikeys.json").exists());
    let (out, _, stderr) =
        run(herald(dir.path()).args(["apikey", "list", "--config", "nope.toml"]));
    assert!(!out.status.success());
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn help_explains_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (help, _) = ok(herald(dir.path()).args(["apikey", "--help"]));
    for word in ["create", "list", "revoke"] {
        assert!(help.contains(word), "{help}");
    }
    let (help, _) = ok(herald(dir.path()).args(["apikey", "create", "--help"]));
    for word in [
        "--name",
        "--permissions",
        "--data-dir",
        "read:*",
        "only this once",
    ] {
        assert!(help.contains(word), "create --help lacks {word}: {help}");
    }
}
