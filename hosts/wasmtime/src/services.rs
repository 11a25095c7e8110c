//! What the host supplies to the component, as replaceable parts: the
//! `wats serve` implementations live in `kv`, `outbound` and `sinks`; tests
//! plug in fakes.

use crate::runtime::{Level, OutboundError, OutgoingRequest, Response, Sample, Update};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wats::KvOp;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Clone, Debug, PartialEq)]
pub enum KvFailure {
    /// No store at all (an embedding without state).
    NotConfigured,
    Unavailable(String),
    TooLarge,
}

/// A key-value store with expiry and an atomic set-if-absent.
pub trait KvStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure>;
    fn set(&self, key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), KvFailure>;
    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvFailure>;
    fn remove(&self, key: &str) -> Result<(), KvFailure>;
    /// Keys with this prefix in order, after `cursor`; the returned cursor is
    /// set when more may follow.
    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure>;

    /// Runs a batch of ops in order as one unit (the `kv.batch` import):
    /// one answer per op, as the WIT says.
    fn apply(&self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure>;

    /// `apply` for a caller that must not block its thread: a store that
    /// waits for its own thread overrides it.
    fn apply_async(
        &self,
        ops: Vec<KvOp>,
    ) -> BoxFuture<'_, Result<Vec<Option<Vec<u8>>>, KvFailure>> {
        Box::pin(std::future::ready(self.apply(&ops)))
    }

    /// The batch a write made now joins. A store that commits each write
    /// at once has one batch forever.
    fn batch(&self) -> u64 {
        0
    }

    /// Makes the writes of `batches` durable, or says that some were lost.
    /// Batches other requests wrote may be committed with them: a commit
    /// is a point after which everything written before it is durable.
    fn commit(&self, batches: std::ops::RangeInclusive<u64>) -> Result<(), KvFailure> {
        let _ = batches;
        Ok(())
    }

    /// `commit` for a caller that must not block its thread.
    fn commit_async(
        &self,
        batches: std::ops::RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<(), KvFailure>> {
        Box::pin(std::future::ready(self.commit(batches)))
    }
}

pub trait Outbound: Send + Sync {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>>;
}

pub trait EventSink: Send + Sync {
    fn dispatch(&self, update: &Update) -> Result<(), String>;
}

pub trait LogSink: Send + Sync {
    fn write(&self, level: Level, event: &str, fields: &[(String, String)]);
}

pub trait Clock: Send + Sync {
    fn now_millis(&self) -> u64;
    fn monotonic_nanos(&self) -> u64;
}

pub struct SystemClock {
    base: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            base: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn monotonic_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// Metric totals across requests; the component decides what they are
/// and how they add up (`wats::Totals`).
#[derive(Default)]
pub struct MetricsStore {
    totals: Mutex<wats::Totals>,
}

impl MetricsStore {
    fn totals(&self) -> std::sync::MutexGuard<'_, wats::Totals> {
        self.totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add(&self, samples: Vec<Sample>) {
        let samples = samples.into_iter().map(|s| wats::Sample {
            name: s.name,
            labels: s.labels,
            value: s.value,
        });
        self.totals().add(samples.collect());
    }

    /// Adds what the host itself recorded, in the service's vocabulary.
    pub fn record(&self, recorder: &wats::Recorder) {
        self.totals().add(recorder.take());
    }

    pub fn snapshot(&self) -> Vec<Sample> {
        let samples = self.totals().snapshot().into_iter();
        samples
            .map(|s| Sample {
                name: s.name,
                labels: s.labels,
                value: s.value,
            })
            .collect()
    }
}

pub struct Services {
    /// `WATS_*` settings and secrets, plus the host's reserved keys.
    pub config: HashMap<String, String>,
    pub kv: Arc<dyn KvStore>,
    pub outbound: Arc<dyn Outbound>,
    pub events: Arc<dyn EventSink>,
    pub log: Arc<dyn LogSink>,
    pub clock: Arc<dyn Clock>,
    pub metrics: MetricsStore,
    /// Where the component's measurements go besides `/metrics`, if
    /// anywhere (`wats serve`: an OTLP export).
    pub telemetry: Option<Arc<dyn TelemetrySink>>,
    pub started_millis: u64,
}

impl Services {
    pub fn new(
        config: HashMap<String, String>,
        kv: Arc<dyn KvStore>,
        outbound: Arc<dyn Outbound>,
        events: Arc<dyn EventSink>,
        log: Arc<dyn LogSink>,
        clock: Arc<dyn Clock>,
    ) -> Services {
        // `monotonic-nanos` counts from this instant (the WIT says so).
        let started_millis = clock
            .now_millis()
            .saturating_sub(clock.monotonic_nanos() / 1_000_000);
        Services {
            config,
            kv,
            outbound,
            events,
            log,
            clock,
            metrics: MetricsStore::default(),
            telemetry: None,
            started_millis,
        }
    }

    pub fn with_telemetry(mut self, sink: Arc<dyn TelemetrySink>) -> Services {
        self.telemetry = Some(sink);
        self
    }
}

/// Takes the component's measurements (OpenTelemetry attribute keys), at
/// the end of each request; must not block.
pub trait TelemetrySink: Send + Sync {
    fn record(&self, measurements: &[crate::runtime::Measurement]);
}
