//! A host in memory: kv with expiry, a clock the test moves, scripted Graph
//! replies and transport failures, collected updates and log lines, metric
//! totals, and switches that make the store fail or vanish. The crate's
//! unit tests, its native conformance run (`tests/conformance.rs`) and the
//! fuzz targets use it.

use crate::core::host::{
    log_line, Host, KvEntry, KvError, KvOp, KvPage, Level, OutboundError, OutgoingRequest,
    Response, Sample, Update,
};
use crate::core::metrics::Totals;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};

#[cfg(test)]
pub(crate) use crate::block_on;

/// A stored value and when it expires (milliseconds), if ever.
type Entry = (Vec<u8>, Option<u64>);

#[derive(Default)]
pub struct TestHost {
    pub now: Cell<u64>,
    /// When this host (its current life) started; a test moves it to play
    /// a restart.
    pub started: Cell<u64>,
    /// Microseconds the monotonic clock moved past `now`: it ticks on every
    /// reading, as a real one never stands still.
    ticks: Cell<u64>,
    pub settings: HashMap<String, String>,
    pub kv: RefCell<BTreeMap<String, Entry>>,
    /// Graph's next answers, in order: a response, or a transport failure.
    pub replies: RefCell<VecDeque<Result<Response, OutboundError>>>,
    pub sent: RefCell<Vec<OutgoingRequest>>,
    /// Every update dispatched, in order.
    pub updates: RefCell<Vec<Update>>,
    /// Updates with these ids are refused by the application.
    pub refused_ids: RefCell<Vec<String>>,
    /// Every kv call fails while set.
    pub kv_down: Cell<bool>,
    /// The host has no store while set.
    pub kv_absent: Cell<bool>,
    /// Every log line, as hosts write them (`log_line`).
    pub logs: RefCell<Vec<String>>,
    pub metrics: RefCell<Totals>,
}

impl TestHost {
    /// With the settings a configured service needs.
    pub fn configured() -> TestHost {
        let settings = [
            ("WATS_PHONE_NUMBER_ID", "106540352242922"),
            ("WATS_ACCESS_TOKEN", "test-access-token"),
            ("WATS_APP_SECRET", "test-app-secret"),
            ("WATS_VERIFY_TOKEN", "test-verify-token"),
            ("WATS_SERVICE_BEARER_TOKEN", "test-service-token"),
        ];
        let host = TestHost::with_settings(
            settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        host.now.set(1_800_000_000_000);
        host
    }

    pub fn with_settings(settings: HashMap<String, String>) -> TestHost {
        TestHost {
            settings,
            ..TestHost::default()
        }
    }

    pub fn advance(&self, millis: u64) {
        self.now.set(self.now.get() + millis);
    }

    pub fn reply(&self, status: u16, body: &str) {
        self.replies.borrow_mut().push_back(Ok(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }));
    }

    fn store(&self) -> Result<(), KvError> {
        if self.kv_absent.get() {
            return Err(KvError::NotConfigured);
        }
        if self.kv_down.get() {
            return Err(KvError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }

    fn live(&self, key: &str) -> Option<Vec<u8>> {
        let kv = self.kv.borrow();
        let (value, expiry) = kv.get(key)?;
        expiry
            .is_none_or(|at| at > self.now.get())
            .then(|| value.clone())
    }

    fn write(&self, entry: KvEntry) {
        let expiry = entry
            .ttl_seconds
            .map(|ttl| self.now.get() + u64::from(ttl) * 1000);
        self.kv
            .borrow_mut()
            .insert(entry.key, (entry.value, expiry));
    }
}

impl Host for TestHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        self.sent.borrow_mut().push(request);
        self.replies
            .borrow_mut()
            .pop_front()
            .unwrap_or(Err(OutboundError::Other("no reply scripted".into())))
    }
    async fn kv_batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.store()?;
        let mut found = Vec::with_capacity(ops.len());
        for op in ops {
            found.push(match op {
                KvOp::Get(key) => self.live(&key),
                KvOp::Set(entry) => {
                    self.write(entry);
                    None
                }
                KvOp::SetIfAbsent(entry) => match self.live(&entry.key) {
                    Some(value) => Some(value),
                    None => {
                        self.write(entry);
                        None
                    }
                },
                KvOp::Remove(key) => {
                    self.kv.borrow_mut().remove(&key);
                    None
                }
            });
        }
        Ok(found)
    }
    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        self.store()?;
        let keys: Vec<String> = self
            .kv
            .borrow()
            .keys()
            .filter(|key| key.starts_with(prefix) && cursor.is_none_or(|c| key.as_str() > c))
            .filter(|key| self.live(key).is_some())
            .take(limit as usize + 1)
            .cloned()
            .collect();
        let more = keys.len() > limit as usize;
        let keys: Vec<String> = keys.into_iter().take(limit as usize).collect();
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(KvPage { keys, cursor })
    }
    fn now_millis(&self) -> u64 {
        self.now.get()
    }
    fn monotonic_nanos(&self) -> u64 {
        self.ticks.set(self.ticks.get() + 1);
        self.now.get() * 1_000_000 + self.ticks.get() * 1_000
    }
    fn started_millis(&self) -> u64 {
        self.started.get()
    }
    fn config(&self, key: &str) -> Option<String> {
        self.settings.get(key).cloned()
    }
    async fn dispatch(&self, update: &Update) -> Result<(), String> {
        let refused = self.refused_ids.borrow();
        if update.id.as_ref().is_some_and(|id| refused.contains(id)) {
            return Err("refused by the test".into());
        }
        self.updates.borrow_mut().push(update.clone());
        Ok(())
    }
    fn metrics_add(&self, samples: Vec<Sample>) {
        self.metrics.borrow_mut().add(samples);
    }
    fn metrics_snapshot(&self) -> Vec<Sample> {
        self.metrics.borrow().snapshot()
    }
    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]) {
        let fields = fields.iter().map(|(key, value)| (*key, value.as_str()));
        self.logs.borrow_mut().push(log_line(level, event, fields));
    }
}
