//! A host in memory for the crate's unit tests: kv with expiry, a clock the
//! test moves, scripted Graph replies. The conformance suites cover the real
//! hosts; this lets a module's own rules be tested where they live.

use crate::core::host::{
    Host, KvError, KvPage, Level, OutboundError, OutgoingRequest, Response, Sample, Update,
};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};

#[cfg(test)]
pub(crate) use crate::block_on;

/// A stored value and when it expires (milliseconds), if ever.
type Entry = (Vec<u8>, Option<u64>);

#[derive(Default)]
pub struct TestHost {
    pub now: Cell<u64>,
    pub settings: HashMap<String, String>,
    pub kv: RefCell<BTreeMap<String, Entry>>,
    pub replies: RefCell<VecDeque<Response>>,
    pub sent: RefCell<Vec<OutgoingRequest>>,
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
        TestHost {
            now: Cell::new(1_800_000_000_000),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..TestHost::default()
        }
    }

    pub fn advance(&self, millis: u64) {
        self.now.set(self.now.get() + millis);
    }

    pub fn reply(&self, status: u16, body: &str) {
        self.replies.borrow_mut().push_back(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        });
    }

    fn live(&self, key: &str) -> Option<Vec<u8>> {
        let kv = self.kv.borrow();
        let (value, expiry) = kv.get(key)?;
        expiry
            .is_none_or(|at| at > self.now.get())
            .then(|| value.clone())
    }

    fn expiry(&self, ttl_seconds: Option<u32>) -> Option<u64> {
        ttl_seconds.map(|ttl| self.now.get() + u64::from(ttl) * 1000)
    }
}

impl Host for TestHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        self.sent.borrow_mut().push(request);
        self.replies
            .borrow_mut()
            .pop_front()
            .ok_or(OutboundError::Other("no reply scripted".into()))
    }
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.live(key))
    }
    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvError> {
        let expiry = self.expiry(ttl);
        self.kv
            .borrow_mut()
            .insert(key.into(), (value.to_vec(), expiry));
        Ok(())
    }
    async fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<u32>,
    ) -> Result<bool, KvError> {
        if self.live(key).is_some() {
            return Ok(false);
        }
        self.kv_set(key, value, ttl).await?;
        Ok(true)
    }
    async fn kv_remove(&self, key: &str) -> Result<(), KvError> {
        self.kv.borrow_mut().remove(key);
        Ok(())
    }
    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
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
        self.now.get() * 1_000_000
    }
    fn started_millis(&self) -> u64 {
        0
    }
    fn config(&self, key: &str) -> Option<String> {
        self.settings.get(key).cloned()
    }
    async fn dispatch(&self, _update: &Update) -> Result<(), String> {
        Ok(())
    }
    fn metrics_add(&self, _samples: Vec<Sample>) {}
    fn metrics_snapshot(&self) -> Vec<Sample> {
        Vec::new()
    }
    fn log(&self, _level: Level, _event: &str, _fields: &[(&str, String)]) {}
}
