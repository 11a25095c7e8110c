//! The conformance suite against the Cloudflare Worker (`hosts/cloudflare`)
//! running in workerd through `wrangler dev --local` on 127.0.0.1, with the
//! fake Graph on loopback and dispatched updates forwarded to it
//! (`WATS_EVENTS_FORWARD_URL`). It needs the Worker build and the pinned
//! npm tools, so it is ignored by a plain `cargo test`: `cargo xtask test`
//! builds the Worker and runs it with `--ignored`.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::forwarding::{self, Running};
use support::process::Group;
use support::workspace_root;

/// wrangler dev and the workerd it starts: one process group, stopped when
/// dropped.
struct Workerd {
    _group: Group,
    base: String,
    log: std::path::PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_worker(settings: &HashMap<String, String>, dir: &Path) -> Workerd {
    start_workers(settings, dir, &[workspace_root().join("wrangler.toml")])
}

/// wrangler dev of these configurations, the first the Worker under test
/// (which the `--var`s set).
fn start_workers(settings: &HashMap<String, String>, dir: &Path, configs: &[PathBuf]) -> Workerd {
    let root = workspace_root();
    let wrangler = root.join("hosts/cloudflare/node_modules/.bin/wrangler");
    assert!(
        root.join("hosts/cloudflare/build/index.js").is_file() && wrangler.is_file(),
        "no Worker build: run `cargo xtask worker-build` first (cargo xtask test does)"
    );
    let port = free_port();
    let log = dir.join("wrangler.log");
    let mut command = Command::new(wrangler);
    command
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(
            configs
                .iter()
                .flat_map(|config| [Path::new("--config"), config]),
        )
        .arg("--persist-to")
        .arg(dir.join("state"))
        .args(["--show-interactive-dev-session=false"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WATS_WORKER_PREBUILT", "1")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap());
    for (key, value) in settings {
        command.arg("--var").arg(format!("{key}:{value}"));
    }
    let worker = Workerd {
        _group: Group::spawn(&mut command).expect("wrangler starts"),
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    // Ready when wrangler says so (a request would count in the metrics
    // the suites assert): bounded, about 3 minutes at most (a cold start
    // on a busy 2-core machine runs wrangler's build command first).
    for _ in 0..1800 {
        let said = std::fs::read_to_string(&worker.log).unwrap_or_default();
        if said.contains("Ready on http://127.0.0.1") {
            return worker;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "wrangler dev did not become ready:\n{}",
        std::fs::read_to_string(&worker.log).unwrap_or_default()
    );
}

/// The Worker's wrangler.toml as the tests run it (its build, the Durable
/// Object), with `bindings` added.
fn worker_config(bindings: &str) -> String {
    let worker = workspace_root().join("hosts/cloudflare/build/index.js");
    format!(
        r#"name = "wats"
main = "{}"
compatibility_date = "2026-04-20"
[[durable_objects.bindings]]
name = "WATS_STATE"
class_name = "WatsState"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["WatsState"]
{bindings}"#,
        worker.display()
    )
}

/// The Worker with a Queue producer binding, `WATS_EVENTS_QUEUE`, and the
/// queue's consumer: a second Worker (tests/support/queue-consumer.mjs)
/// that POSTs each message to the fake Graph's `/__queue`.
fn start_with_queue(settings: &HashMap<String, String>, dir: &Path) -> Running {
    let root = workspace_root();
    let producer = dir.join("wrangler.toml");
    let queue = "[[queues.producers]]\nbinding = \"WATS_EVENTS_QUEUE\"\nqueue = \"wats-events\"\n";
    std::fs::write(&producer, worker_config(queue)).unwrap();
    let consumer = dir.join("consumer.toml");
    std::fs::write(
        &consumer,
        format!(
            r#"name = "wats-events-consumer"
main = "{}"
compatibility_date = "2026-04-20"
[[queues.consumers]]
queue = "wats-events"
max_batch_size = 10
max_batch_timeout = 1
[vars]
SINK_URL = "{}/__queue"
"#,
            root.join("hosts/wasmtime/tests/support/queue-consumer.mjs")
                .display(),
            settings["WATS_GRAPH_BASE_URL"]
        ),
    )
    .unwrap();
    running(start_workers(settings, dir, &[producer, consumer]))
}

/// wrangler dev as a `Running` host: its output is everything but its own
/// access log (`[wrangler:info] GET /path 200`), which prints request paths
/// the suites fill with WAMIDs: that line is the platform's, not the Worker's.
fn start_running(settings: &HashMap<String, String>, dir: &Path) -> Running {
    running(start_worker(settings, dir))
}

fn running(worker: Workerd) -> Running {
    let base = worker.base.clone();
    Running::new(base, move || {
        let log = worker.log.clone();
        drop(worker);
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("[wrangler:info]"))
            .map(|line| format!("{line}\n"))
            .collect()
    })
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn conformance_suite_against_the_worker_in_workerd() {
    forwarding::conformance_suites("workerd", &start_running);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn the_durable_object_holds_dedupe_and_idempotency_under_concurrency() {
    forwarding::duplicate_deliveries_and_sends_race("workerd", &start_running);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn a_queued_send_is_delivered_right_after_the_202() {
    forwarding::queued_send_goes_out_after_the_202("workerd", &start_running);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn events_reach_failing_endpoints_in_the_end() {
    forwarding::events_survive_failing_endpoints("workerd", &start_running);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn events_reach_a_cloudflare_queue_through_its_binding() {
    forwarding::events_reach_a_cloudflare_queue("workerd", &start_with_queue);
}

/// With an Analytics Engine dataset bound as `WATS_ANALYTICS`, each
/// request's measurements become data points: indexed by the metric's
/// name, the route templated and the exact status in their columns, the
/// value in `double1`, and nothing of the request itself. The dataset is a
/// stand-in Worker (tests/support/analytics-sink.mjs), bound through a
/// service binding to its RPC entrypoint, that hands each point to the
/// fake Graph: workerd's local dataset keeps nothing to read back.
#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn measurements_reach_an_analytics_engine_dataset() {
    use std::sync::{Arc, Mutex};
    use support::http::{executor, send, start_fake_graph, GraphScript};
    let root = workspace_root();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    let executor = executor();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let dir = std::env::temp_dir().join(format!("wats-workerd-analytics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("wrangler.toml");
    let binding = "[[services]]\nbinding = \"WATS_ANALYTICS\"\nservice = \"wats-analytics-sink\"\nentrypoint = \"AnalyticsSink\"\n";
    std::fs::write(&main, worker_config(binding)).unwrap();
    let sink = dir.join("sink.toml");
    let config = format!(
        r#"name = "wats-analytics-sink"
main = "{}"
compatibility_date = "2026-04-20"
[vars]
SINK_URL = "http://{graph}/__analytics"
"#,
        root.join("hosts/wasmtime/tests/support/analytics-sink.mjs")
            .display()
    );
    std::fs::write(&sink, config).unwrap();
    let token = "analytics-service-token";
    let settings: HashMap<String, String> = [
        ("WATS_ACCESS_TOKEN", "analytics-access-token"),
        ("WATS_APP_SECRET", "analytics-app-secret"),
        ("WATS_VERIFY_TOKEN", "analytics-verify-token"),
        ("WATS_SERVICE_BEARER_TOKEN", token),
        ("WATS_PHONE_NUMBER_ID", "100000000000001"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let worker = start_workers(&settings, &dir, &[main, sink]);
    let canary = "wamid.ANALYTICSCANARY15550001234";
    let client = reqwest::Client::new();
    let bearer = [("authorization".to_owned(), format!("Bearer {token}"))];
    let missing = executor.block_on(send(
        &client,
        &worker.base,
        "GET",
        &format!("/api/messages/{canary}"),
        &bearer,
        Vec::new(),
    ));
    assert_eq!(missing.status, 404);
    let wanted = |point: &serde_json::Value| {
        point["blobs"][0] == "http_requests_total"
            && point["blobs"][1] == "/api/messages/:messageId"
            && point["blobs"][3] == "404"
    };
    // Written after the response, over RPC: bounded wait.
    let mut found = None;
    for _ in 0..300 {
        found = script
            .lock()
            .unwrap()
            .analytics_points
            .iter()
            .find(|point| wanted(point))
            .cloned();
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let point = found.unwrap_or_else(|| {
        panic!(
            "no data point for the request: {:?}",
            script.lock().unwrap().analytics_points
        )
    });
    drop(worker);
    assert_eq!(point["indexes"], serde_json::json!(["http_requests_total"]));
    assert_eq!(point["doubles"][0].as_f64(), Some(1.0));
    assert_eq!(point["blobs"][2], "GET");
    assert_eq!(point["blobs"][4], "4xx");
    assert_eq!(point["blobs"][9], "counter");
    let all = serde_json::to_string(&script.lock().unwrap().analytics_points).unwrap();
    for private in [canary, token] {
        assert!(!all.contains(private), "{private} in a data point");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
