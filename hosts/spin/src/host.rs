//! The service's host interface over Spin's standard interfaces.

use crate::bindings::wasi::config::store as variables;
use crate::http;
use crate::sql::SqlStore;
use crate::store::SpinStore;
use serde_json::{json, Value};
use std::cell::RefCell;
use wasip2::clocks::wall_clock;
use wats::Totals;
use wats::{
    Host, KvError, KvOp, KvPage, Level, OutboundError, OutgoingRequest, Response, Sample, Update,
};

/// The metric totals of every instance, as one JSON record (kv-schema.md).
const METRICS_KEY: &str = "spin:metrics";

/// The app's default SQLite database if it grants one (a batch in one
/// statement), else its default key-value store (a batch op by op).
enum Store {
    Sql(SqlStore),
    KeyValue(SpinStore),
}

impl Store {
    fn open() -> Result<Store, KvError> {
        match SqlStore::open() {
            Ok(sql) => Ok(Store::Sql(sql)),
            Err(KvError::NotConfigured) => SpinStore::open().map(Store::KeyValue),
            Err(error) => Err(error),
        }
    }
}

pub struct SpinHost {
    store: Result<Store, KvError>,
    started_millis: u64,
    /// This request's metric samples, added to the store's totals after
    /// the response (`flush_metrics`): no client waits for them.
    samples: RefCell<Vec<Sample>>,
}

fn wall_nanos() -> u64 {
    let now = wall_clock::now();
    now.seconds * 1_000_000_000 + u64::from(now.nanoseconds)
}

pub(crate) fn now_millis() -> u64 {
    wall_nanos() / 1_000_000
}

/// Spin variable names are lower case: `WATS_APP_SECRET` is read as
/// `wats_app_secret`. A variable the app does not declare, or declares with
/// an empty default (Spin needs a default for every optional variable),
/// reads as unset.
fn variable(key: &str) -> Option<String> {
    let name = key.to_ascii_lowercase().replace(['.', '-'], "_");
    variables::get(&name)
        .ok()
        .flatten()
        .filter(|value| !value.is_empty())
}

/// One series as stored: name, labels, total.
type StoredSeries = (String, Vec<(String, String)>, f64);

fn encode_totals(samples: &[Sample]) -> Vec<u8> {
    let series: Vec<Value> = samples
        .iter()
        .map(|sample| json!([sample.name, sample.labels, sample.value]))
        .collect();
    Value::Array(series).to_string().into_bytes()
}

fn decode_totals(stored: Option<Vec<u8>>) -> Totals {
    let mut totals = Totals::default();
    let series: Vec<StoredSeries> = stored
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    totals.add(
        series
            .into_iter()
            .map(|(name, labels, value)| Sample {
                name,
                labels,
                value,
            })
            .collect(),
    );
    totals
}

impl SpinHost {
    pub fn open() -> SpinHost {
        SpinHost {
            store: Store::open(),
            started_millis: now_millis(),
            samples: RefCell::default(),
        }
    }

    fn store(&self) -> Result<&Store, KvError> {
        self.store.as_ref().map_err(Clone::clone)
    }

    /// Adds the samples of this request to the totals kept in the store:
    /// one statement on SQLite, a read and a compare-and-swap on key-value.
    /// Without a store they are not kept.
    pub fn flush_metrics(&self) {
        let samples = self.samples.take();
        let Ok(store) = self.store() else { return };
        if samples.is_empty() {
            return;
        }
        let added = match store {
            Store::Sql(sql) => sql.metrics_add(&samples),
            Store::KeyValue(kv) => kv.update(METRICS_KEY, now_millis(), |stored| {
                let mut totals = decode_totals(stored);
                totals.add(samples.clone());
                encode_totals(&totals.snapshot())
            }),
        };
        if added.is_err() {
            self.log(Level::Warn, "wats.metrics.dropped", &[]);
        }
    }
}

impl Host for SpinHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        http::send(&request)
    }

    async fn kv_batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        match self.store()? {
            Store::Sql(sql) => sql.apply(ops, now_millis()),
            Store::KeyValue(kv) => kv.apply(ops, now_millis()),
        }
    }

    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        match self.store()? {
            Store::Sql(sql) => sql.list(prefix, cursor, limit, now_millis()),
            Store::KeyValue(kv) => kv.list(prefix, cursor, limit),
        }
    }

    fn now_millis(&self) -> u64 {
        now_millis()
    }

    /// Wall-clock time since `started_millis`, not wasi's monotonic clock:
    /// that restarts with every instance, and the service orders records
    /// across requests on this timeline (started plus elapsed).
    fn monotonic_nanos(&self) -> u64 {
        wall_nanos().saturating_sub(self.started_millis * 1_000_000)
    }

    /// An instance lives for one request: uptime on Spin counts from it.
    fn started_millis(&self) -> u64 {
        self.started_millis
    }

    fn config(&self, key: &str) -> Option<String> {
        match key {
            wats::config::RUNTIME_KEY => Some("spin".into()),
            wats::config::STORE_KEY => Some(
                match self.store {
                    Ok(Store::KeyValue(_)) => "spin-key-value",
                    _ => "spin-sqlite",
                }
                .into(),
            ),
            _ => variable(key),
        }
    }

    /// The application's endpoints get updates from the service's events
    /// queue, drained after the response (`lib.rs`).
    async fn dispatch(&self, update: &Update) -> Result<(), String> {
        wats::log_update(self, update);
        Ok(())
    }

    /// Totals live in the store, written after the response.
    fn metrics_add(&self, samples: Vec<Sample>) {
        self.samples.borrow_mut().extend(samples);
    }

    fn metrics_snapshot(&self) -> Vec<Sample> {
        let snapshot = match self.store() {
            Ok(Store::Sql(sql)) => sql.metrics_snapshot(),
            Ok(Store::KeyValue(kv)) => kv
                .get(METRICS_KEY, now_millis())
                .map(|stored| decode_totals(stored).snapshot()),
            Err(error) => Err(error),
        };
        snapshot.unwrap_or_default()
    }

    /// Spin keeps a component's stderr as its log.
    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]) {
        eprintln!(
            "{}",
            wats::log_line(level, event, fields.iter().map(|(k, v)| (k, v)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_totals_survive_the_store() {
        let sample = |value| Sample {
            name: "http_requests_total".into(),
            labels: vec![("route".into(), "/healthz".into())],
            value,
        };
        let mut totals = decode_totals(None);
        totals.add(vec![sample(2.0)]);
        let mut read_back = decode_totals(Some(encode_totals(&totals.snapshot())));
        read_back.add(vec![sample(1.0)]);
        assert_eq!(read_back.snapshot(), vec![sample(3.0)]);
        assert!(decode_totals(Some(b"not json".to_vec()))
            .snapshot()
            .is_empty());
    }
}
