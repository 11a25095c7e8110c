//! The service's host interface over the Workers runtime.

use crate::store::SqlKv;
use std::cell::{Cell, RefCell};
use wats::Totals;
use wats::{
    log_line, Host, KvError, KvOp, KvPage, Level, Measurement, OutboundError, OutgoingRequest,
    Response, Sample, Update,
};
use worker::{
    js_sys, AnalyticsEngineDataPointBuilder, Date, Env, Fetch, Headers, Method, QueueContentType,
    RawMessageBuilder, Request, RequestInit,
};

/// The Durable Object namespace that holds the service's state.
pub const STATE_BINDING: &str = "WATS_STATE";
/// The Workers Analytics Engine dataset that takes the measurements.
const ANALYTICS_BINDING: &str = "WATS_ANALYTICS";

thread_local! {
    /// Metric totals of this isolate. With the Durable Object binding every
    /// request is served in the phone number's object, so these are that
    /// object's totals since it started.
    static METRICS: RefCell<Totals> = RefCell::new(Totals::default());
    /// When this isolate served its first request.
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

pub struct WorkerHost {
    env: Env,
    /// None in a Worker without the Durable Object binding: the service then
    /// runs without a store (`persistence_not_configured` where it needs one).
    store: Option<SqlKv>,
    started: u64,
}

impl WorkerHost {
    pub fn new(env: Env, store: Option<SqlKv>) -> WorkerHost {
        let now = Date::now().as_millis();
        let started = STARTED.with(|started| {
            if started.get() == 0 {
                started.set(now);
            }
            started.get()
        });
        WorkerHost {
            env,
            store,
            started,
        }
    }

    fn store(&self) -> Result<&SqlKv, KvError> {
        self.store.as_ref().ok_or(KvError::NotConfigured)
    }
}

/// A var or a secret, whichever the Worker has under this name.
pub fn setting(env: &Env, key: &str) -> Option<String> {
    env.var(key)
        .map(|var| var.to_string())
        .or_else(|_| env.secret(key).map(|secret| secret.to_string()))
        .ok()
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

impl WorkerHost {
    /// Sends an event to a Queue producer binding (`queue:NAME`) as a JSON
    /// message; the Queue's own retries and dead-letter queue take it from
    /// there. A binding that is missing or refuses is unreachable, so the
    /// service's queue offers the event again later.
    async fn send_to_queue(&self, name: &str, body: &[u8]) -> Result<Response, OutboundError> {
        let unreachable = |_| OutboundError::Unreachable("queue send failed".into());
        let text = std::str::from_utf8(body)
            .map_err(|_| OutboundError::Other("a queue message is JSON".into()))?;
        let message = js_sys::JSON::parse(text)
            .map_err(|_| OutboundError::Other("a queue message is JSON".into()))?;
        let queue = self.env.queue(name).map_err(unreachable)?;
        queue
            .send_raw(
                RawMessageBuilder::new(message).build_with_content_type(QueueContentType::Json),
            )
            .await
            .map_err(unreachable)?;
        Ok(Response {
            status: 202,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

impl Host for WorkerHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        if let Some(name) = request.url.strip_prefix(wats::config::QUEUE_SCHEME) {
            return self.send_to_queue(name, &request.body).await;
        }
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

    async fn kv_batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.store()?.batch(ops)
    }

    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        self.store()?.list(prefix, cursor, limit)
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
            wats::config::QUEUES_KEY => Some("1".into()),
            // The object runs once, so a claim of its earlier life is dead.
            wats::config::STORE_EXCLUSIVE_KEY if self.store.is_some() => Some("1".into()),
            _ => setting(&self.env, key),
        }
    }

    /// The application's endpoints get updates from the service's events
    /// queue, which the object's alarm drains.
    async fn dispatch(&self, update: &Update) -> Result<(), String> {
        wats::log_update(self, update);
        Ok(())
    }

    fn metrics_add(&self, samples: Vec<Sample>) {
        METRICS.with(|totals| totals.borrow_mut().add(samples));
    }

    fn metrics_snapshot(&self) -> Vec<Sample> {
        METRICS.with(|totals| totals.borrow().snapshot())
    }

    /// To the Analytics Engine dataset bound as `WATS_ANALYTICS`, when
    /// wrangler.toml declares one, so numbers add up across isolates: one
    /// data point per measurement, indexed by its name, its columns in
    /// `blob1`…`blob10` (`Measurement::columns`) and its value in `double1`.
    /// A write is fire-and-forget: it never fails a request.
    fn telemetry(&self, measurements: Vec<Measurement>) {
        let Ok(dataset) = self.env.analytics_engine(ANALYTICS_BINDING) else {
            return;
        };
        for measurement in &measurements {
            let point = AnalyticsEngineDataPointBuilder::new()
                .indexes([measurement.name])
                .blobs(measurement.columns())
                .doubles([measurement.value])
                .build();
            let _ = dataset.write_data_point(&point);
        }
    }

    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]) {
        let line = log_line(level, event, fields.iter().map(|(k, v)| (k, v)));
        match level {
            Level::Debug => worker::console_debug!("{line}"),
            Level::Info => worker::console_log!("{line}"),
            Level::Warn => worker::console_warn!("{line}"),
            Level::Error => worker::console_error!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

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
}
