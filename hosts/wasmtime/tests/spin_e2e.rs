//! The Spin component (`hosts/spin`) under `wats spin`: a wasi:http runtime
//! supplying Spin's SQLite database (or, granted instead, its key-value
//! store) and variables, on 127.0.0.1, with the fake Graph on loopback and
//! updates forwarded to it. The component is built by `cargo xtask build`
//! (`$WATS_SPIN_COMPONENT`).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::forwarding::{self, Running};
use support::http::{executor, send, Server};
use support::{built_artifact, load_suites, signed_delivery};

fn spin_component() -> PathBuf {
    built_artifact("WATS_SPIN_COMPONENT", "target/wats/wats-spin.wasm")
}

fn spawn_spin(settings: &HashMap<String, String>, dir: &Path, extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wats"));
    command
        .arg("spin")
        .arg("--component")
        .arg(spin_component())
        .args(["--port", "0", "--state"])
        .arg(dir.join("spin.sqlite3"))
        .args(extra);
    Server::spawn(command, settings)
        .unwrap_or_else(|stderr| panic!("wats spin did not start: {stderr}"))
}

fn start_spin(settings: &HashMap<String, String>, dir: &Path, extra: &[&str]) -> Running {
    let server = spawn_spin(settings, dir, extra);
    let base = server.base.clone();
    Running::new(base, move || server.stop())
}

/// The component on Spin's SQLite (what spin.toml grants).
const SQLITE: &[&str] = &[];
/// The component on Spin's key-value store, its fallback.
const KEY_VALUE: &[&str] = &["--grant", "key-value"];

#[test]
fn conformance_suite_against_the_spin_component() {
    forwarding::conformance_suites("spin", &|settings, dir| start_spin(settings, dir, SQLITE));
}

#[test]
fn conformance_suite_against_the_spin_component_on_key_value() {
    forwarding::conformance_suites("spin-kv", &|settings, dir| {
        start_spin(settings, dir, KEY_VALUE)
    });
}

/// Every store call takes 5 ms, as against a store across the network:
/// without it the requests hardly overlap, and the test would pass even
/// with a compare-and-swap that does not compare (checked).
#[test]
fn dedupe_and_idempotency_hold_under_concurrency() {
    for (label, grant) in [("spin", SQLITE), ("spin-kv", KEY_VALUE)] {
        forwarding::duplicate_deliveries_and_sends_race(label, &|settings, dir| {
            let latency = ["--kv-latency-ms", "5"];
            start_spin(settings, dir, &[grant, &latency].concat())
        });
    }
}

#[test]
fn a_queued_send_is_delivered_right_after_the_202() {
    forwarding::queued_send_goes_out_after_the_202("spin", &|settings, dir| {
        start_spin(settings, dir, SQLITE)
    });
}

/// On Spin each statement is a call to the database, across the network
/// when hosted: a fresh delivery of six updates is one statement per phase
/// (claims, projections, done marks), and one more after the answer adds
/// the request's metrics to the totals.
#[test]
fn a_delivery_is_three_statements_and_its_metrics_one() {
    let (_, suites) = load_suites();
    let (suite, delivery) = signed_delivery(&suites);
    let dir = std::env::temp_dir().join(format!("wats-spin-statements-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let statements = |request: &support::PreparedRequest| {
        let host = spawn_spin(&suite.settings, &dir, SQLITE);
        let reply = executor().block_on(send(
            &reqwest::Client::new(),
            &host.base,
            &request.method,
            &request.path,
            &request.headers,
            request.body.clone(),
        ));
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let log = host.terminate();
        let stopped = log
            .lines()
            .find_map(|line| line.strip_prefix("wats spin: stopped after "))
            .unwrap_or_else(|| panic!("no count in: {log}"));
        stopped.split(' ').next().unwrap().parse::<u64>().unwrap()
    };
    // The first request creates the tables; a later life finds them.
    let token = &suite.settings["WATS_SERVICE_BEARER_TOKEN"];
    let listing = support::PreparedRequest {
        method: "GET".into(),
        path: "/api/messages".into(),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        body: Vec::new(),
    };
    statements(&listing);
    assert_eq!(statements(&delivery), 3 + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_reach_failing_endpoints_in_the_end() {
    forwarding::events_survive_failing_endpoints("spin", &|settings, dir| {
        start_spin(settings, dir, SQLITE)
    });
}
