//! Runs the conformance suite against the component in-process: the
//! wasmtime host's runtime with a scripted Graph, a collecting event sink, a
//! capturing log and a kv store that can be switched off.

mod support;

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::{
    assert_no_canaries, check, component_path, drain_limit, graph_replies, load_suites, prepare,
    run_suites, CapturedLog, CaseFaults, GraphCall, GraphReply, Observed, ShiftedClock, Suite,
};
use wats_host::kv::MemoryKv;
use wats_host::runtime::{OutboundError, OutgoingRequest, Request, Response, Runtime, Update};
use wats_host::services::{BoxFuture, EventSink, KvFailure, KvStore, Outbound, Services};

#[derive(Default)]
struct FakeGraph {
    base: String,
    replies: Mutex<VecDeque<GraphReply>>,
    calls: Mutex<Vec<GraphCall>>,
}

impl Outbound for FakeGraph {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        let path = request
            .url
            .strip_prefix(&self.base)
            .unwrap_or(&request.url)
            .to_owned();
        self.calls.lock().unwrap().push(GraphCall {
            method: request.method,
            path,
            headers: request.headers,
            body: request.body,
        });
        let reply = self.replies.lock().unwrap().pop_front();
        Box::pin(async move {
            match reply {
                Some(GraphReply::Http {
                    status,
                    headers,
                    body,
                }) => Ok(Response {
                    status,
                    headers,
                    body,
                }),
                Some(GraphReply::Timeout) => Err(OutboundError::Timeout),
                None => Err(OutboundError::Other("no reply scripted".into())),
            }
        })
    }
}

#[derive(Default)]
struct CollectedEvents {
    updates: Mutex<Vec<Value>>,
    failing_ids: Mutex<Vec<String>>,
}

impl EventSink for CollectedEvents {
    fn dispatch(&self, update: &Update) -> Result<(), String> {
        if update
            .id
            .as_ref()
            .is_some_and(|id| self.failing_ids.lock().unwrap().contains(id))
        {
            return Err("refused by the test".into());
        }
        let json: Value =
            serde_json::from_str(&update.json).map_err(|_| "update is not JSON".to_owned())?;
        assert_eq!(
            json["kind"].as_str(),
            Some(update.kind.as_str()),
            "record and JSON agree on kind"
        );
        self.updates.lock().unwrap().push(json);
        Ok(())
    }
}

/// Memory kv that fails every call while `down` is set, or acts as a host
/// without a store while `absent` is set.
struct SwitchableKv {
    inner: MemoryKv,
    down: AtomicBool,
    absent: AtomicBool,
}

impl SwitchableKv {
    fn check(&self) -> Result<(), KvFailure> {
        if self.absent.load(Ordering::SeqCst) {
            return Err(KvFailure::NotConfigured);
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(KvFailure::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

impl KvStore for SwitchableKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        self.check()?;
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvFailure> {
        self.check()?;
        self.inner.set(key, value, ttl)
    }
    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<bool, KvFailure> {
        self.check()?;
        self.inner.set_if_absent(key, value, ttl)
    }
    fn remove(&self, key: &str) -> Result<(), KvFailure> {
        self.check()?;
        self.inner.remove(key)
    }
    fn apply(&self, ops: &[wats::KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        self.check()?;
        self.inner.apply(ops)
    }
    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        self.check()?;
        self.inner.list(prefix, cursor, limit)
    }
}

struct Fakes {
    graph: Arc<FakeGraph>,
    events: Arc<CollectedEvents>,
    log: Arc<CapturedLog>,
    kv: Arc<SwitchableKv>,
    clock: Arc<ShiftedClock>,
    /// Every log line of the suite, for the canary sweep.
    suite_logs: Mutex<Vec<String>>,
}

impl Fakes {
    fn new(suite: &Suite) -> (Fakes, Services) {
        let clock = Arc::new(ShiftedClock::default());
        let fakes = Fakes {
            graph: Arc::new(FakeGraph {
                base: suite.settings["WATS_GRAPH_BASE_URL"].clone(),
                ..Default::default()
            }),
            events: Arc::default(),
            log: Arc::default(),
            kv: Arc::new(SwitchableKv {
                inner: MemoryKv::new(clock.clone()),
                down: AtomicBool::new(false),
                absent: AtomicBool::new(false),
            }),
            clock: clock.clone(),
            suite_logs: Mutex::default(),
        };
        let mut settings = suite.settings.clone();
        settings.insert("wats.runtime".into(), "wasmtime".into());
        let services = Services::new(
            settings,
            fakes.kv.clone(),
            fakes.graph.clone(),
            fakes.events.clone(),
            fakes.log.clone(),
            clock,
        );
        (fakes, services)
    }

    fn run_case(
        &self,
        runtime: &Runtime,
        executor: &tokio::runtime::Runtime,
        suite: &Suite,
        case: &Value,
    ) -> Result<(), String> {
        *self.graph.replies.lock().unwrap() = graph_replies(case).into();
        let faults = CaseFaults::of(case);
        self.kv.down.store(faults.kv_unavailable, Ordering::SeqCst);
        self.kv
            .absent
            .store(faults.kv_not_configured, Ordering::SeqCst);
        self.clock
            .offset_ms
            .fetch_add(faults.advance_clock_ms, Ordering::SeqCst);
        *self.events.failing_ids.lock().unwrap() = faults.dispatch_fails_for;
        let state_calls = || state_calls(&runtime.services().metrics.snapshot());
        let calls_before = state_calls();
        let response = if let Some(limit) = drain_limit(case) {
            // The scheduler export, as a host's timer calls it.
            let report: wats::DrainReport = executor
                .block_on(runtime.drain(limit))
                .map_err(|error| format!("drain failed: {error:#}"))?
                .into();
            Response {
                status: 200,
                headers: Vec::new(),
                body: report.to_json().to_string().into_bytes(),
            }
        } else {
            let prepared = prepare(case, suite);
            let request = Request {
                method: prepared.method,
                path_with_query: prepared.path,
                headers: prepared.headers,
                body: prepared.body,
            };
            executor
                .block_on(runtime.handle(request))
                .map_err(|error| format!("the component failed: {error:#}"))?
        };
        self.kv.down.store(false, Ordering::SeqCst);
        self.kv.absent.store(false, Ordering::SeqCst);
        self.events.failing_ids.lock().unwrap().clear();

        let lines = std::mem::take(&mut *self.log.0.lock().unwrap());
        let response_text = format!(
            "{:?} {}",
            response.headers,
            String::from_utf8_lossy(&response.body)
        );
        assert_no_canaries(
            &format!("response to {}", case["name"]),
            &response_text,
            &suite.secret_values(),
        );
        let observed = Observed {
            status: response.status,
            headers: response.headers,
            body: response.body,
            graph_calls: std::mem::take(&mut *self.graph.calls.lock().unwrap()),
            updates: std::mem::take(&mut *self.events.updates.lock().unwrap()),
            logs: Some(
                lines
                    .iter()
                    .map(|line| serde_json::from_str(line).expect("log lines are JSON"))
                    .collect(),
            ),
            state_calls: Some(state_calls() - calls_before),
        };
        self.suite_logs.lock().unwrap().extend(lines);
        check(case, suite, &observed)
    }
}

fn state_calls(snapshot: &[wats_host::runtime::Sample]) -> u64 {
    support::state_calls(snapshot.iter().map(|s| (s.name.as_str(), s.value)))
}

/// The component over a suite's fakes, and an executor to call it on.
fn loaded(suite: &Suite) -> (Runtime, tokio::runtime::Runtime) {
    let (_, runtime, executor) = loaded_with_fakes(suite);
    (runtime, executor)
}

fn loaded_with_fakes(suite: &Suite) -> (Fakes, Runtime, tokio::runtime::Runtime) {
    let (fakes, services) = Fakes::new(suite);
    let runtime = Runtime::load(&component_path(), services).expect("the component loads");
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (fakes, runtime, executor)
}

#[test]
fn conformance_suite_in_process() {
    let (base, suites) = load_suites();
    let (runtime, executor) = loaded(suites.first().expect("at least one suite"));
    run_suites("in-process", |suite, cases| {
        let (fakes, services) = Fakes::new(suite);
        let runtime = runtime.with_services(services);
        let mut results = Vec::new();
        for case in cases {
            let name = case["name"].as_str().unwrap_or("unnamed").to_owned();
            results.push((name, fakes.run_case(&runtime, &executor, suite, case)));
        }
        let mut private = base.private_values.clone();
        private.extend(suite.secret_values());
        let metrics: Vec<String> = runtime
            .services()
            .metrics
            .snapshot()
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.labels))
            .collect();
        assert_no_canaries(
            &format!("metrics of {}", suite.name),
            &metrics.join("\n"),
            &private,
        );
        let logs = fakes.suite_logs.lock().unwrap().join("\n");
        assert_no_canaries(&format!("logs of {}", suite.name), &logs, &private);
        results
    });
}

/// A warm instance serves the next request, and nothing of the request
/// before it shows: the service keeps no state in the guest between calls.
#[test]
fn warm_instances_serve_later_requests_and_keep_nothing_of_earlier_ones() {
    let (_, suites) = load_suites();
    let (suite, _) = support::signed_delivery(&suites);
    let (runtime, executor) = loaded(suite);
    let canary = "CANARY-WARM-INSTANCE-7f3a";
    let refused = executor
        .block_on(runtime.handle(Request {
            method: "POST".into(),
            path_with_query: "/api/messages/text".into(),
            headers: vec![("authorization".into(), format!("Bearer {canary}"))],
            body: format!(r#"{{"to":"15551230000","text":"{canary}"}}"#).into_bytes(),
        }))
        .unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(runtime.warm_instances(), 1, "kept warm after a clean call");
    let token = &suite.settings["WATS_SERVICE_BEARER_TOKEN"];
    for path in ["/status", "/metrics", "/debug/diagnostics"] {
        let response = executor
            .block_on(runtime.handle(Request {
                method: "GET".into(),
                path_with_query: path.into(),
                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                body: Vec::new(),
            }))
            .unwrap();
        assert_eq!(response.status, 200, "{path}");
        assert!(
            !String::from_utf8_lossy(&response.body).contains(canary),
            "{path} shows the earlier request"
        );
        assert_eq!(
            runtime.warm_instances(),
            1,
            "the same instance served {path}"
        );
    }
}

/// A host that cannot refuse to start (a Worker, a Spin app) hears which
/// setting is wrong on the first request that loads the settings: one
/// line per instance, with the key and the construction code, never the
/// value; `/readyz` keeps answering 503.
#[test]
fn a_bad_setting_is_logged_once_by_name() {
    let (_, suites) = load_suites();
    let suite = suites
        .iter()
        .find(|suite| suite.name == "invalid configuration")
        .expect("tests/conformance/config.json");
    let (fakes, runtime, executor) = loaded_with_fakes(suite);
    for _ in 0..3 {
        let response = executor
            .block_on(runtime.handle(Request {
                method: "GET".into(),
                path_with_query: "/readyz".into(),
                headers: Vec::new(),
                body: Vec::new(),
            }))
            .unwrap();
        assert_eq!(response.status, 503);
    }
    assert_eq!(runtime.warm_instances(), 1, "one instance served them all");
    let logs = fakes.log.0.lock().unwrap().clone();
    let faults: Vec<Value> = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["event"] == "wats.config.invalid")
        .collect();
    assert_eq!(
        faults,
        [serde_json::json!({
            "level": "error",
            "event": "wats.config.invalid",
            "key": "WATS_GRAPH_API_VERSION",
            "code": "invalid_config",
        })],
        "{logs:?}"
    );
}
