//! The conformance suite against the Cloudflare Worker (`hosts/cloudflare`)
//! running in workerd through `wrangler dev --local` on 127.0.0.1, with the
//! fake Graph on loopback and dispatched updates forwarded to it
//! (`WATS_EVENTS_FORWARD_URL`). It needs the Worker build and the pinned
//! npm tools, so it is ignored by a plain `cargo test`: `cargo xtask test`
//! builds the Worker and runs it with `--ignored`.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::http::{
    executor, graph_ok, json_acks, queue_and_settle, run_cases, send_concurrently,
    start_fake_graph, GraphScript,
};
use support::{
    assert_no_canaries, load_suites, run_suites, signed_delivery, suite, workspace_root,
};

/// wrangler dev, killed when dropped.
struct Workerd {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_worker(
    settings: &std::collections::HashMap<String, String>,
    dir: &std::path::Path,
) -> Workerd {
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
        .arg("--config")
        .arg(root.join("wrangler.toml"))
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
        child: command.spawn().expect("wrangler starts"),
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

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn conformance_suite_against_the_worker_in_workerd() {
    let (base, _) = load_suites();
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let client = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("wats-worker-e2e-{}", std::process::id()));
    let mut skipped = Vec::new();
    run_suites("workerd", |suite, cases| {
        if let Some(reason) = &suite.in_process_only {
            skipped.push(format!("{} ({reason})", suite.name));
            return Vec::new();
        }
        let suite_dir = dir.join(suite.name.replace(|c: char| !c.is_alphanumeric(), "-"));
        std::fs::create_dir_all(&suite_dir).unwrap();
        let mut settings = suite.settings.clone();
        settings.insert("WATS_GRAPH_BASE_URL".into(), format!("http://{graph}"));
        settings.insert(
            "WATS_EVENTS_FORWARD_URL".into(),
            format!("http://{graph}/__events"),
        );
        script.lock().unwrap().events.clear();
        let worker = start_worker(&settings, &suite_dir);
        let updates = || script.lock().unwrap().events.clone();
        let results = run_cases(
            &executor,
            &client,
            &worker.base,
            &script,
            suite,
            cases,
            &updates,
        );
        // wrangler dev's own access log (`[wrangler:info] GET /path 200`)
        // prints request paths, which the suites fill with WAMIDs: it is
        // the platform's, not the Worker's. Everything else is swept.
        let log: String = std::fs::read_to_string(&worker.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("[wrangler:info]"))
            .map(|line| format!("{line}\n"))
            .collect();
        drop(worker);
        let mut private = base.private_values.clone();
        private.extend(suite.secret_values());
        assert_no_canaries(
            &format!("workerd output for {}", suite.name),
            &log,
            &private,
        );
        results
    });
    println!(
        "skipped in workerd (covered in-process): {}",
        skipped.join("; ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn the_durable_object_holds_dedupe_and_idempotency_under_concurrency() {
    let (_, suites) = load_suites();
    let (suite, delivery) = signed_delivery(&suites);
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    // One Graph reply only: a second send would get the fake's 418.
    script.lock().unwrap().replies =
        vec![graph_ok(r#"{"messages":[{"id":"wamid.ONCE1"}]}"#)].into();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let mut settings = suite.settings.clone();
    settings.insert("WATS_GRAPH_BASE_URL".into(), format!("http://{graph}"));
    settings.insert(
        "WATS_EVENTS_FORWARD_URL".into(),
        format!("http://{graph}/__events"),
    );
    let dir = std::env::temp_dir().join(format!("wats-worker-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let worker = start_worker(&settings, &dir);
    let client = reqwest::Client::new();
    const COPIES: usize = 8;
    let token = settings["WATS_SERVICE_BEARER_TOKEN"].clone();
    let same_key = support::PreparedRequest {
        method: "POST".into(),
        path: "/api/messages/text".into(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("idempotency-key".into(), "race-1".into()),
        ],
        body: br#"{"to":"15551230000","text":"once"}"#.to_vec(),
    };
    let (deliveries, sends) = executor.block_on(async {
        tokio::join!(
            send_concurrently(&client, &worker.base, &delivery, COPIES),
            send_concurrently(&client, &worker.base, &same_key, COPIES),
        )
    });
    let acks = json_acks(&deliveries);
    let sends: Vec<u16> = sends.iter().map(|reply| reply.status).collect();
    drop(worker);
    let total = |field: &str| acks.iter().map(|a| a[field].as_u64().unwrap()).sum::<u64>();
    let received = acks[0]["received"].as_u64().unwrap();
    assert_eq!(total("dispatched"), received, "each update dispatched once");
    assert_eq!(total("duplicates"), received * (COPIES as u64 - 1));
    assert_eq!(script.lock().unwrap().events.len() as u64, received);
    let graph_sends = script.lock().unwrap().calls.len();
    assert_eq!(graph_sends, 1, "one Graph call for one Idempotency-Key");
    assert!(sends.contains(&200), "one send succeeds: {sends:?}");
    assert!(
        sends.iter().all(|s| *s == 200 || *s == 409),
        "the others replay or wait: {sends:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs the Worker build and wrangler: cargo xtask test runs it"]
fn a_queued_send_is_delivered_right_after_the_202() {
    let (_, suites) = load_suites();
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    script.lock().unwrap().replies =
        vec![graph_ok(r#"{"messages":[{"id":"wamid.QUEUEDW1"}]}"#)].into();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let mut settings = suite(&suites, "POST /api/messages:").settings.clone();
    settings.insert("WATS_GRAPH_BASE_URL".into(), format!("http://{graph}"));
    let dir = std::env::temp_dir().join(format!("wats-worker-queued-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let worker = start_worker(&settings, &dir);
    let client = reqwest::Client::new();
    // No cron runs here: only the drain after the 202 can send it.
    let token = &settings["WATS_SERVICE_BEARER_TOKEN"];
    let item = queue_and_settle(&executor, &client, &worker.base, token);
    drop(worker);
    assert_eq!(item["state"], "sent", "{item}");
    assert_eq!(item["waMessageId"], "wamid.QUEUEDW1");
    assert_eq!(script.lock().unwrap().calls.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
