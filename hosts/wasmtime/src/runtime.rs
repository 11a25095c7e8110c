//! Runs the wats:service component: compiled once into an `InstancePre`,
//! instantiated in a `Store` of its own (pooling allocator) and kept warm
//! for later requests while its calls succeed, with every import
//! implemented by async host code.

use crate::services::{KvFailure, Services};
use anyhow::{Context as _, Result};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

wasmtime::component::bindgen!({
    world: "service",
    path: "../../wit",
    imports: { default: async },
    exports: { default: async },
});

use self::wats::service::{
    clock, config, events, kv, log, metrics, outbound_http, telemetry, types,
};

pub use self::exports::wats::service::scheduler::DrainReport;

impl From<DrainReport> for ::wats::DrainReport {
    fn from(report: DrainReport) -> ::wats::DrainReport {
        ::wats::DrainReport {
            claimed: report.claimed,
            sent: report.sent,
            retried: report.retried,
            failed: report.failed,
            stale: report.stale,
            events_delivered: report.events_delivered,
            events_retried: report.events_retried,
            events_failed: report.events_failed,
            next_due_millis: report.next_due_millis,
        }
    }
}
pub use self::wats::service::events::Update;
pub use self::wats::service::log::Level;
pub use self::wats::service::metrics::Sample;
pub use self::wats::service::outbound_http::{Error as OutboundError, OutgoingRequest};
pub use self::wats::service::telemetry::{Instrument, Measurement};
pub use self::wats::service::types::{Request, Response};

/// How many instances may live at once (busy and warm); more requests wait
/// for a slot (see `handle`).
const MAX_CONCURRENT_INSTANCES: u32 = 256;
/// Instances kept warm between requests, and the calls one serves before
/// it is retired (its memory stays as large as its largest request made it).
const MAX_WARM_INSTANCES: usize = 8;
const MAX_CALLS_PER_INSTANCE: u32 = 10_000;
/// Linear memory per instance: the Workers limit, ample for a 4 MiB body.
const MAX_INSTANCE_MEMORY: usize = 128 << 20;
/// Memory a finished instance leaves mapped and clears with memset instead
/// of handing back to the kernel: the next request then takes no page faults
/// (and no madvise) for what a typical request touches.
const KEEP_RESIDENT: usize = 2 << 20;
/// A request whose wasm runs past this many ticks traps (and gets a 500):
/// no request can hold a thread forever. Time spent awaiting host I/O
/// counts too, so this sits well above the 15 s Graph timeout.
const DEADLINE_TICKS: u64 = 600;
/// Set (to anything) to profile the component's code with `perf`
/// (docs/robustness.md).
const PERFMAP_ENV: &str = "WATS_PERFMAP";
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Runtime {
    pre: ServicePre<State>,
    engine: Engine,
    services: Arc<Services>,
    /// One permit per busy instance: a request beyond the pool's size
    /// waits for a slot instead of failing to instantiate. Warm instances
    /// hold no permit; the pool keeps room for them.
    slots: Arc<Semaphore>,
    /// Instances that finished a call cleanly, for the next requests. Every
    /// request belongs to the one operator of this process, and the service
    /// keeps nothing in the guest between calls (its state is in kv); an
    /// instance whose call trapped or failed is dropped, never reused.
    warm: Arc<std::sync::Mutex<Vec<Warm>>>,
    /// Woken when a request may have queued work for the drain (`queued`).
    queued: Arc<tokio::sync::Notify>,
}

/// An instance between calls.
struct Warm {
    store: Store<State>,
    service: Service,
    calls: u32,
}

/// What one Store holds: the shared services, and what this request has
/// written and done.
pub struct State {
    services: Arc<Services>,
    /// The kv batches this request's writes joined, first to last.
    written: Option<(u64, u64)>,
    /// Whether a Graph request left the process: what it did then stands
    /// even if a later commit fails.
    effects: bool,
}

/// The request's writes could not be made durable, and nothing it did has
/// left the process: the host answers `503 store_unavailable` instead.
#[derive(Debug)]
pub struct CommitFailed;

impl std::fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the state store could not commit the request's writes")
    }
}

impl std::error::Error for CommitFailed {}

impl State {
    fn new(services: Arc<Services>) -> State {
        State {
            services,
            written: None,
            effects: false,
        }
    }

    /// Runs a kv batch that writes, and notes the batch it joined.
    async fn write(&mut self, ops: Vec<::wats::KvOp>) -> Result<Vec<Option<Vec<u8>>>, kv::KvError> {
        let kv = self.services.kv.clone();
        // Read before and after: the write's batch lies between the two.
        let before = kv.batch();
        let result = kv.apply_async(ops).await;
        let after = kv.batch();
        let first = self.written.map_or(before, |(first, _)| first);
        self.written = Some((first, after));
        result.map_err(kv_error)
    }

    /// Makes this request's writes durable.
    async fn commit(&mut self) -> Result<(), KvFailure> {
        match self.written.take() {
            Some((first, last)) => self.services.kv.commit_async(first..=last).await,
            None => Ok(()),
        }
    }

    /// Commits before an effect leaves the process, so that a store
    /// failure stops the request before the effect rather than after.
    async fn commit_before_effect(&mut self) -> Result<(), KvFailure> {
        self.commit().await?;
        self.effects = true;
        Ok(())
    }

    /// The commit at the end of a call; it leaves the state as a fresh
    /// call finds it.
    async fn finish(&mut self) -> Result<()> {
        let effects = std::mem::take(&mut self.effects);
        if self.commit().await.is_ok() {
            return Ok(());
        }
        // Counted as the component counts its own store failures.
        let recorder = ::wats::Recorder::default();
        recorder.persistence("failure");
        self.services.metrics.record(&recorder);
        self.services
            .log
            .write(Level::Warn, "wats.host.commit_failed", &[]);
        // What left the process stands; the writes after it are lost (the
        // component treats those as best effort too).
        if effects {
            Ok(())
        } else {
            Err(CommitFailed.into())
        }
    }
}

impl Runtime {
    /// Compiles the component at `path` and links the host's imports.
    pub fn load(path: &Path, services: Services) -> Result<Runtime> {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(MAX_CONCURRENT_INSTANCES)
            .total_core_instances(MAX_CONCURRENT_INSTANCES)
            .total_memories(MAX_CONCURRENT_INSTANCES)
            .total_tables(MAX_CONCURRENT_INSTANCES)
            .max_memory_size(MAX_INSTANCE_MEMORY)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            // Reset only the pages a request touched (Linux 6.7+; else memset).
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .epoch_interruption(true);
        // For `perf`: names for the compiled wasm functions in /tmp/perf-PID.map.
        if std::env::var_os(PERFMAP_ENV).is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let component = Component::from_file(&engine, path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading the component {}", path.display()))?;
        let mut linker = Linker::<State>::new(&engine);
        Service::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let pre = ServicePre::new(linker.instantiate_pre(&component)?)?;
        start_epoch_ticker(&engine);
        Ok(Runtime {
            pre,
            engine,
            services: Arc::new(services),
            slots: new_slots(),
            warm: Arc::default(),
            queued: Arc::default(),
        })
    }

    /// The same compiled component over other services (tests give each
    /// suite a fresh store this way without compiling again).
    pub fn with_services(&self, services: Services) -> Runtime {
        Runtime {
            pre: self.pre.clone(),
            engine: self.engine.clone(),
            services: Arc::new(services),
            slots: self.slots.clone(),
            warm: Arc::default(),
            queued: Arc::default(),
        }
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Handles one request, in a warm instance if one is free.
    pub async fn handle(&self, request: Request) -> Result<Response> {
        let _slot = self.slot().await?;
        let mut instance = self.instance().await?;
        let response = instance
            .service
            .wats_service_handler()
            .call_handle(&mut instance.store, &request)
            .await
            .map_err(anyhow::Error::from)
            .context("calling handle");
        // Even after a trap: what was written before it is committed, as
        // each write was before group commit.
        instance.store.data_mut().finish().await?;
        let response = response?;
        self.keep_warm(instance);
        // The drain sends what was queued now rather than at its next tick.
        let config = |key: &str| self.services.config.get(key).cloned();
        if ::wats::config::work_queued(&config, &request.method, response.status) {
            self.queued.notify_one();
        }
        Ok(response)
    }

    /// Completes when a request may have queued work for the drain.
    pub async fn queued(&self) {
        self.queued.notified().await;
    }

    /// Sends up to `limit` due outbox items, in a warm instance if one is
    /// free.
    pub async fn drain(&self, limit: u32) -> Result<DrainReport> {
        let _slot = self.slot().await?;
        let mut instance = self.instance().await?;
        let report = instance
            .service
            .wats_service_scheduler()
            .call_drain(&mut instance.store, limit)
            .await
            .map_err(anyhow::Error::from)
            .context("calling drain");
        instance.store.data_mut().finish().await?;
        let report = report?;
        self.keep_warm(instance);
        Ok(report)
    }

    /// How many instances are warm now.
    pub fn warm_instances(&self) -> usize {
        self.warm().len()
    }

    async fn slot(&self) -> Result<SemaphorePermit<'_>> {
        self.slots
            .acquire()
            .await
            .context("the instance pool is closed")
    }

    fn warm(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.warm
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A warm instance, or a fresh one in its own Store.
    async fn instance(&self) -> Result<Warm> {
        let warm = self.warm().pop();
        let mut instance = match warm {
            Some(instance) => instance,
            None => {
                let mut store = Store::new(&self.engine, State::new(self.services.clone()));
                // Instantiating may run wasm too.
                store.set_epoch_deadline(DEADLINE_TICKS);
                let service = self
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(anyhow::Error::from)
                    .context("instantiating")?;
                Warm {
                    store,
                    service,
                    calls: 0,
                }
            }
        };
        // Each call has its own deadline, counted from now.
        instance.store.set_epoch_deadline(DEADLINE_TICKS);
        instance.calls += 1;
        Ok(instance)
    }

    /// Keeps an instance whose call succeeded for the next request, unless
    /// enough are warm or it has served its share.
    fn keep_warm(&self, instance: Warm) {
        if instance.calls >= MAX_CALLS_PER_INSTANCE {
            return;
        }
        let mut warm = self.warm();
        if warm.len() < MAX_WARM_INSTANCES {
            warm.push(instance);
        }
    }
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("wats-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

fn new_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        MAX_CONCURRENT_INSTANCES as usize - MAX_WARM_INSTANCES,
    ))
}

impl types::Host for State {}

impl outbound_http::Host for State {
    async fn send(&mut self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        if self.commit_before_effect().await.is_err() {
            // Nothing was sent; the component retries or answers as for a
            // network failure.
            return Err(OutboundError::Other("state store unavailable".into()));
        }
        self.services.outbound.send(request).await
    }
}

fn kv_error(failure: KvFailure) -> kv::KvError {
    match failure {
        KvFailure::NotConfigured => kv::KvError::NotConfigured,
        KvFailure::Unavailable(reason) => kv::KvError::Unavailable(reason),
        KvFailure::TooLarge => kv::KvError::TooLarge,
    }
}

impl kv::Host for State {
    async fn batch(&mut self, ops: Vec<kv::Op>) -> Result<Vec<Option<Vec<u8>>>, kv::KvError> {
        let entry = |entry: kv::Entry| ::wats::KvEntry {
            key: entry.key,
            value: entry.value,
            ttl_seconds: entry.ttl_seconds,
        };
        let ops: Vec<::wats::KvOp> = ops
            .into_iter()
            .map(|op| match op {
                kv::Op::Get(key) => ::wats::KvOp::Get(key),
                kv::Op::Set(e) => ::wats::KvOp::Set(entry(e)),
                kv::Op::SetIfAbsent(e) => ::wats::KvOp::SetIfAbsent(entry(e)),
                kv::Op::Remove(key) => ::wats::KvOp::Remove(key),
            })
            .collect();
        if ops.iter().all(|op| matches!(op, ::wats::KvOp::Get(_))) {
            let reads = self.services.kv.apply_async(ops).await;
            return reads.map_err(kv_error);
        }
        self.write(ops).await
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<kv::Page, kv::KvError> {
        let (keys, cursor) = self
            .services
            .kv
            .list(&prefix, cursor.as_deref(), limit)
            .map_err(kv_error)?;
        Ok(kv::Page { keys, cursor })
    }
}

impl clock::Host for State {
    async fn now_millis(&mut self) -> u64 {
        self.services.clock.now_millis()
    }

    async fn monotonic_nanos(&mut self) -> u64 {
        self.services.clock.monotonic_nanos()
    }

    async fn started_millis(&mut self) -> u64 {
        self.services.started_millis
    }
}

impl config::Host for State {
    async fn get(&mut self, key: String) -> Option<String> {
        self.services.config.get(&key).cloned()
    }
}

impl events::Host for State {
    /// No commit first, unlike a Graph call: a dispatch is undone by
    /// nothing, but redone by Meta's retry. If the commit at the end fails,
    /// the delivery is answered 503 and Meta delivers it again (the update
    /// reaches the application twice, and its history lands then); so a
    /// delivery commits once, not once before its dispatches and again
    /// after its done marks.
    async fn dispatch(&mut self, update: Update) -> Result<(), String> {
        self.services.events.dispatch(&update)
    }
}

impl metrics::Host for State {
    async fn add(&mut self, samples: Vec<Sample>) {
        self.services.metrics.add(samples);
    }

    async fn snapshot(&mut self) -> Vec<Sample> {
        self.services.metrics.snapshot()
    }
}

/// To the OTLP export when the environment configures one (`otlp`);
/// dropped otherwise: the numbers are `/metrics`'.
impl telemetry::Host for State {
    async fn emit(&mut self, measurements: Vec<telemetry::Measurement>) {
        if let Some(sink) = &self.services.telemetry {
            sink.record(&measurements);
        }
    }
}

impl log::Host for State {
    async fn write(&mut self, level: Level, event: String, fields: Vec<(String, String)>) {
        self.services.log.write(level, &event, &fields);
    }
}
