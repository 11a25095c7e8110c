//! Running conformance cases over HTTP against a host process: a fake
//! Graph on loopback (which also collects forwarded updates at `/__events`),
//! a host started as a child process, and requests sent with reqwest.

use super::process::Group;
use super::{
    assert_no_canaries, check, component_path, graph_replies, prepare, GraphCall, GraphReply,
    Observed, Suite,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The signing secret the hosts under test get for their events, and the
/// fake endpoint verifies with.
pub const EVENTS_SECRET: &str = "whsec_dGVzdC1ldmVudHMtc2lnbmluZy1rZXktMzItYnl0ZXMh";

#[derive(Default)]
pub struct GraphScript {
    pub replies: VecDeque<GraphReply>,
    pub calls: Vec<GraphCall>,
    /// The updates of the events POSTed to `/__events` (the application's
    /// endpoint), each `webhook-id` once, as a receiver dedupes them.
    pub events: Vec<Value>,
    /// Every `webhook-id` accepted, and how many events came again.
    pub event_ids: Vec<String>,
    pub redelivered_events: usize,
    /// Events whose Standard Webhooks signature did not verify (refused 401).
    pub unsigned_events: usize,
    /// The events of the failing endpoints (`/__events/<name>`, below) they
    /// accepted, by endpoint, each `webhook-id` once; and their refusals.
    pub endpoint_events: BTreeMap<String, Vec<String>>,
    pub endpoint_refusals: BTreeMap<String, usize>,
    /// What a Cloudflare Queue's consumer Worker POSTed to `/__queue`: each
    /// message as the queue carried it.
    pub queue_messages: Vec<Value>,
    /// What the Analytics Engine stand-in POSTed to `/__analytics`: each
    /// data point the Worker wrote.
    pub analytics_points: Vec<Value>,
    attempts: BTreeMap<String, u32>,
}

/// Endpoints that fail on purpose, deterministically: `down-first` refuses
/// the first attempt of every event (down while the deliveries came),
/// `flaky` the first attempt of about 30% of them (chosen by the id).
fn refuses(endpoint: &str, id: &str, attempt: u32) -> bool {
    let share = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 10;
    match endpoint {
        "down-first" => attempt == 1,
        "flaky" => attempt == 1 && share < 3,
        _ => false,
    }
}

impl GraphScript {
    /// Forgets every event: a new host's events start afresh.
    pub fn clear_events(&mut self) {
        self.events.clear();
        self.event_ids.clear();
        self.redelivered_events = 0;
        self.unsigned_events = 0;
        self.endpoint_events.clear();
        self.endpoint_refusals.clear();
        self.queue_messages.clear();
        self.attempts.clear();
    }

    /// The `webhook-id` of an event whose signature the Standard Webhooks
    /// library verifies; none (and counted) otherwise.
    fn verified_id(&mut self, headers: &hyper::HeaderMap, body: &[u8]) -> Option<String> {
        let verifier = standardwebhooks::Webhook::new(EVENTS_SECRET).expect("a valid secret");
        if verifier.verify(body, headers).is_err() {
            self.unsigned_events += 1;
            return None;
        }
        Some(
            headers["webhook-id"]
                .to_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// An event POSTed to one of the failing endpoints.
    fn receive_at(&mut self, endpoint: &str, headers: &hyper::HeaderMap, body: &[u8]) -> u16 {
        let Some(id) = self.verified_id(headers, body) else {
            return 401;
        };
        let attempt = self.attempts.entry(format!("{endpoint} {id}")).or_default();
        *attempt += 1;
        if refuses(endpoint, &id, *attempt) {
            *self
                .endpoint_refusals
                .entry(endpoint.to_owned())
                .or_default() += 1;
            return if endpoint == "flaky" { 503 } else { 500 };
        }
        let accepted = self.endpoint_events.entry(endpoint.to_owned()).or_default();
        if !accepted.contains(&id) {
            accepted.push(id);
        }
        204
    }

    /// An event POSTed to the application's endpoint: verified with the
    /// Standard Webhooks library, then kept once per `webhook-id`.
    fn receive_event(&mut self, headers: &hyper::HeaderMap, body: &[u8]) -> u16 {
        let Some(id) = self.verified_id(headers, body) else {
            return 401;
        };
        if self.event_ids.contains(&id) {
            self.redelivered_events += 1;
            return 200;
        }
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.event_ids.push(id);
        self.events.push(event["data"].clone());
        200
    }
}

/// A Graph stand-in on 127.0.0.1 answering from a script, recording calls.
pub async fn start_fake_graph(script: Arc<Mutex<GraphScript>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let script = script.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let mut script = script.lock().unwrap();
                            if let Some(endpoint) = parts.uri.path().strip_prefix("/__events/") {
                                let status = script.receive_at(endpoint, &parts.headers, &body);
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                return Ok(response);
                            }
                            if let path @ ("/__queue" | "/__analytics") = parts.uri.path() {
                                let message = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                match path {
                                    "/__queue" => script.queue_messages.push(message),
                                    _ => script.analytics_points.push(message),
                                }
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                                return Ok(response);
                            }
                            if parts.uri.path() == "/__events" {
                                let status = script.receive_event(&parts.headers, &body);
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                return Ok(response);
                            }
                            script.calls.push(GraphCall {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers,
                                body,
                            });
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            match script.replies.pop_front() {
                                Some(GraphReply::Http {
                                    status,
                                    headers,
                                    body,
                                }) => {
                                    *response.status_mut() =
                                        hyper::StatusCode::from_u16(status).unwrap();
                                    *response.body_mut() = Full::new(Bytes::from(body));
                                    for (name, value) in headers {
                                        response.headers_mut().insert(
                                            hyper::header::HeaderName::from_bytes(name.as_bytes())
                                                .unwrap(),
                                            value.parse().unwrap(),
                                        );
                                    }
                                }
                                _ => *response.status_mut() = hyper::StatusCode::IM_A_TEAPOT,
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    address
}

/// A running `wats serve` (or another host), with whatever it started:
/// stopped as a process group when dropped.
pub struct Server {
    pub group: Group,
    pub base: String,
    stderr: Option<JoinHandle<String>>,
}

impl Server {
    /// `wats serve` on a free port with these arguments and settings.
    pub fn start(args: &[&str], settings: &HashMap<String, String>) -> Result<Server, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wats"));
        command
            .arg("serve")
            .arg("--component")
            .arg(component_path())
            .arg("--port")
            .arg("0")
            .args(args);
        Server::spawn(command, settings)
    }

    /// Runs a host command that prints `http://ADDRESS` on stdout once it
    /// listens, with exactly these `WATS_*` settings in its environment.
    pub fn spawn(
        mut command: Command,
        settings: &HashMap<String, String>,
    ) -> Result<Server, String> {
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("WATS_")) {
            command.env_remove(key);
        }
        command
            .envs(settings)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut group = Group::spawn(&mut command).expect("the server starts");
        let mut stdout = BufReader::new(group.child().stdout.take().unwrap());
        let mut stderr = group.child().stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut server = Server {
            group,
            base: String::new(),
            stderr: Some(stderr),
        };
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return Err(server.stop());
            }
            if let Some(address) = line
                .split("http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
            {
                server.base = format!("http://{address}");
                // Keep draining stdout so the server never blocks on it.
                std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
                return Ok(server);
            }
        }
    }

    /// Stops the server and returns everything it wrote to stderr.
    pub fn stop(mut self) -> String {
        self.group.stop();
        self.output()
    }

    /// Stops it as Ctrl-C would, letting it write its last lines.
    pub fn terminate(mut self) -> String {
        self.group.terminate(Duration::from_secs(10));
        self.output()
    }

    fn output(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Reply {
    let mut request = client
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.bytes().await.unwrap().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Runs a suite's cases in order against a host at `base` (see `run_case`).
pub fn run_cases(
    executor: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    script: &Mutex<GraphScript>,
    suite: &Suite,
    cases: &[Value],
    updates: &dyn Fn() -> Vec<Value>,
) -> Vec<(String, Result<(), String>)> {
    cases
        .iter()
        .map(|case| {
            let name = case["name"].as_str().unwrap_or("unnamed").to_owned();
            let result = run_case(executor, client, base, script, suite, case, updates);
            (name, result)
        })
        .collect()
}

/// The updates dispatched since `seen`, once as many as the case expects
/// have arrived (or 10 s have passed): a host with a store delivers them
/// to the application's endpoint from its events queue, after its answer.
fn awaited_updates(case: &Value, seen: usize, updates: &dyn Fn() -> Vec<Value>) -> Vec<Value> {
    let expected = case["expect"]["updates"].as_array().map_or(0, Vec::len);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut arrived = updates();
        if arrived.len() >= seen + expected || std::time::Instant::now() >= deadline {
            return arrived.split_off(seen.min(arrived.len()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs one conformance case against a host at `base`: scripts the fake
/// Graph, sends the request, sweeps the response for canaries and checks
/// every expectation. `updates` returns every update dispatched so far.
pub fn run_case(
    executor: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    script: &Mutex<GraphScript>,
    suite: &Suite,
    case: &Value,
    updates: &dyn Fn() -> Vec<Value>,
) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("unnamed");
    let replies = graph_replies(case);
    assert!(
        case.get("faults").is_none()
            && case.get("advanceClockMs").is_none()
            && case["request"].get("drain").is_none()
            && !replies.iter().any(|r| matches!(r, GraphReply::Timeout)),
        "{} :: {name} injects faults: mark its suite inProcessOnly",
        suite.name
    );
    let seen = updates().len();
    {
        let mut script = script.lock().unwrap();
        script.replies = replies.into();
        script.calls.clear();
    }
    let request = prepare(case, suite);
    let reply = executor.block_on(send(
        client,
        base,
        &request.method,
        &request.path,
        &request.headers,
        request.body,
    ));
    let response_text = format!(
        "{:?} {}",
        reply.headers,
        String::from_utf8_lossy(&reply.body)
    );
    assert_no_canaries(
        &format!("response to {name}"),
        &response_text,
        &suite.secret_values(),
    );
    // Separate statements: `updates` may lock the script too.
    let graph_calls = std::mem::take(&mut script.lock().unwrap().calls);
    let updates = awaited_updates(case, seen, updates);
    let observed = Observed {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
        graph_calls,
        updates,
        logs: None,
        state_calls: None,
    };
    check(case, suite, &observed)
}

/// Sends `copies` identical requests at once and returns every reply.
pub async fn send_concurrently(
    client: &reqwest::Client,
    base: &str,
    request: &super::PreparedRequest,
    copies: usize,
) -> Vec<Reply> {
    let tasks: Vec<_> = (0..copies)
        .map(|_| {
            let (client, base) = (client.clone(), base.to_owned());
            let (method, path) = (request.method.clone(), request.path.clone());
            let (headers, body) = (request.headers.clone(), request.body.clone());
            tokio::spawn(async move { send(&client, &base, &method, &path, &headers, body).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("send task"));
    }
    replies
}

/// The JSON bodies of replies that must all be 200.
pub fn json_acks(replies: &[Reply]) -> Vec<Value> {
    replies
        .iter()
        .map(|reply| {
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            serde_json::from_slice(&reply.body).expect("a JSON ack")
        })
        .collect()
}

/// Checks the replies to concurrent copies of one delivery: each is an
/// ack or `409 update_in_flight` (an update claimed by another copy and not
/// done yet, so Meta delivers it again).
pub fn assert_in_flight_or_acked(replies: &[Reply]) {
    for reply in replies {
        let body: Value = serde_json::from_slice(&reply.body).expect("a JSON reply");
        match reply.status {
            200 => assert_eq!(body["ok"], true, "{body}"),
            409 => assert_eq!(body["error"]["code"], "update_in_flight", "{body}"),
            other => panic!("a concurrent copy answered {other}: {body}"),
        }
    }
}

pub fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A 200 from the fake Graph with this JSON body.
pub fn graph_ok(json: &str) -> GraphReply {
    GraphReply::Http {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json.as_bytes().to_vec(),
    }
}

/// Queues a text send with `Prefer: respond-async` (asserting the 202), then
/// reads its outbox item until it is no longer queued: bounded polling, no
/// timing asserted. Returns the item as last read.
pub fn queue_and_settle(
    executor: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> Value {
    let auth = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let mut queue = auth.clone();
    queue.push(("prefer".into(), "respond-async".into()));
    let body = br#"{"type":"text","to":"15551230000","text":"later"}"#.to_vec();
    let queued = executor.block_on(send(client, base, "POST", "/api/messages", &queue, body));
    assert_eq!(
        queued.status,
        202,
        "{}",
        String::from_utf8_lossy(&queued.body)
    );
    let (_, location) = queued
        .headers
        .iter()
        .find(|(name, _)| name == "location")
        .expect("a Location header");
    let mut item = Value::Null;
    for _ in 0..400 {
        let reply = executor.block_on(send(client, base, "GET", location, &auth, Vec::new()));
        assert_eq!(reply.status, 200);
        item = serde_json::from_slice(&reply.body).unwrap();
        if item["state"] != "queued" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    item
}
