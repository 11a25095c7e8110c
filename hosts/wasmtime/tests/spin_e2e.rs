//! The Spin component (`hosts/spin`) under `wats spin`: a wasi:http runtime
//! supplying Spin's key-value store (SQLite) and variables, on 127.0.0.1,
//! with the fake Graph on loopback and updates forwarded to it. The
//! component is built by `cargo xtask build` (`$WATS_SPIN_COMPONENT`).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::built_artifact;
use support::forwarding::{self, Running};
use support::http::Server;

fn spin_component() -> PathBuf {
    built_artifact("WATS_SPIN_COMPONENT", "target/wats/wats-spin.wasm")
}

fn start_spin(settings: &HashMap<String, String>, dir: &Path, extra: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wats"));
    command
        .arg("spin")
        .arg("--component")
        .arg(spin_component())
        .args(["--port", "0", "--state"])
        .arg(dir.join("spin.sqlite3"))
        .args(extra);
    let server = Server::spawn(command, settings)
        .unwrap_or_else(|stderr| panic!("wats spin did not start: {stderr}"));
    let base = server.base.clone();
    Running::new(base, move || server.stop())
}

#[test]
fn conformance_suite_against_the_spin_component() {
    forwarding::conformance_suites("spin", &|settings, dir| start_spin(settings, dir, &[]));
}

/// Every key-value call takes 5 ms, as against a store across the network:
/// without it the requests hardly overlap, and the test would pass even
/// with a compare-and-swap that does not compare (checked).
#[test]
fn compare_and_swap_holds_dedupe_and_idempotency_under_concurrency() {
    forwarding::duplicate_deliveries_and_sends_race("spin", &|settings, dir| {
        start_spin(settings, dir, &["--kv-latency-ms", "5"])
    });
}

#[test]
fn a_queued_send_is_delivered_right_after_the_202() {
    forwarding::queued_send_goes_out_after_the_202("spin", &|settings, dir| {
        start_spin(settings, dir, &[])
    });
}
