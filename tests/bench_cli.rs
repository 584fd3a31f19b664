//! `herald bench` as users run it: the real binary starting its own
//! server and, where a scenario spreads over processes, its own helpers
//! (which the bench crate's in-process tests cannot start). Counts are
//! small and nothing is asserted about speed.

use serde_json::Value;
use std::process::Command;

/// Runs `herald bench <args> --out <file>` and returns the JSON result.
fn bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.json");
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("bench")
        .args(args)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "error")
        .output()
        .expect("herald bench runs");
    assert!(
        output.status.success(),
        "herald bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

fn count(doc: &Value, name: &str) -> u64 {
    doc["results"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {name} in {doc}"))
}

#[test]
fn fanout_subscribers_in_helper_processes_get_every_message_once() {
    // 40 subscribers over 2 channels, held by 3 helper processes (shares of
    // 14, 14 and 12) from 2 source addresses.
    let doc = bench(&[
        "fanout",
        "--subscribers",
        "40",
        "--publishers",
        "1",
        "--channels",
        "2",
        "--rate",
        "40",
        "--duration",
        "1",
        "--procs",
        "3",
        "--sources",
        "2",
    ]);
    assert_eq!(doc["params"]["procs"], 3, "{doc}");
    let published = count(&doc, "published");
    assert!(published > 0, "{doc}");
    assert_eq!(count(&doc, "publish_errors"), 0, "{doc}");
    // 20 subscribers per channel, each message to one channel.
    assert_eq!(count(&doc, "deliveries"), published * 20, "{doc}");
    for name in ["lost", "duplicates", "reordered"] {
        assert_eq!(count(&doc, name), 0, "{name}: {doc}");
    }
    // The helpers' histograms and CPU reached the report.
    let results = &doc["results"];
    let figure = |name: &str| {
        results[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {doc}"))
    };
    assert!(figure("latency_p50_ms") > 0.0, "{doc}");
    assert!(figure("helpers_cpu_s") > 0.0, "{doc}");
    assert!(
        figure("generator_cpu_s") >= figure("helpers_cpu_s"),
        "{doc}"
    );
}

#[test]
fn connections_are_held_by_one_helper_per_step() {
    let doc = bench(&[
        "connections",
        "--connections",
        "40",
        "--steps",
        "2",
        "--settle",
        "0.2",
    ]);
    assert_eq!(count(&doc, "connections"), 40, "{doc}");
    // The server's RSS before any step and after each.
    let points = doc["results"]["rss_kib"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{doc}");
    assert_eq!(points[2][0], 40, "{doc}");
}
