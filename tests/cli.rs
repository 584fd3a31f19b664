//! The `herald` binary: help text, configuration layering, refusal of bad
//! configuration, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn herald() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env("RUST_LOG", "warn")
        .env_remove("HERALD_LISTEN")
        .env_remove("HERALD_DATA_DIR");
    cmd
}

/// Starts `herald serve` and returns it with the address it printed.
fn serve(cmd: &mut Command) -> (std::process::Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("address line");
    let addr = line
        .trim()
        .strip_prefix("herald listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr.to_owned())
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("herald did not stop within 5 s of SIGTERM");
}

#[test]
fn help_explains_every_command_and_flag() {
    let out = herald().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.contains("serve"), "{text}");
    let out = herald().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--listen", "--data-dir", "--config", "HERALD_"] {
        assert!(text.contains(flag), "serve --help lacks {flag}: {text}");
    }
}

#[test]
fn config_file_environment_and_flags_layer_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    let data_from_file = dir.path().join("from-file");
    let data_from_env = dir.path().join("from-env");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = {:?}\n[store]\ndurability = \"os\"\n",
            data_from_file
        ),
    )
    .unwrap();

    // The flag beats the file's listen address; the environment beats the
    // file's data directory.
    let (mut child, addr) = serve(
        herald()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("HERALD_DATA_DIR", &data_from_env),
    );
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":1"),
        "{addr}"
    );
    // SIGTERM right after the ready line: the handlers must already be in
    // place (regression: they used to be registered after it, so this killed).
    assert!(terminate(&mut child).success(), "SIGTERM is a clean exit");
    assert!(data_from_env.exists(), "HERALD_DATA_DIR was used");
    assert!(
        !data_from_file.exists(),
        "the environment overrides the file"
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen = \"127.0.0.1:0\"\nlisten_port = 3\n", "listen_port"),
        // No authentication on a public address.
        (
            "listen = \"0.0.0.0:0\"\n",
            "refusing to listen on 0.0.0.0:0",
        ),
        (
            "listen = \"127.0.0.1:0\"\n[[auth.jwt.keys]]\nalgorithm = \"none\"\n",
            "none",
        ),
        (
            "listen = \"127.0.0.1:0\"\n[tables.t]\nread = { n = { \"$bogus\" = 1 } }\n",
            "tables.t.read",
        ),
        ("[store]\ndurability = \"sometimes\"\n", "sometimes"),
        ("[store.retention]\nmax_age = \"soon\"\n", "max_age"),
    ];
    for (i, (text, mention)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = herald()
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(
            stderr.contains(mention),
            "{text:?}: the error should mention {mention}: {stderr}"
        );
    }
    let out = herald()
        .args(["serve", "--config", "/nonexistent/herald.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = herald()
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data2"))
        .env("HERALD_STORE__DURABILITY", "never")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a bad environment value is refused too"
    );
}
