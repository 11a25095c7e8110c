//! A fake Graph API on loopback with just enough state for every phase:
//! the WABA and its phone number, templates, Flows, media (with a download
//! URL and Meta's hex digest), sends and calls, plus a webhook receiver
//! that checks the challenge and the signature. It refuses a wrong token
//! as Graph does (190) and can be told to fail one call.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One call to fail: the first request whose method and path match.
pub struct Failure {
    pub method: &'static str,
    pub path_contains: &'static str,
    pub status: u16,
    pub code: i64,
}

#[derive(Default)]
pub struct State {
    pub token: String,
    pub waba: String,
    pub phone: String,
    pub app_secret: String,
    pub verify_token: String,
    next_id: u64,
    /// id → (name, status)
    pub templates: BTreeMap<String, (String, String)>,
    pub flows: BTreeMap<String, (String, String)>,
    pub media: BTreeMap<String, Vec<u8>>,
    pub calls: BTreeSet<String>,
    pub messages_sent: usize,
    /// Method and path (no query) of every request, in order.
    pub requests: Vec<(String, String)>,
    /// Whether any request asked for SIP credentials.
    pub sip_credentials_requested: bool,
    pub webhook_deliveries: usize,
    pub fail: Option<Failure>,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 700_000_000_000_000 + self.next_id)
    }
}

pub struct FakeGraph {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A template and a Flow the account already has: the run must not touch them.
pub const EXISTING_TEMPLATE: &str = "900000000000001";
pub const EXISTING_FLOW: &str = "910000000000001";

impl FakeGraph {
    pub fn start(
        token: &str,
        waba: &str,
        phone: &str,
        app_secret: &str,
        verify_token: &str,
    ) -> FakeGraph {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let mut state = State {
            token: token.into(),
            waba: waba.into(),
            phone: phone.into(),
            app_secret: app_secret.into(),
            verify_token: verify_token.into(),
            ..State::default()
        };
        state.templates.insert(
            EXISTING_TEMPLATE.into(),
            ("hello_world".into(), "APPROVED".into()),
        );
        state.flows.insert(
            EXISTING_FLOW.into(),
            ("existing_flow".into(), "PUBLISHED".into()),
        );
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, base) = (state.clone(), stop.clone(), base_url.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &state, &base);
                    }
                }
            })
        };
        FakeGraph {
            base_url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.base_url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Incoming {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Incoming> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), wats::percent_decode(v).unwrap_or_default()))
        .collect();
    Some(Incoming {
        method,
        path: path.to_owned(),
        query,
        headers,
        body,
    })
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, base: &str) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let (status, content_type, body) = handle(&mut state.lock().unwrap(), &request, base);
    let head = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

fn graph_error(status: u16, code: i64) -> (u16, &'static str, Vec<u8>) {
    let body = json!({"error": {"message": "fake", "type": "OAuthException", "code": code, "fbtrace_id": "FakeTrace1"}});
    (status, "application/json", body.to_string().into_bytes())
}

fn ok(value: Value) -> (u16, &'static str, Vec<u8>) {
    (200, "application/json", value.to_string().into_bytes())
}

fn handle(state: &mut State, request: &Incoming, base: &str) -> (u16, &'static str, Vec<u8>) {
    state
        .requests
        .push((request.method.clone(), request.path.clone()));
    if request.path == "/webhook" {
        return webhook(state, request);
    }
    let authorized = request.headers.get("authorization").map(String::as_str)
        == Some(&format!("Bearer {}", state.token));
    if !authorized {
        return graph_error(401, 190);
    }
    if let Some(failure) = &state.fail {
        if failure.method == request.method && request.path.contains(failure.path_contains) {
            let (status, code) = (failure.status, failure.code);
            state.fail = None;
            return graph_error(status, code);
        }
    }
    if let Some(id) = request.path.strip_prefix("/download/") {
        return match state.media.get(id) {
            Some(bytes) => (200, "application/octet-stream", bytes.clone()),
            None => graph_error(404, 100),
        };
    }
    let segments: Vec<&str> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .skip(1)
        .collect();
    let (waba, phone) = (state.waba.clone(), state.phone.clone());
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", [id]) if *id == waba => {
            ok(json!({"id": waba, "name": "Fake WABA", "currency": "USD"}))
        }
        ("GET", [id, "subscribed_apps"]) if *id == waba => {
            ok(json!({"data": [{"whatsapp_business_api_data": {"id": "1", "name": "app"}}]}))
        }
        ("GET", [id, "phone_numbers"]) if *id == waba => {
            ok(json!({"data": [{"id": phone, "quality_rating": "GREEN"}]}))
        }
        ("GET", [id]) if *id == phone => {
            ok(json!({"id": phone, "quality_rating": "GREEN", "verified_name": "Fake"}))
        }
        ("GET", [id, "settings"]) if *id == phone => {
            if request.query.contains_key("include_sip_credentials") {
                state.sip_credentials_requested = true;
            }
            ok(json!({"calling": {"status": "ENABLED"}}))
        }
        ("GET", [id, "whatsapp_business_profile"]) if *id == phone => {
            ok(json!({"data": [{"about": "fake"}]}))
        }
        ("GET", [id, "whatsapp_commerce_settings"]) if *id == phone => ok(json!({"data": []})),
        ("GET", [id, "message_templates"]) if *id == waba => {
            let name = request.query.get("name");
            let data: Vec<Value> = state
                .templates
                .iter()
                .filter(|(_, (n, _))| name.is_none_or(|name| name == n))
                .map(|(id, (name, status))| json!({"id": id, "name": name, "status": status}))
                .collect();
            ok(json!({"data": data}))
        }
        ("POST", [id, "message_templates"]) if *id == waba => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let id = state.id();
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            state
                .templates
                .insert(id.clone(), (name, "APPROVED".into()));
            ok(json!({"id": id, "status": "APPROVED", "category": body["category"]}))
        }
        ("DELETE", [id, "message_templates"]) if *id == waba => {
            let id = request.query.get("hsm_id").cloned().unwrap_or_default();
            let matches = state
                .templates
                .get(&id)
                .is_some_and(|(name, _)| Some(name) == request.query.get("name"));
            if matches && state.templates.remove(&id).is_some() {
                ok(json!({"success": true}))
            } else {
                graph_error(400, 100)
            }
        }
        ("GET", [id, "flows"]) if *id == waba => {
            let data: Vec<Value> = state
                .flows
                .iter()
                .map(|(id, (name, status))| json!({"id": id, "name": name, "status": status}))
                .collect();
            ok(json!({"data": data}))
        }
        ("POST", [id, "flows"]) if *id == waba => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let id = state.id();
            state.flows.insert(
                id.clone(),
                (
                    body["name"].as_str().unwrap_or_default().into(),
                    "DRAFT".into(),
                ),
            );
            ok(json!({"id": id}))
        }
        ("POST", [id, "media"]) if *id == phone => {
            let content_type = request
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_default();
            let Some(bytes) = multipart_file(&content_type, &request.body) else {
                return graph_error(400, 100);
            };
            let id = state.id();
            state.media.insert(id.clone(), bytes);
            ok(json!({"id": id}))
        }
        ("POST", [id, "messages"]) if *id == phone => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            if body["status"] == "read" {
                return ok(json!({"success": true}));
            }
            state.messages_sent += 1;
            let id = format!("wamid.FAKE{}", state.id());
            ok(
                json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}], "messages": [{"id": id}]}),
            )
        }
        ("POST", [id, "calls"]) if *id == phone => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            match body["action"].as_str() {
                Some("connect") => {
                    let id = format!("wacid.FAKE{}", state.id());
                    state.calls.insert(id.clone());
                    ok(json!({"messaging_product": "whatsapp", "calls": [{"id": id}]}))
                }
                Some("terminate")
                    if state
                        .calls
                        .remove(body["call_id"].as_str().unwrap_or_default()) =>
                {
                    ok(json!({"success": true}))
                }
                _ => graph_error(400, 100),
            }
        }
        ("GET", [id])
        | ("GET", [id, _])
        | ("POST", [id])
        | ("POST", [id, _])
        | ("DELETE", [id]) => object(state, method, id, segments.get(1).copied(), base),
        _ => graph_error(400, 100),
    }
}

/// Calls on a template, Flow or media object by its id.
fn object(
    state: &mut State,
    method: &str,
    id: &str,
    action: Option<&str>,
    base: &str,
) -> (u16, &'static str, Vec<u8>) {
    if let Some((name, status)) = state.templates.get(id).cloned() {
        return match (method, action) {
            ("GET", None) => {
                ok(json!({"id": id, "name": name, "status": status, "category": "UTILITY"}))
            }
            ("POST", None) => ok(json!({"success": true})),
            _ => graph_error(400, 100),
        };
    }
    if let Some((name, status)) = state.flows.get(id).cloned() {
        let draft = status == "DRAFT";
        return match (method, action) {
            ("GET", None) => ok(json!({"id": id, "name": name, "status": status})),
            ("GET", Some("assets")) => {
                ok(json!({"data": [{"name": "flow.json", "asset_type": "FLOW_JSON"}]}))
            }
            ("POST", None | Some("assets")) if draft => {
                ok(json!({"success": true, "validation_errors": []}))
            }
            ("POST", Some("publish")) if draft => {
                state.flows.insert(id.into(), (name, "PUBLISHED".into()));
                ok(json!({"success": true}))
            }
            ("DELETE", None) if draft => {
                state.flows.remove(id);
                ok(json!({"success": true}))
            }
            _ => graph_error(400, 100),
        };
    }
    if let Some(bytes) = state.media.get(id).cloned() {
        return match (method, action) {
            ("GET", None) => ok(json!({
                "id": id,
                "url": format!("{base}/download/{id}?sig=fake-signature"),
                "mime_type": "image/png",
                "sha256": hex::encode(Sha256::digest(&bytes)),
                "file_size": bytes.len(),
                "messaging_product": "whatsapp",
            })),
            ("DELETE", None) => {
                state.media.remove(id);
                ok(json!({"success": true}))
            }
            _ => graph_error(400, 100),
        };
    }
    graph_error(404, 100)
}

/// The file part of a multipart body.
fn multipart_file(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = content_type.split("boundary=").nth(1)?;
    let marker = format!("--{boundary}");
    let text = body;
    let start = find(text, b"name=\"file\"")?;
    let data_start = start + find(&text[start..], b"\r\n\r\n")? + 4;
    let end = data_start + find(&text[data_start..], format!("\r\n{marker}").as_bytes())?;
    Some(text[data_start..end].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The operator's public webhook, as far as the passive phase can see it.
fn webhook(state: &mut State, request: &Incoming) -> (u16, &'static str, Vec<u8>) {
    match request.method.as_str() {
        "GET" => {
            let verified = request.query.get("hub.mode").map(String::as_str) == Some("subscribe")
                && request.query.get("hub.verify_token") == Some(&state.verify_token);
            match request.query.get("hub.challenge") {
                Some(challenge) if verified => (200, "text/plain", challenge.clone().into_bytes()),
                _ => (403, "text/plain", Vec::new()),
            }
        }
        _ => {
            let signature = request
                .headers
                .get("x-hub-signature-256")
                .map(String::as_str);
            if wats::signature_valid(&state.app_secret, signature, &request.body) {
                state.webhook_deliveries += 1;
                ok(json!({"ok": true}))
            } else {
                (401, "application/json", Vec::new())
            }
        }
    }
}
