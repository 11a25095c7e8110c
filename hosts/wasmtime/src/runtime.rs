//! Runs the wats:service component: compiled once into an `InstancePre`,
//! instantiated in a fresh `Store` per request (pooling allocator), with
//! every import implemented by async host code.

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

use self::wats::service::{clock, config, events, kv, log, metrics, outbound_http, types};

pub use self::exports::wats::service::scheduler::DrainReport;
pub use self::wats::service::events::Update;
pub use self::wats::service::log::Level;
pub use self::wats::service::metrics::Sample;
pub use self::wats::service::outbound_http::{Error as OutboundError, OutgoingRequest};
pub use self::wats::service::types::{Request, Response};

/// How many requests may hold an instance at once; more wait for a slot
/// (see `handle`).
const MAX_CONCURRENT_INSTANCES: u32 = 256;
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
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Runtime {
    pre: ServicePre<State>,
    engine: Engine,
    services: Arc<Services>,
    /// One permit per pooled instance slot: a request beyond the pool's
    /// size waits for a slot instead of failing to instantiate.
    slots: Arc<Semaphore>,
}

/// What one Store holds: the shared services.
pub struct State {
    services: Arc<Services>,
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
        }
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Handles one request in a fresh instance.
    pub async fn handle(&self, request: Request) -> Result<Response> {
        let (_slot, mut store, service) = self.instance().await?;
        service
            .wats_service_handler()
            .call_handle(&mut store, &request)
            .await
            .map_err(anyhow::Error::from)
            .context("calling handle")
    }

    /// Sends up to `limit` due outbox items, in a fresh instance.
    pub async fn drain(&self, limit: u32) -> Result<DrainReport> {
        let (_slot, mut store, service) = self.instance().await?;
        service
            .wats_service_scheduler()
            .call_drain(&mut store, limit)
            .await
            .map_err(anyhow::Error::from)
            .context("calling drain")
    }

    /// A fresh instance in its own Store, holding a pool slot.
    async fn instance(&self) -> Result<(SemaphorePermit<'_>, Store<State>, Service)> {
        let slot = self
            .slots
            .acquire()
            .await
            .context("the instance pool is closed")?;
        let mut store = Store::new(
            &self.engine,
            State {
                services: self.services.clone(),
            },
        );
        store.set_epoch_deadline(DEADLINE_TICKS);
        let service = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating")?;
        Ok((slot, store, service))
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
    Arc::new(Semaphore::new(MAX_CONCURRENT_INSTANCES as usize))
}

impl types::Host for State {}

impl outbound_http::Host for State {
    async fn send(&mut self, request: OutgoingRequest) -> Result<Response, OutboundError> {
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
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.services.kv.get(&key).map_err(kv_error)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl: Option<u32>,
    ) -> Result<(), kv::KvError> {
        self.services.kv.set(&key, &value, ttl).map_err(kv_error)
    }

    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl: Option<u32>,
    ) -> Result<bool, kv::KvError> {
        self.services
            .kv
            .set_if_absent(&key, &value, ttl)
            .map_err(kv_error)
    }

    async fn remove(&mut self, key: String) -> Result<(), kv::KvError> {
        self.services.kv.remove(&key).map_err(kv_error)
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

impl log::Host for State {
    async fn write(&mut self, level: Level, event: String, fields: Vec<(String, String)>) {
        self.services.log.write(level, &event, &fields);
    }
}
