//! The conformance suite of `tests/conformance/` as data, and what all of
//! its runners share (the component natively, under wasmtime, and each host
//! over HTTP): loading the suites, preparing requests (signing webhooks),
//! matching expectations, and the privacy sweep with canary values.

pub mod process;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The workspace root (this crate is `tests/suite`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub struct Base {
    pub settings: Map<String, Value>,
    pub private_values: Vec<String>,
}

pub struct Suite {
    pub name: String,
    pub settings: HashMap<String, String>,
    pub cases: Vec<Value>,
    /// Why the suite runs only in-process, when it does.
    pub in_process_only: Option<String>,
    /// Values earlier cases captured (`expect.capture`), for `{{name}}` in
    /// later paths.
    pub vars: std::cell::RefCell<HashMap<String, String>>,
}

impl Suite {
    /// Values that must never leave the service in any response.
    pub fn secret_values(&self) -> Vec<String> {
        [
            "WATS_ACCESS_TOKEN",
            "WATS_APP_SECRET",
            "WATS_VERIFY_TOKEN",
            "WATS_SERVICE_BEARER_TOKEN",
            "WATS_WABA_ID",
            "WATS_PHONE_NUMBER_ID",
        ]
        .iter()
        .filter_map(|key| self.settings.get(*key).cloned())
        .collect()
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub fn conformance_dir() -> PathBuf {
    workspace_root().join("tests/conformance")
}

/// Every suite file, in name order, with its settings merged over the base.
pub fn load_suites() -> (Base, Vec<Suite>) {
    let dir = conformance_dir();
    let base = read_json(&dir.join("settings.json"));
    let base = Base {
        settings: base["settings"]
            .as_object()
            .cloned()
            .expect("settings.json has settings"),
        private_values: base["privateValues"]
            .as_array()
            .expect("settings.json has privateValues")
            .iter()
            .map(|v| v.as_str().expect("strings").to_owned())
            .collect(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/conformance")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "json") && !path.ends_with("settings.json")
        })
        .collect();
    files.sort();
    let suites = files
        .iter()
        .map(|file| {
            let suite = read_json(file);
            let mut settings = base.settings.clone();
            for (key, value) in suite["settings"].as_object().cloned().unwrap_or_default() {
                settings.insert(key, value);
            }
            let settings = settings
                .into_iter()
                .filter_map(|(key, value)| value.as_str().map(|v| (key, v.to_owned())))
                .collect();
            Suite {
                name: suite["suite"].as_str().expect("suite name").to_owned(),
                settings,
                cases: suite["cases"].as_array().cloned().expect("cases"),
                in_process_only: suite["inProcessOnly"].as_str().map(str::to_owned),
                vars: Default::default(),
            }
        })
        .collect();
    (base, suites)
}

pub struct PreparedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Builds the request a case describes: body from `json`, `body`, `fixture`
/// or `bodyBytes`; `bearer` and `sign` computed from the suite's secrets.
pub fn prepare(case: &Value, suite: &Suite) -> PreparedRequest {
    let request = &case["request"];
    let mut body: Vec<u8> = if let Some(json) = request.get("json") {
        let mut json = json.clone();
        if let Some(repeat) = request.get("repeat") {
            let unit = repeat["unit"].as_str().expect("unit");
            let count = repeat["count"].as_u64().expect("count") as usize;
            json[repeat["field"].as_str().expect("field")] = Value::from(unit.repeat(count));
        }
        serde_json::to_vec(&json).expect("json")
    } else if let Some(text) = request.get("body").and_then(Value::as_str) {
        text.as_bytes().to_vec()
    } else if let Some(fixture) = request.get("fixture").and_then(Value::as_str) {
        std::fs::read(conformance_dir().join(fixture)).expect("fixture")
    } else if let Some(size) = request.get("bodyBytes").and_then(Value::as_u64) {
        vec![b'a'; size as usize]
    } else {
        Vec::new()
    };
    let mut headers = headers_of(request);
    match request.get("bearer") {
        Some(Value::Bool(true)) => headers.push((
            "authorization".into(),
            format!("Bearer {}", suite.settings["WATS_SERVICE_BEARER_TOKEN"]),
        )),
        Some(Value::String(token)) => {
            headers.push(("authorization".into(), format!("Bearer {token}")))
        }
        _ => {}
    }
    let secret = suite
        .settings
        .get("WATS_APP_SECRET")
        .cloned()
        .unwrap_or_default();
    match request.get("sign") {
        Some(Value::Bool(true)) => headers.push((
            "x-hub-signature-256".into(),
            format!("sha256={}", sign(&secret, &body)),
        )),
        Some(Value::String(how)) if how == "bare" => {
            headers.push(("x-hub-signature-256".into(), sign(&secret, &body)))
        }
        Some(Value::String(how)) if how == "tampered" => {
            headers.push((
                "x-hub-signature-256".into(),
                format!("sha256={}", sign(&secret, &body)),
            ));
            let last = body.len() - 2;
            body[last] ^= 0x01;
        }
        _ => {}
    }
    if let Some(signature) = request.get("signature").and_then(Value::as_str) {
        headers.push(("x-hub-signature-256".into(), signature.to_owned()));
    }
    PreparedRequest {
        method: request["method"].as_str().expect("method").to_owned(),
        path: suite.vars.borrow().iter().fold(
            request["path"].as_str().expect("path").to_owned(),
            |path, (name, value)| path.replace(&format!("{{{{{name}}}}}"), value),
        ),
        headers,
        body,
    }
}

/// The `headers` object of a request or reply, plus a JSON content type
/// when the body is given as `json`.
fn headers_of(message: &Value) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = message["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("header").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if message.get("json").is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    headers
}

/// What a case asks of the host before its request: a failing or absent
/// store, updates the application refuses, a clock moved forward.
pub struct CaseFaults {
    pub kv_unavailable: bool,
    pub kv_not_configured: bool,
    /// Ids of the updates whose dispatch fails.
    pub dispatch_fails_for: Vec<String>,
    pub advance_clock_ms: u64,
}

impl CaseFaults {
    pub fn of(case: &Value) -> CaseFaults {
        let faults = &case["faults"];
        CaseFaults {
            kv_unavailable: faults["kvUnavailable"].as_bool().unwrap_or(false),
            kv_not_configured: faults["kvNotConfigured"].as_bool().unwrap_or(false),
            dispatch_fails_for: faults["dispatchFailsFor"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .map(|id| id.as_str().expect("ids are strings").to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            advance_clock_ms: case["advanceClockMs"].as_u64().unwrap_or(0),
        }
    }
}

/// The limit of the outbox drain a case runs instead of a request.
pub fn drain_limit(case: &Value) -> Option<u32> {
    case["request"]["drain"]
        .as_u64()
        .map(|limit| u32::try_from(limit).expect("a drain limit fits u32"))
}

#[derive(Clone, Debug)]
pub enum GraphReply {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Timeout,
}

pub fn graph_replies(case: &Value) -> Vec<GraphReply> {
    case["graph"]
        .as_array()
        .map(|replies| {
            replies
                .iter()
                .map(|reply| {
                    if reply.get("transport").is_some() {
                        return GraphReply::Timeout;
                    }
                    let body = match (reply.get("json"), reply.get("body").and_then(Value::as_str))
                    {
                        (Some(json), _) => serde_json::to_vec(json).expect("json"),
                        (None, Some(text)) => text.as_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    let headers = headers_of(reply);
                    GraphReply::Http {
                        status: reply["status"].as_u64().expect("status") as u16,
                        headers,
                        body,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One request the service made to Graph; `path` is what follows the base URL.
pub struct GraphCall {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a runner saw for one case.
pub struct Observed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub graph_calls: Vec<GraphCall>,
    pub updates: Vec<Value>,
    /// Log lines as JSON objects, where the runner can attribute them to the case.
    pub logs: Option<Vec<Value>>,
    /// The calls the service made to its state store during the case (its
    /// `persistence_operations_total`), where the runner counts them.
    pub state_calls: Option<u64>,
}

/// The metric that counts each call to the state store.
const STATE_CALLS_METRIC: &str = "persistence_operations_total";

/// The state store calls in a metrics snapshot, given as (name, value).
pub fn state_calls<'a>(samples: impl IntoIterator<Item = (&'a str, f64)>) -> u64 {
    let calls = samples
        .into_iter()
        .filter(|(name, _)| *name == STATE_CALLS_METRIC);
    calls.map(|(_, value)| value).sum::<f64>() as u64
}

const ABSENT: &str = "<absent>";
const ANY: &str = "<any>";

/// Where `actual` fails to contain `expected`: objects by their listed keys,
/// arrays element by element with equal length, `<absent>` and `<any>`.
pub fn subset_mismatch(expected: &Value, actual: Option<&Value>, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::String(s), None) if s == ABSENT => None,
        (Value::String(s), Some(_)) if s == ABSENT => Some(format!("{at}: expected no value")),
        (_, None) => Some(format!("{at}: missing")),
        (Value::String(s), Some(_)) if s == ANY => None,
        (Value::Object(want), Some(Value::Object(have))) => want
            .iter()
            .find_map(|(key, value)| subset_mismatch(value, have.get(key), &format!("{at}.{key}"))),
        (Value::Array(want), Some(Value::Array(have))) => {
            if want.len() != have.len() {
                return Some(format!(
                    "{at}: expected {} items, got {}",
                    want.len(),
                    have.len()
                ));
            }
            want.iter()
                .zip(have)
                .enumerate()
                .find_map(|(i, (w, h))| subset_mismatch(w, Some(h), &format!("{at}[{i}]")))
        }
        (Value::Number(want), Some(Value::Number(have))) if want.as_f64() == have.as_f64() => None,
        (want, Some(have)) if want == have => None,
        (want, Some(have)) => Some(format!("{at}: expected {want}, got {have}")),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every expectation of a case against what was observed; on success the
/// values named in `expect.capture` are kept for later cases.
pub fn check(case: &Value, suite: &Suite, observed: &Observed) -> Result<(), String> {
    // Captured values stand in for `{{name}}` in expectations too.
    let mut text = case.to_string();
    for (name, value) in suite.vars.borrow().iter() {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    let case: Value = serde_json::from_str(&text).expect("still JSON");
    let case = &case;
    check_expectations(case, observed)?;
    for (name, pointer) in case["expect"]["capture"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let body: Value =
            serde_json::from_slice(&observed.body).map_err(|_| "capture from a non-JSON body")?;
        let value = body
            .pointer(pointer.as_str().expect("a JSON pointer"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("nothing to capture at {pointer}"))?;
        suite.vars.borrow_mut().insert(name, value.to_owned());
    }
    Ok(())
}

fn check_expectations(case: &Value, observed: &Observed) -> Result<(), String> {
    let expect = &case["expect"];
    let body_text = String::from_utf8_lossy(&observed.body);
    let want_status = expect["status"].as_u64().expect("expect.status") as u16;
    if observed.status != want_status {
        return Err(format!(
            "status: expected {want_status}, got {} ({body_text})",
            observed.status
        ));
    }
    for (name, want) in expect["headers"].as_object().cloned().unwrap_or_default() {
        let have = header(&observed.headers, &name).map(|v| Value::from(v.to_owned()));
        if let Some(problem) = subset_mismatch(&want, have.as_ref(), &format!("header {name}")) {
            return Err(problem);
        }
    }
    if let Some(want) = expect.get("body").and_then(Value::as_str) {
        if body_text != want {
            return Err(format!("body: expected {want}, got {body_text}"));
        }
    }
    if let Some(want) = expect.get("json") {
        let have: Value = serde_json::from_slice(&observed.body)
            .map_err(|_| format!("body is not JSON: {body_text}"))?;
        if let Some(problem) = subset_mismatch(want, Some(&have), "body") {
            return Err(problem);
        }
    }
    for needle in expect["bodyContains"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let needle = needle.as_str().expect("string");
        if !body_text.contains(needle) {
            return Err(format!("body lacks {needle}: {body_text}"));
        }
    }
    for needle in expect["bodyExcludes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let needle = needle.as_str().expect("string");
        if body_text.contains(needle) {
            return Err(format!("body contains {needle}"));
        }
    }
    let want_calls = expect["graphCalls"].as_array().cloned().unwrap_or_default();
    if want_calls.len() != observed.graph_calls.len() {
        return Err(format!(
            "expected {} Graph calls, got {}",
            want_calls.len(),
            observed.graph_calls.len()
        ));
    }
    for (want, call) in want_calls.iter().zip(&observed.graph_calls) {
        let mut have = serde_json::json!({ "method": call.method, "path": call.path });
        have["headers"] = call
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::from(v.clone())))
            .collect::<Map<_, _>>()
            .into();
        have["json"] = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
        if let Some(problem) = subset_mismatch(want, Some(&have), "graphCall") {
            return Err(problem);
        }
    }
    let want_updates = expect["updates"].as_array().cloned().unwrap_or_default();
    if let Some(problem) = subset_mismatch(
        &Value::Array(want_updates),
        Some(&Value::Array(observed.updates.clone())),
        "updates",
    ) {
        return Err(problem);
    }
    if let (Some(want), Some(made)) = (expect["stateCalls"].as_u64(), observed.state_calls) {
        if want != made {
            return Err(format!("{made} state calls, expected {want}"));
        }
    }
    if let (Some(want_logs), Some(logs)) = (expect["logs"].as_array(), &observed.logs) {
        for want in want_logs {
            if !logs
                .iter()
                .any(|line| subset_mismatch(want, Some(line), "log").is_none())
            {
                return Err(format!("no log line like {want} in {logs:?}"));
            }
        }
    }
    Ok(())
}

/// Fails when any canary appears in `text` (logs, metrics, output).
pub fn assert_no_canaries(what: &str, text: &str, canaries: &[String]) {
    for canary in canaries.iter().filter(|c| !c.is_empty()) {
        assert!(
            !text.contains(canary.as_str()),
            "{what} contains a private value (one of the canaries)"
        );
    }
}

/// Runs every case of every suite through `run` and reports all failures.
pub fn run_suites(
    runner: &str,
    mut run: impl FnMut(&Suite, &[Value]) -> Vec<(String, Result<(), String>)>,
) {
    let (_, suites) = load_suites();
    let mut passed = 0;
    let mut failures = Vec::new();
    for suite in &suites {
        for (case, result) in run(suite, &suite.cases) {
            match result {
                Ok(()) => passed += 1,
                Err(problem) => failures.push(format!("{} :: {case}: {problem}", suite.name)),
            }
        }
    }
    println!(
        "{runner}: {passed} conformance cases passed, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{runner} conformance failures:\n{}",
        failures.join("\n")
    );
}

/// The suite whose name starts with `prefix`.
pub fn suite<'a>(suites: &'a [Suite], prefix: &str) -> &'a Suite {
    suites
        .iter()
        .find(|suite| suite.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no suite named {prefix}…"))
}

/// The signed batched delivery (6 updates) of the signatures suite, with
/// that suite's settings.
pub fn signed_delivery(suites: &[Suite]) -> (&Suite, PreparedRequest) {
    let suite = suite(suites, "webhook deliveries: signatures");
    let case = suite
        .cases
        .iter()
        .find(|case| case["request"]["sign"] == Value::Bool(true))
        .expect("a signed case");
    (suite, prepare(case, suite))
}
