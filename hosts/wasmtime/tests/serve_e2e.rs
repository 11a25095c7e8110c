//! End to end: the conformance suite against the `wats serve --live
//! --yes-live` binary over HTTP on 127.0.0.1, with a fake Graph on loopback
//! and dispatched updates read back from `--events-out`; plus the CLI's own
//! behaviour (dry-run, the live guard, refusing a bad configuration,
//! durable dedupe across a restart). Every server binds a free loopback port
//! and is killed by its test.

mod support;

use support::forwarding::{self, Running};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use support::http::{
    assert_in_flight_or_acked, executor, graph_ok, json_acks, queue_and_settle, send,
    send_concurrently, start_fake_graph, GraphScript, Server, EVENTS_SECRET,
};
use support::{assert_no_canaries, load_suites, signed_delivery, suite, GraphReply};

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("events are JSON lines"))
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wats-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `wats serve --live` as a `Running` host, its updates read back from
/// `--events-out`.
fn start_live(settings: &HashMap<String, String>, dir: &Path) -> Running {
    let events = dir.join("events.jsonl");
    let server = Server::start(
        &[
            "--live",
            "--yes-live",
            "--memory",
            "--events-out",
            events.to_str().unwrap(),
        ],
        settings,
    )
    .unwrap_or_else(|stderr| panic!("wats serve did not start: {stderr}"));
    let base = server.base.clone();
    Running::new(base, move || server.stop()).reading_updates(move || read_lines(&events))
}

#[test]
fn conformance_suite_against_wats_serve_live() {
    forwarding::conformance_suites("wats serve --live", &start_live);
}

#[test]
fn dry_run_needs_no_account_and_answers_sends_with_synthetic_ids() {
    let executor = executor();
    let client = reqwest::Client::new();
    let server = Server::start(&["--memory"], &HashMap::new())
        .expect("dry-run starts with no settings at all");
    let health = executor.block_on(send(&client, &server.base, "GET", "/healthz", &[], vec![]));
    assert_eq!(
        (health.status, health.body.as_slice()),
        (200, &br#"{"ok":true,"service":"wats"}"#[..])
    );
    let token = vec![(
        "authorization".to_owned(),
        "Bearer dry-run-service-token".to_owned(),
    )];
    let sent = executor.block_on(send(
        &client,
        &server.base,
        "POST",
        "/api/messages/text",
        &token,
        br#"{"to":"15551230000","text":"hi"}"#.to_vec(),
    ));
    assert_eq!(sent.status, 200);
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert!(body["messages"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("wamid.DRYRUN"));
    server.stop();
}

#[test]
fn live_mode_needs_its_confirmation_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_wats"))
        .args(["serve", "--live"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--yes-live"));
}

#[test]
fn live_mode_refuses_a_missing_secret_and_names_only_the_key() {
    let settings: HashMap<String, String> = [
        ("WATS_PHONE_NUMBER_ID", "106540352242922"),
        ("WATS_APP_SECRET", "CANARY-APP-SECRET-52c9"),
        ("WATS_VERIFY_TOKEN", "CANARY-VERIFY-TOKEN-0d17"),
        ("WATS_SERVICE_BEARER_TOKEN", "CANARY-SERVICE-TOKEN-e6b4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let stderr = match Server::start(&["--live", "--yes-live", "--memory"], &settings) {
        Ok(server) => panic!("started without WATS_ACCESS_TOKEN: {}", server.stop()),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("Missing required setting WATS_ACCESS_TOKEN."),
        "{stderr}"
    );
    assert_no_canaries(
        "the refusal",
        &stderr,
        &settings.values().cloned().collect::<Vec<_>>(),
    );
}

#[test]
fn live_mode_refuses_endpoints_without_a_signing_secret() {
    let canary_url = "https://hooks.example/CANARY-ENDPOINT-PATH-77f1";
    let settings: HashMap<String, String> = [
        ("WATS_PHONE_NUMBER_ID", "106540352242922"),
        ("WATS_ACCESS_TOKEN", "CANARY-ACCESS-TOKEN-31aa"),
        ("WATS_APP_SECRET", "CANARY-APP-SECRET-52c9"),
        ("WATS_VERIFY_TOKEN", "CANARY-VERIFY-TOKEN-0d17"),
        ("WATS_SERVICE_BEARER_TOKEN", "CANARY-SERVICE-TOKEN-e6b4"),
        ("WATS_EVENTS_ENDPOINTS", canary_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let stderr = match Server::start(&["--live", "--yes-live", "--memory"], &settings) {
        Ok(server) => panic!("started without a signing secret: {}", server.stop()),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("Missing required setting WATS_EVENTS_SIGNING_SECRET."),
        "{stderr}"
    );
    assert_no_canaries(
        "the refusal",
        &stderr,
        &settings.values().cloned().collect::<Vec<_>>(),
    );
}

/// The suite's signed batched delivery (6 updates), and `wats serve --live`
/// arguments for a SQLite store and an events file in a fresh directory.
struct SqliteDelivery {
    settings: HashMap<String, String>,
    request: support::PreparedRequest,
    dir: PathBuf,
    events: PathBuf,
    args: Vec<String>,
}

impl SqliteDelivery {
    fn new(name: &str) -> SqliteDelivery {
        let (_, suites) = load_suites();
        let (suite, request) = signed_delivery(&suites);
        let dir = temp_dir(name);
        let events = dir.join("events.jsonl");
        let args = ["--live", "--yes-live", "--state"]
            .into_iter()
            .map(str::to_owned)
            .chain([
                dir.join("state.sqlite3").display().to_string(),
                "--events-out".into(),
                events.display().to_string(),
            ])
            .collect();
        SqliteDelivery {
            settings: suite.settings.clone(),
            request,
            dir,
            events,
            args,
        }
    }

    fn start(&self) -> Result<Server, String> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Server::start(&args, &self.settings)
    }
}

#[test]
fn dedupe_survives_a_restart_on_the_sqlite_store() {
    let delivery = SqliteDelivery::new("restart");
    let SqliteDelivery {
        request,
        dir,
        events,
        ..
    } = &delivery;
    let executor = executor();
    let client = reqwest::Client::new();
    let mut acks = Vec::new();
    for _ in 0..2 {
        let server = delivery.start().expect("starts");
        let reply = executor.block_on(send(
            &client,
            &server.base,
            "POST",
            &request.path,
            &request.headers,
            request.body.clone(),
        ));
        assert_eq!(reply.status, 200);
        acks.push(serde_json::from_slice::<Value>(&reply.body).unwrap());
        server.stop();
    }
    assert_eq!(
        (
            acks[0]["dispatched"].as_u64(),
            acks[1]["dispatched"].as_u64()
        ),
        (Some(6), Some(0))
    );
    assert_eq!(acks[1]["duplicates"].as_u64(), Some(6));
    assert_eq!(
        read_lines(events).len(),
        6,
        "each update written once across both runs"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Meta may pretty-print a delivery; `--events-out` stays one compact
/// JSON object per line, each update's raw JSON included.
#[test]
fn events_out_is_json_lines_for_a_pretty_printed_delivery() {
    let delivery = SqliteDelivery::new("pretty");
    let body: Value = serde_json::from_slice(&delivery.request.body).unwrap();
    let pretty = serde_json::to_vec_pretty(&body).unwrap();
    let signature = wats::sign(&delivery.settings["WATS_APP_SECRET"], &pretty);
    let server = delivery.start().expect("starts");
    let reply = executor().block_on(send(
        &reqwest::Client::new(),
        &server.base,
        "POST",
        &delivery.request.path,
        &[("x-hub-signature-256".into(), signature)],
        pretty,
    ));
    server.stop();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let updates = read_lines(&delivery.events);
    assert_eq!(updates.len(), 6, "one line per update");
    assert!(updates.iter().all(|update| update["raw"].is_object()));
    let _ = std::fs::remove_dir_all(&delivery.dir);
}

#[test]
fn concurrent_duplicate_deliveries_dispatch_each_update_once() {
    let delivery = SqliteDelivery::new("concurrent");
    let SqliteDelivery {
        request,
        dir,
        events,
        ..
    } = &delivery;
    let server = delivery.start().expect("starts");
    let executor = executor();
    let client = reqwest::Client::new();
    const DELIVERIES: u64 = 8;
    let replies = executor.block_on(send_concurrently(
        &client,
        &server.base,
        request,
        DELIVERIES as usize,
    ));
    assert_in_flight_or_acked(&replies);
    // Meta's retry of the copies told to come back: all duplicates now.
    let retry = executor.block_on(send(
        &client,
        &server.base,
        &request.method,
        &request.path,
        &request.headers,
        request.body.clone(),
    ));
    server.stop();
    let retry = &json_acks(&[retry])[0];
    assert_eq!(
        (retry["dispatched"].as_u64(), retry["duplicates"].as_u64()),
        (Some(0), Some(6))
    );
    assert_eq!(read_lines(events).len(), 6, "each update written once");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_outbox_timer_retries_a_rate_limited_send_after_retry_after() {
    let (_, suites) = load_suites();
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    script.lock().unwrap().replies = vec![
        GraphReply::Http {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            body: Vec::new(),
        },
        graph_ok(r#"{"messages":[{"id":"wamid.E2EQUEUED1"}]}"#),
    ]
    .into();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let mut settings = suite(&suites, "POST /api/messages:").settings.clone();
    settings.insert("WATS_GRAPH_BASE_URL".into(), format!("http://{graph}"));
    let server = Server::start(
        &["--live", "--yes-live", "--memory", "--drain-every-ms", "50"],
        &settings,
    )
    .expect("starts");
    let client = reqwest::Client::new();
    let token = &settings["WATS_SERVICE_BEARER_TOKEN"];
    let item = queue_and_settle(&executor, &client, &server.base, token);
    let stderr = server.stop();
    assert_eq!(item["state"], "sent", "{item}");
    assert_eq!(item["attempts"], 2);
    assert_eq!(item["waMessageId"], "wamid.E2EQUEUED1");
    let calls = std::mem::take(&mut script.lock().unwrap().calls);
    assert_eq!(calls.len(), 2, "one Graph call per claim");
    assert!(
        stderr.contains("\"event\":\"wats.outbox.drained\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains("later") && !stderr.contains("15551230000"),
        "{stderr}"
    );
}

/// `count` distinct copies of a signed delivery: its WAMIDs made unique per
/// copy, each signed anew with the suite's app secret.
fn distinct_deliveries(delivery: &SqliteDelivery, count: usize) -> Vec<Vec<u8>> {
    let body = String::from_utf8(delivery.request.body.clone()).unwrap();
    (0..count)
        .map(|n| {
            body.replace("wamid.", &format!("wamid.K{n:04}"))
                .into_bytes()
        })
        .collect()
}

async fn post_delivery(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    secret: &str,
    body: Vec<u8>,
) -> Option<u16> {
    let response = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", wats::sign(secret, &body))
        .body(body)
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Posts every body, 16 at a time; with `kill_after`, kills the server
/// (SIGKILL to its process group) once that many were answered. Returns
/// each delivery's status (none: no answer) and the server's stderr.
fn post_all(
    server: Server,
    bodies: &[Vec<u8>],
    delivery: &SqliteDelivery,
    kill_after: Option<usize>,
) -> (Vec<Option<u16>>, String) {
    let secret = delivery.settings["WATS_APP_SECRET"].clone();
    let path = delivery.request.path.clone();
    let (client, base) = (reqwest::Client::new(), server.base.clone());
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    executor().block_on(async {
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        let tasks: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|body| {
                let (client, base, path, secret) =
                    (client.clone(), base.clone(), path.clone(), secret.clone());
                let (slots, answered, enough) = (slots.clone(), answered.clone(), enough.clone());
                tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await.ok()?;
                    let status = post_delivery(&client, &base, &path, &secret, body).await;
                    let now = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if Some(now) == kill_after {
                        enough.notify_one();
                    }
                    status
                })
            })
            .collect();
        // Killed mid-run, or stopped once every delivery is answered.
        let mut server = Some(server);
        let mut stderr = None;
        if kill_after.is_some() {
            enough.notified().await;
            stderr = server.take().map(Server::stop);
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.ok().flatten());
        }
        let stderr = stderr.or_else(|| server.map(Server::stop));
        (statuses, stderr.unwrap_or_default())
    })
}

/// kill -9 three times in the middle of a load of deliveries, each time
/// restarting on the same state, as Meta keeps retrying: the retries of
/// the deliveries that were in flight are answered at once (the restarted
/// host takes over the claims of its earlier life) instead of 409 until
/// the claims expire, and no update is lost: not in `--events-out`, and
/// not at the application's endpoint, which the events queued by a killed
/// life reach from a later one.
#[test]
fn after_kill_9_the_retries_of_deliveries_in_flight_are_answered_at_once() {
    const DELIVERIES: usize = 120;
    const KILLS: usize = 3;
    let mut delivery = SqliteDelivery::new("killed");
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    let endpoint = executor.block_on(start_fake_graph(script.clone()));
    delivery.settings.insert(
        "WATS_EVENTS_ENDPOINTS".into(),
        format!("http://{endpoint}/__events"),
    );
    delivery
        .settings
        .insert("WATS_EVENTS_SIGNING_SECRET".into(), EVENTS_SECRET.into());
    let bodies = distinct_deliveries(&delivery, DELIVERIES);
    let mut statuses = Vec::new();
    let mut logs = String::new();
    for round in 0..=KILLS {
        let server = delivery.start().expect("starts on the same state");
        // Meta retries every delivery it has no 200 for (here: all).
        let kill_after = (round < KILLS).then_some(40);
        let (answers, stderr) = post_all(server, &bodies, &delivery, kill_after);
        statuses.push(answers);
        logs.push_str(&stderr);
    }
    // Answers are 200, or none when the kill came; never 409 for a claim
    // that died with an earlier life.
    for answers in &statuses {
        let refused: Vec<_> = answers.iter().flatten().filter(|s| **s != 200).collect();
        assert!(refused.is_empty(), "refusals: {refused:?}");
    }
    let last = statuses.last().unwrap();
    assert!(
        last.iter().all(|s| *s == Some(200)),
        "after the last restart every delivery is acknowledged"
    );

    // Every update reached the application at least once; a second time
    // only if it was dispatched when a kill came (its done mark died).
    let events = read_lines(&delivery.events);
    let identity =
        |update: &Value| format!("{}|{}|{}", update["kind"], update["id"], update["status"]);
    let distinct: std::collections::HashSet<String> = events.iter().map(identity).collect();
    assert_eq!(distinct.len(), DELIVERIES * 6, "no update lost");
    // One more life sends what the last one had not yet.
    let server = delivery.start().expect("starts on the same state");
    let arrived = || script.lock().unwrap().events.len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while arrived() < DELIVERIES * 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    logs.push_str(&server.stop());
    assert_eq!(
        arrived(),
        DELIVERIES * 6,
        "every update reached the endpoint"
    );
    assert_eq!(script.lock().unwrap().unsigned_events, 0);
    let taken_over: usize = logs
        .lines()
        .filter(|line| line.contains("wats.webhook.claims_taken_over"))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["count"].as_str()?.parse::<usize>().ok())
        .sum();
    let unanswered: usize = statuses
        .iter()
        .map(|a| a.iter().filter(|s| s.is_none()).count())
        .sum();
    eprintln!(
        "{KILLS} kills of wats serve under {DELIVERIES} deliveries each: {unanswered} requests cut off, \
         0 refused, {taken_over} claims of earlier lives taken over, {} updates dispatched twice, 0 lost; \
         at the endpoint: {} events, each webhook-id once, {} offered again",
        events.len() - distinct.len(),
        arrived(),
        script.lock().unwrap().redelivered_events,
    );
    let _ = std::fs::remove_dir_all(&delivery.dir);
}

/// Taking over claims is safe only for the store's one live writer: a
/// second `wats serve` on the same state file refuses to start.
#[test]
fn a_second_wats_serve_on_the_same_state_refuses_to_start() {
    let delivery = SqliteDelivery::new("owned");
    let first = delivery.start().expect("the first starts");
    let stderr = match delivery.start() {
        Ok(second) => panic!("a second started: {}", second.stop()),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("another wats serve is using this --state file"),
        "{stderr}"
    );
    first.stop();
    // Once the first is gone, the state is free again.
    delivery
        .start()
        .expect("starts after the first stopped")
        .stop();
    let _ = std::fs::remove_dir_all(&delivery.dir);
}

#[test]
fn events_reach_failing_endpoints_in_the_end() {
    forwarding::events_survive_failing_endpoints("wats serve --live", &start_live);
}

/// An OTLP/HTTP receiver on 127.0.0.1: each export decoded with the
/// OpenTelemetry project's own protobuf types, its raw bytes kept for the
/// canary sweep.
async fn start_otlp_receiver() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<(Vec<u8>, ExportMetricsServiceRequest)>,
) {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sender = sender.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let sender = sender.clone();
                async move {
                    let path_ok = request.uri().path() == "/v1/metrics";
                    let body: hyper::body::Incoming = request.into_body();
                    let bytes = body.collect().await.map(|b| b.to_bytes().to_vec());
                    let decoded = bytes.ok().and_then(|bytes| {
                        let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).ok()?;
                        Some((bytes, decoded))
                    });
                    let status = match decoded {
                        Some(export) if path_ok => {
                            let _ = sender.send(export);
                            200
                        }
                        _ => 400,
                    };
                    let mut response = hyper::Response::new(Full::new(hyper::body::Bytes::new()));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (address, received)
}

/// A metric's data points with their attributes as strings.
fn otlp_points(
    export: &ExportMetricsServiceRequest,
    name: &str,
) -> Vec<(HashMap<String, String>, f64)> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as N};
    let attributes = |list: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        list.iter()
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(text) => Some((kv.key.clone(), text.clone())),
                _ => None,
            })
            .collect::<HashMap<_, _>>()
    };
    let metrics = export
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .filter(|metric| metric.name == name);
    metrics
        .flat_map(|metric| match &metric.data {
            Some(Data::Sum(sum)) => sum
                .data_points
                .iter()
                .map(|point| {
                    let value = match point.value {
                        Some(N::AsDouble(v)) => v,
                        Some(N::AsInt(v)) => v as f64,
                        None => 0.0,
                    };
                    (attributes(&point.attributes), value)
                })
                .collect::<Vec<_>>(),
            Some(Data::Histogram(histogram)) => histogram
                .data_points
                .iter()
                .map(|point| (attributes(&point.attributes), point.count as f64))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, `wats serve` exports its
/// measurements with OpenTelemetry's attribute keys: the route templated,
/// the exact status (which `/metrics` narrows to a class), and nothing of
/// the request itself.
#[test]
fn otlp_export_carries_the_full_attribute_set_and_no_request_data() {
    let runtime = executor();
    let (address, exports) = runtime.block_on(start_otlp_receiver());
    let settings = HashMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://{address}"),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "200".to_owned()),
        ("OTEL_SERVICE_NAME".to_owned(), "wats-otlp-test".to_owned()),
    ]);
    let server = Server::start(&["--memory"], &settings)
        .unwrap_or_else(|stderr| panic!("wats serve did not start: {stderr}"));
    let canary = "wamid.OTLPCANARY15550001234";
    let bearer = [(
        "authorization".to_owned(),
        "Bearer dry-run-service-token".to_owned(),
    )];
    let (missing, health) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let path = format!("/api/messages/{canary}");
        let missing = send(&client, &server.base, "GET", &path, &bearer, Vec::new()).await;
        let health = send(&client, &server.base, "GET", "/healthz", &[], Vec::new()).await;
        (missing, health)
    });
    assert_eq!((missing.status, health.status), (404, 200));
    // Exports are cumulative: wait for one that has both requests.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (raw, export) = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (raw, export) = exports
            .recv_timeout(left)
            .expect("an OTLP export within 30 s");
        let requests = otlp_points(&export, "http_requests_total");
        if requests.len() >= 2 {
            break (raw, export);
        }
    };
    let stderr = server.terminate();
    let requests = otlp_points(&export, "http_requests_total");
    let missing_point = requests
        .iter()
        .find(|(attributes, _)| {
            attributes.get("http.status_code").map(String::as_str) == Some("404")
        })
        .unwrap_or_else(|| panic!("no 404 point: {requests:?}"));
    let expected = [
        ("http.route", "/api/messages/:messageId"),
        ("http.request.method", "GET"),
        ("http.response.status.class", "4xx"),
    ];
    for (key, value) in expected {
        assert_eq!(
            missing_point.0.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(missing_point.1, 1.0);
    let durations = otlp_points(&export, "http_request_duration_seconds");
    assert!(
        durations
            .iter()
            .any(
                |(a, count)| a.get("http.route").map(String::as_str) == Some("/healthz")
                    && *count >= 1.0
            ),
        "{durations:?}"
    );
    let service = export.resource_metrics[0].resource.as_ref().unwrap();
    assert!(
        format!("{:?}", service.attributes).contains("wats-otlp-test"),
        "service.name from OTEL_SERVICE_NAME"
    );
    let canaries = [
        canary.to_owned(),
        "dry-run-service-token".to_owned(),
        address.to_string(),
    ];
    assert_no_canaries("OTLP export", &String::from_utf8_lossy(&raw), &canaries);
    assert_no_canaries("wats serve's stderr", &stderr, &canaries);
}

/// An OTLP protocol `wats serve` does not speak is refused at start, by
/// the key's name, rather than silently exporting nothing.
#[test]
fn an_otlp_protocol_other_than_http_protobuf_is_refused_by_name() {
    let settings = HashMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), "grpc".to_owned()),
    ]);
    match Server::start(&["--memory"], &settings) {
        Ok(server) => panic!("started: {}", server.stop()),
        Err(stderr) => {
            assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{stderr}");
            assert!(!stderr.contains("127.0.0.1:9"), "{stderr}");
        }
    }
}
