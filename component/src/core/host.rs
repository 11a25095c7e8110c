//! The seam between the service and whatever runs it: the WIT imports, as a
//! Rust trait. Its futures need not be `Send` (a Worker's are not); the
//! component binding drives them with a trivial executor because its imports
//! are synchronous.

/// An HTTP request as the host received it; `body` is the exact raw bytes.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path_with_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A request to the Graph API (or any outbound HTTP the service makes).
#[derive(Clone, Debug)]
pub struct OutgoingRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why no response arrived; a response of any status is not an error.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboundError {
    Timeout,
    Unreachable(String),
    Denied(String),
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum KvError {
    /// The host runs without a store: there is nothing to retry.
    NotConfigured,
    Unavailable(String),
    TooLarge,
    Other(String),
}

/// One operation of a kv batch (`Host::kv_batch`).
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    Get(String),
    Set(KvEntry),
    /// Stores the entry only when its key holds no live value.
    SetIfAbsent(KvEntry),
    Remove(String),
}

/// A value to store; a ttl of none keeps it until it is removed.
#[derive(Clone, Debug, PartialEq)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub ttl_seconds: Option<u32>,
}

impl KvEntry {
    pub fn new(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        ttl_seconds: Option<u32>,
    ) -> Self {
        KvEntry {
            key: key.into(),
            value: value.into(),
            ttl_seconds,
        }
    }
}

impl KvOp {
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>, ttl: Option<u32>) -> KvOp {
        KvOp::Set(KvEntry::new(key, value, ttl))
    }

    pub fn set_if_absent(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        ttl: Option<u32>,
    ) -> KvOp {
        KvOp::SetIfAbsent(KvEntry::new(key, value, ttl))
    }

    /// The key the op reads or writes.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get(key) | KvOp::Remove(key) => key,
            KvOp::Set(entry) | KvOp::SetIfAbsent(entry) => &entry.key,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvPage {
    pub keys: Vec<String>,
    pub cursor: Option<String>,
}

/// Every update kind; metrics and event endpoint filters use these and
/// nothing else (a test checks that every kind normalizing produces is one).
pub(crate) const UPDATE_KINDS: &[&str] = &[
    "message",
    "status",
    "message_error",
    "call",
    "call_status",
    "message_echo",
    "history",
    "user_preferences",
    "flows",
    "template_status",
    "template_quality",
    "template_category",
    "account_update",
    "phone_number_quality",
    "phone_number_name",
    "business_capability",
    "account_alerts",
    "security",
    "group_lifecycle",
    "group_participants",
    "group_settings",
    "group_status",
    "standby",
    "messaging_handover",
    "user_id_change",
    "unknown",
];

/// One normalized webhook update, as handed to the application.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub kind: &'static str,
    pub id: Option<String>,
    pub status: Option<String>,
    /// The whole normalized update as a JSON object.
    pub json: String,
}

/// One metric series and the amount to add to it (or its total, in a snapshot).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One measurement for a telemetry sink: the full attribute set, under
/// OpenTelemetry's keys; a histogram's value is one observation.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub histogram: bool,
    pub name: &'static str,
    pub value: f64,
    pub attributes: Vec<(&'static str, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The JSON log line every host writes for a `log` call: `level`, `event`
/// and the (already redacted) fields, so that logs read alike everywhere.
pub fn log_line<K: AsRef<str>, V: AsRef<str>>(
    level: Level,
    event: &str,
    fields: impl IntoIterator<Item = (K, V)>,
) -> String {
    let mut line = serde_json::Map::new();
    line.insert("level".into(), level.name().into());
    line.insert("event".into(), event.into());
    for (key, value) in fields {
        line.insert(key.as_ref().into(), value.as_ref().into());
    }
    serde_json::Value::Object(line).to_string()
}

/// `events.dispatch` for a host without an application of its own (the
/// Worker, the Spin component): a PII-free log line, the kind only. The
/// application's endpoints get each update from the service's events
/// queue (`WATS_EVENTS_ENDPOINTS`), signed.
pub fn log_update<H: Host>(host: &H, update: &Update) {
    host.log(Level::Info, "wats.update", &[("kind", update.kind.into())]);
}

/// Runs a future to completion by polling it. For hosts whose imports are
/// synchronous (the component's, Spin's, the test host's): every future of
/// the service then completes on its first poll; looping keeps this correct
/// should an import ever yield.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Everything the service needs from its host.
#[allow(async_fn_in_trait)]
pub trait Host {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError>;

    /// Runs `ops` in order as one unit (docs/kv-schema.md says how atomic
    /// each host makes it) and answers one entry per op: what a `Get` read,
    /// the live value that kept a `SetIfAbsent` from storing (none: it
    /// stored), none for `Set` and `Remove`. A failure fails the whole batch.
    async fn kv_batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError>;
    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError>;

    fn now_millis(&self) -> u64;
    fn monotonic_nanos(&self) -> u64;
    fn started_millis(&self) -> u64;

    fn config(&self, key: &str) -> Option<String>;

    async fn dispatch(&self, update: &Update) -> Result<(), String>;

    fn metrics_add(&self, samples: Vec<Sample>);
    fn metrics_snapshot(&self) -> Vec<Sample>;

    /// The request's measurements for a telemetry sink, once at its end; a
    /// host without a sink drops them.
    fn telemetry(&self, _measurements: Vec<Measurement>) {}

    /// Field values are already redacted by the service.
    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_json_with_their_fields() {
        let line = log_line(Level::Warn, "wats.graph.failure", [("metaCode", "131056")]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "warn");
        assert_eq!(value["event"], "wats.graph.failure");
        assert_eq!(value["metaCode"], "131056");
    }
}
