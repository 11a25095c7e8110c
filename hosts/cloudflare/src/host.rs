//! The service's host interface over the Workers runtime.

use crate::store::StateClient;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use wats::outbox::DrainReport;
use wats::{
    Host, KvError, KvPage, Level, OutboundError, OutgoingRequest, Response, Sample, Update,
};
use worker::{js_sys, Date, Env, Fetch, Headers, Method, Request, RequestInit};

/// The Durable Object namespace that holds the service's state.
pub const STATE_BINDING: &str = "WATS_STATE";
/// Where dispatched updates are POSTed, when set.
const FORWARD_URL_KEY: &str = "WATS_EVENTS_FORWARD_URL";

type SeriesKey = (String, Vec<(String, String)>);

thread_local! {
    /// Metric totals of this isolate (a Worker's unit of memory): scrape
    /// them as per-process metrics.
    static METRICS: RefCell<BTreeMap<SeriesKey, f64>> = const { RefCell::new(BTreeMap::new()) };
    /// When this isolate served its first request.
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

pub struct WorkerHost {
    env: Env,
    store: Option<StateClient>,
    started: u64,
}

impl WorkerHost {
    pub fn new(env: Env) -> WorkerHost {
        let now = Date::now().as_millis();
        let started = STARTED.with(|started| {
            if started.get() == 0 {
                started.set(now);
            }
            started.get()
        });
        // One Durable Object per phone number: its requests are serialized,
        // which is what makes set-if-absent atomic.
        let name = setting(&env, "WATS_PHONE_NUMBER_ID").unwrap_or_else(|| "default".into());
        let store = StateClient::connect(&env, STATE_BINDING, &name);
        WorkerHost {
            env,
            store,
            started,
        }
    }

    fn store(&self) -> Result<&StateClient, KvError> {
        self.store.as_ref().ok_or(KvError::NotConfigured)
    }
}

/// A var or a secret, whichever the Worker has under this name.
fn setting(env: &Env, key: &str) -> Option<String> {
    env.var(key)
        .map(|var| var.to_string())
        .or_else(|_| env.secret(key).map(|secret| secret.to_string()))
        .ok()
}

/// One JSON log line, as the other hosts write them.
fn log_line(level: &str, event: &str, fields: &[(&str, String)]) -> String {
    let mut line = serde_json::Map::new();
    line.insert("level".into(), level.into());
    line.insert("event".into(), event.into());
    for (key, value) in fields {
        line.insert((*key).into(), value.clone().into());
    }
    serde_json::Value::Object(line).to_string()
}

pub fn log_counts(event: &str, report: &DrainReport) {
    let fields = [
        ("claimed", report.claimed.to_string()),
        ("sent", report.sent.to_string()),
        ("retried", report.retried.to_string()),
        ("failed", report.failed.to_string()),
        ("stale", report.stale.to_string()),
    ];
    worker::console_log!("{}", log_line("info", event, &fields));
}

/// Adds samples to this isolate's totals.
fn add_samples(samples: Vec<Sample>) {
    METRICS.with(|metrics| {
        let mut metrics = metrics.borrow_mut();
        for sample in samples {
            *metrics.entry((sample.name, sample.labels)).or_insert(0.0) += sample.value;
        }
    });
}

fn totals() -> Vec<Sample> {
    METRICS.with(|metrics| {
        metrics
            .borrow()
            .iter()
            .map(|((name, labels), value)| Sample {
                name: name.clone(),
                labels: labels.clone(),
                value: *value,
            })
            .collect()
    })
}

fn outbound_request(request: &OutgoingRequest) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &request.headers {
        headers.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method.clone()))
        .with_headers(headers);
    if !request.body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(&request.body[..]).into()));
    }
    Request::new_with_init(&request.url, &init)
}

impl Host for WorkerHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        let outgoing = outbound_request(&request)
            .map_err(|_| OutboundError::Other("invalid outbound request".into()))?;
        // The reason stays generic: runtime errors may quote the URL.
        let mut response = Fetch::Request(outgoing)
            .send()
            .await
            .map_err(|_| OutboundError::Unreachable("fetch failed".into()))?;
        let body = response
            .bytes()
            .await
            .map_err(|_| OutboundError::Other("reading the response failed".into()))?;
        Ok(Response {
            status: response.status_code(),
            headers: response.headers().entries().collect(),
            body,
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store()?.get(key).await
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvError> {
        self.store()?.set(key, value, ttl).await
    }

    async fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<u32>,
    ) -> Result<bool, KvError> {
        self.store()?.set_if_absent(key, value, ttl).await
    }

    async fn kv_remove(&self, key: &str) -> Result<(), KvError> {
        self.store()?.remove(key).await
    }

    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        self.store()?.list(prefix, cursor, limit).await
    }

    fn now_millis(&self) -> u64 {
        Date::now().as_millis()
    }

    /// Workers advance the clock only across I/O, and only in milliseconds:
    /// durations measured inside one request are coarse by design.
    fn monotonic_nanos(&self) -> u64 {
        Date::now().as_millis().saturating_sub(self.started) * 1_000_000
    }

    fn started_millis(&self) -> u64 {
        self.started
    }

    fn config(&self, key: &str) -> Option<String> {
        match key {
            wats::config::RUNTIME_KEY => Some("cloudflare".into()),
            wats::config::STORE_KEY => Some("durable-object".into()),
            _ => setting(&self.env, key),
        }
    }

    async fn dispatch(&self, update: &Update) -> Result<(), String> {
        let Some(url) = setting(&self.env, FORWARD_URL_KEY) else {
            // No application configured: the PII-free line the other hosts
            // write by default.
            worker::console_log!(
                "{}",
                log_line("info", "wats.update", &[("kind", update.kind.into())])
            );
            return Ok(());
        };
        let request = OutgoingRequest {
            method: "POST".into(),
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: update.json.clone().into_bytes(),
        };
        // A refused update fails the delivery, so Meta redelivers it.
        match self.send(request).await {
            Ok(response) if (200..300).contains(&response.status) => Ok(()),
            Ok(_) => Err("the events endpoint refused the update".into()),
            Err(_) => Err("the events endpoint is unreachable".into()),
        }
    }

    fn metrics_add(&self, samples: Vec<Sample>) {
        add_samples(samples);
    }

    fn metrics_snapshot(&self) -> Vec<Sample> {
        totals()
    }

    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]) {
        match level {
            Level::Debug => worker::console_debug!("{}", log_line("debug", event, fields)),
            Level::Info => worker::console_log!("{}", log_line("info", event, fields)),
            Level::Warn => worker::console_warn!("{}", log_line("warn", event, fields)),
            Level::Error => worker::console_error!("{}", log_line("error", event, fields)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn log_lines_are_json_with_their_fields() {
        let line = log_line(
            "warn",
            "wats.graph.failure",
            &[("metaCode", "131056".into())],
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "warn");
        assert_eq!(value["event"], "wats.graph.failure");
        assert_eq!(value["metaCode"], "131056");
    }

    #[wasm_bindgen_test]
    async fn outbound_requests_keep_method_headers_and_body() {
        let request = OutgoingRequest {
            method: "DELETE".into(),
            url: "https://graph.example.test/v25.0/123/participants".into(),
            headers: vec![("authorization".into(), "Bearer token".into())],
            body: br#"{"participants":[]}"#.to_vec(),
        };
        let mut converted = outbound_request(&request).unwrap();
        assert_eq!(converted.method(), Method::Delete);
        assert_eq!(converted.url().unwrap().path(), "/v25.0/123/participants");
        assert_eq!(
            converted.headers().get("authorization").unwrap().as_deref(),
            Some("Bearer token")
        );
        assert_eq!(converted.bytes().await.unwrap(), request.body);
    }

    #[wasm_bindgen_test]
    fn metrics_add_up_per_series() {
        let sample = |route: &str, value: f64| Sample {
            name: "http_requests_total".into(),
            labels: vec![("route".into(), route.into())],
            value,
        };
        add_samples(vec![sample("/healthz", 1.0), sample("/readyz", 1.0)]);
        add_samples(vec![sample("/healthz", 2.0)]);
        let healthz: f64 = totals()
            .iter()
            .filter(|s| s.labels[0].1 == "/healthz")
            .map(|s| s.value)
            .sum();
        assert_eq!(healthz, 3.0);
        assert_eq!(totals().len(), 2);
    }
}
