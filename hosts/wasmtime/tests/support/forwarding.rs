//! What every host must show over HTTP: the conformance suites with a
//! canary sweep of its output; and, for the hosts that forward updates to
//! `WATS_EVENTS_FORWARD_URL` (the Worker, the Spin component, the jco
//! package), duplicate deliveries and sends racing, and a queued send
//! delivered right after its 202. A host test supplies only how to start
//! the host.

use super::http::{
    assert_in_flight_or_acked, executor, graph_ok, json_acks, queue_and_settle, run_cases, send,
    send_concurrently, start_fake_graph, GraphScript, EVENTS_SECRET,
};
use super::{assert_no_canaries, load_suites, run_suites, signed_delivery, suite, PreparedRequest};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A host process serving at `base`; `stop` ends it and returns the output
/// to sweep for canaries. Its dispatched updates arrive at the fake Graph's
/// `/__events`, unless `updates` reads them from elsewhere.
pub struct Running {
    pub base: String,
    stop: Box<dyn FnOnce() -> String>,
    updates: Option<Box<dyn Fn() -> Vec<Value>>>,
}

impl Running {
    pub fn new(base: String, stop: impl FnOnce() -> String + 'static) -> Running {
        Running {
            base,
            stop: Box::new(stop),
            updates: None,
        }
    }

    /// For a host that hands updates to something other than the forward
    /// URL (`wats serve --events-out`).
    pub fn reading_updates(mut self, updates: impl Fn() -> Vec<Value> + 'static) -> Running {
        self.updates = Some(Box::new(updates));
        self
    }

    pub fn stop(self) -> String {
        (self.stop)()
    }
}

/// Starts the host with these settings, its files under the directory.
pub type Start<'a> = &'a dyn Fn(&HashMap<String, String>, &Path) -> Running;

fn scratch_dir(label: &str, name: &str) -> PathBuf {
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!("wats-{label}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn forwarding_settings(
    settings: &HashMap<String, String>,
    graph: SocketAddr,
) -> HashMap<String, String> {
    let mut settings = settings.clone();
    settings.insert("WATS_GRAPH_BASE_URL".into(), format!("http://{graph}"));
    settings.insert(
        "WATS_EVENTS_FORWARD_URL".into(),
        format!("http://{graph}/__events"),
    );
    settings.insert("WATS_EVENTS_SIGNING_SECRET".into(), EVENTS_SECRET.into());
    settings
}

/// Every suite that needs no in-process fault injection, one host per suite.
pub fn conformance_suites(label: &str, start: Start) {
    let (base, _) = load_suites();
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let client = reqwest::Client::new();
    let dir = scratch_dir(label, "suites");
    let mut skipped = Vec::new();
    run_suites(label, |suite, cases| {
        if let Some(reason) = &suite.in_process_only {
            skipped.push(format!("{} ({reason})", suite.name));
            return Vec::new();
        }
        let suite_dir = dir.join(suite.name.replace(|c: char| !c.is_alphanumeric(), "-"));
        std::fs::create_dir_all(&suite_dir).unwrap();
        script.lock().unwrap().clear_events();
        let host = start(&forwarding_settings(&suite.settings, graph), &suite_dir);
        let updates = || match &host.updates {
            Some(read) => read(),
            None => script.lock().unwrap().events.clone(),
        };
        let results = run_cases(
            &executor, &client, &host.base, &script, suite, cases, &updates,
        );
        let output = host.stop();
        let mut private = base.private_values.clone();
        private.extend(suite.secret_values());
        assert_no_canaries(
            &format!("{label} output for {}", suite.name),
            &output,
            &private,
        );
        results
    });
    println!(
        "skipped in {label} (covered in-process): {}",
        skipped.join("; ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 8 copies of one signed delivery dispatch each update once, and 8 sends
/// with one Idempotency-Key make one Graph call, all at once.
pub fn duplicate_deliveries_and_sends_race(label: &str, start: Start) {
    let (_, suites) = load_suites();
    let (suite, delivery) = signed_delivery(&suites);
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    // One Graph reply only: a second send would get the fake's 418.
    script.lock().unwrap().replies =
        vec![graph_ok(r#"{"messages":[{"id":"wamid.ONCE1"}]}"#)].into();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let settings = forwarding_settings(&suite.settings, graph);
    let dir = scratch_dir(label, "race");
    let host = start(&settings, &dir);
    let client = reqwest::Client::new();
    const COPIES: usize = 8;
    let token = settings["WATS_SERVICE_BEARER_TOKEN"].clone();
    let same_key = PreparedRequest {
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
            send_concurrently(&client, &host.base, &delivery, COPIES),
            send_concurrently(&client, &host.base, &same_key, COPIES),
        )
    });
    // Meta's retry of the copies that were told to come back: every
    // update is done by now, so it is all duplicates.
    let retry = executor.block_on(send(
        &client,
        &host.base,
        &delivery.method,
        &delivery.path,
        &delivery.headers,
        delivery.body.clone(),
    ));
    let retry = &json_acks(&[retry])[0];
    let received = retry["received"].as_u64().expect("received");
    // The events go out from the host's queue after its answers.
    let arrived = || script.lock().unwrap().events.len() as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while arrived() < received && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    host.stop();
    assert_in_flight_or_acked(&deliveries);
    assert_eq!(retry["duplicates"].as_u64(), Some(received), "{retry}");
    assert_eq!(arrived(), received, "each update reaches the endpoint once");
    assert_eq!(
        script.lock().unwrap().unsigned_events,
        0,
        "every event verifies"
    );
    let sends: Vec<u16> = sends.iter().map(|reply| reply.status).collect();
    let graph_sends = script.lock().unwrap().calls.len();
    assert_eq!(graph_sends, 1, "one Graph call for one Idempotency-Key");
    assert!(sends.contains(&200), "one send succeeds: {sends:?}");
    assert!(
        sends.iter().all(|s| *s == 200 || *s == 409),
        "the others replay or wait: {sends:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With no timer running, only the drain after the 202 can send it.
pub fn queued_send_goes_out_after_the_202(label: &str, start: Start) {
    let (_, suites) = load_suites();
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    script.lock().unwrap().replies =
        vec![graph_ok(r#"{"messages":[{"id":"wamid.QUEUED1"}]}"#)].into();
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let settings = forwarding_settings(&suite(&suites, "POST /api/messages:").settings, graph);
    let dir = scratch_dir(label, "queued");
    let host = start(&settings, &dir);
    let client = reqwest::Client::new();
    let token = &settings["WATS_SERVICE_BEARER_TOKEN"];
    let item = queue_and_settle(&executor, &client, &host.base, token);
    host.stop();
    assert_eq!(item["state"], "sent", "{item}");
    assert_eq!(item["waMessageId"], "wamid.QUEUED1");
    assert_eq!(script.lock().unwrap().calls.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two endpoints that fail on purpose (one refuses the first attempt of
/// every event, one of about 30%): 50 distinct deliveries of 6 updates are
/// all answered 200 all the same, and in the end each update reaches each
/// endpoint, each `webhook-id` accepted once per endpoint, signed; the
/// retried events show in `GET {prefix}/events/deliveries`. A host without
/// a timer is drained as a cron would, with `POST {prefix}/drain`.
pub fn events_survive_failing_endpoints(label: &str, start: Start) {
    const DELIVERIES: usize = 50;
    let EventsRun {
        executor,
        script,
        settings,
        delivery,
        bearer,
    } = events_run(|graph| {
        format!("http://{graph}/__events/down-first, http://{graph}/__events/flaky")
    });
    let dir = scratch_dir(label, "failing-endpoints");
    let host = start(&settings, &dir);
    let client = reqwest::Client::new();
    let (answers, updates) = post_distinct(
        &executor, &client, &host.base, &settings, &delivery, "D", DELIVERIES,
    );
    let arrived = |endpoint: &str| arrived_in(&script.lock().unwrap(), endpoint);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (arrived("down-first") < updates || arrived("flaky") < updates)
        && std::time::Instant::now() < deadline
    {
        executor.block_on(send(
            &client,
            &host.base,
            "POST",
            "/api/drain",
            &bearer,
            Vec::new(),
        ));
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let delivered = executor.block_on(send(
        &client,
        &host.base,
        "GET",
        "/api/events/deliveries?state=delivered&limit=100",
        &bearer,
        Vec::new(),
    ));
    let output = host.stop();
    assert!(answers.iter().all(|status| *status == 200), "{answers:?}");
    assert_eq!(updates, DELIVERIES * 6);
    let script = script.lock().unwrap();
    for endpoint in ["down-first", "flaky"] {
        assert_eq!(
            arrived_in(&script, endpoint),
            updates,
            "every update at {endpoint}"
        );
    }
    assert_eq!(
        script.endpoint_refusals["down-first"], updates,
        "one refusal per event"
    );
    let flaky = script.endpoint_refusals["flaky"];
    assert!(
        updates / 5 < flaky && flaky < updates * 2 / 5,
        "about 30%: {flaky}"
    );
    assert_eq!(script.unsigned_events, 0, "every event verifies");
    let page: Value = serde_json::from_slice(&delivered.body).expect("a JSON page");
    let retried = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["attempts"].as_u64() >= Some(2))
        .count();
    assert!(retried > 0, "retried events are listed: {page}");
    assert_no_secrets(label, &output, &settings);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fake Graph that also plays the application's endpoints, and the
/// suite's settings with `WATS_EVENTS_ENDPOINTS` (given the Graph's
/// address) in place of the forward URL.
struct EventsRun {
    executor: tokio::runtime::Runtime,
    script: Arc<Mutex<GraphScript>>,
    settings: HashMap<String, String>,
    delivery: PreparedRequest,
    /// The service token, as the operator routes take it.
    bearer: [(String, String); 1],
}

fn events_run(endpoints: impl FnOnce(SocketAddr) -> String) -> EventsRun {
    let (_, suites) = load_suites();
    let (suite, delivery) = signed_delivery(&suites);
    let executor = executor();
    let script = Arc::new(Mutex::new(GraphScript::default()));
    let graph = executor.block_on(start_fake_graph(script.clone()));
    let mut settings = forwarding_settings(&suite.settings, graph);
    settings.remove("WATS_EVENTS_FORWARD_URL");
    settings.insert("WATS_EVENTS_ENDPOINTS".into(), endpoints(graph));
    let bearer = [(
        "authorization".to_owned(),
        format!("Bearer {}", settings["WATS_SERVICE_BEARER_TOKEN"]),
    )];
    EventsRun {
        executor,
        script,
        settings,
        delivery,
        bearer,
    }
}

/// Fails if the host's output holds any of its secret settings.
fn assert_no_secrets(label: &str, output: &str, settings: &HashMap<String, String>) {
    let secrets: Vec<String> = settings
        .iter()
        .filter(|(key, _)| wats::config::is_secret(key))
        .map(|(_, value)| value.clone())
        .collect();
    assert_no_canaries(&format!("{label} output"), output, &secrets);
}

/// Posts `count` distinct copies of the signed fixture delivery (its
/// WAMIDs marked `marker` and a number); returns each answer's status and
/// how many updates the host said it dispatched.
fn post_distinct(
    executor: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    settings: &HashMap<String, String>,
    delivery: &PreparedRequest,
    marker: &str,
    count: usize,
) -> (Vec<u16>, usize) {
    let body = String::from_utf8(delivery.body.clone()).expect("a JSON fixture");
    let mut answers = Vec::new();
    let mut updates = 0;
    for n in 0..count {
        let distinct = body.replace("wamid.HBgL", &format!("wamid.{marker}{n:03}"));
        let signature = wats::sign(&settings["WATS_APP_SECRET"], distinct.as_bytes());
        let headers = [("x-hub-signature-256".to_owned(), signature)];
        let reply = executor.block_on(send(
            client,
            base,
            "POST",
            &delivery.path,
            &headers,
            distinct.into_bytes(),
        ));
        updates += json_acks(std::slice::from_ref(&reply))[0]["dispatched"]
            .as_u64()
            .unwrap_or(0) as usize;
        answers.push(reply.status);
    }
    (answers, updates)
}

fn arrived_in(script: &GraphScript, endpoint: &str) -> usize {
    script.endpoint_events.get(endpoint).map_or(0, Vec::len)
}

/// A Cloudflare Queue as an endpoint (`queue:NAME`): 10 distinct
/// deliveries of 6 updates, and each update reaches the queue's consumer
/// Worker (which POSTs each message to the fake Graph's `/__queue`) with
/// its `webhook-id` inside, once per update; the endpoint is listed by its
/// binding name.
pub fn events_reach_a_cloudflare_queue(label: &str, start: Start) {
    const DELIVERIES: usize = 10;
    let EventsRun {
        executor,
        script,
        settings,
        delivery,
        bearer,
    } = events_run(|_| "queue:WATS_EVENTS_QUEUE".into());
    let dir = scratch_dir(label, "queue-endpoint");
    let host = start(&settings, &dir);
    let client = reqwest::Client::new();
    let (answers, updates) = post_distinct(
        &executor, &client, &host.base, &settings, &delivery, "Q", DELIVERIES,
    );
    let distinct_ids = |script: &GraphScript| {
        let mut ids: Vec<&str> = script
            .queue_messages
            .iter()
            .filter_map(|message| message["webhookId"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    // The Durable Object's alarm drains the events; the queue hands them
    // to its consumer in batches. Bounded: a minute at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while distinct_ids(&script.lock().unwrap()) < updates && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let endpoints = executor.block_on(send(
        &client,
        &host.base,
        "GET",
        "/api/events/endpoints",
        &bearer,
        Vec::new(),
    ));
    let output = host.stop();
    assert!(answers.iter().all(|status| *status == 200), "{answers:?}");
    assert_eq!(updates, DELIVERIES * 6);
    let script = script.lock().unwrap();
    assert_eq!(distinct_ids(&script), updates, "every update in the queue");
    for message in &script.queue_messages {
        let id = message["webhookId"].as_str().unwrap_or_default();
        assert!(id.starts_with("evt_") && id.len() == 36, "{message}");
        assert!(message["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("whatsapp.")));
        assert!(message["data"]["kind"].is_string(), "{message}");
    }
    let endpoints: Value = serde_json::from_slice(&endpoints.body).expect("a JSON body");
    assert_eq!(
        endpoints["endpoints"][0]["host"], "queue:WATS_EVENTS_QUEUE",
        "{endpoints}"
    );
    assert_no_secrets(label, &output, &settings);
    let _ = std::fs::remove_dir_all(&dir);
}
