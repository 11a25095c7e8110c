//! Runs the Spin app's component (`hosts/spin`, a `wasi:http/proxy`
//! component) on loopback the way Spin 3 does, since Spin itself cannot be
//! installed here: wasi:http from `wasmtime-wasi-http`, and the two
//! interfaces Spin adds, implemented here:
//! - `wasi:keyvalue` (draft 2: store and compare-and-swap) over one of the
//!   host's stores (SQLite or memory), the label `default` only;
//! - `wasi:config`, Spin's variables: every `WATS_*` setting, lower-cased.
//!
//! Each request gets a fresh instance, as in Spin.

use crate::http_server::host_error;
use crate::runtime::Level;
use crate::services::{KvFailure, KvStore, LogSink};
use crate::sinks::StderrLog;
use anyhow::{Context as _, Result};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wats::ApiError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../spin/wit",
        world: "wats:spin-host/imports",
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
        imports: { default: async },
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, store};

/// The only store label offered, as in a Spin app with
/// `key_value_stores = ["default"]`.
const STORE_LABEL: &str = "default";
/// Keys per `list-keys` page.
const LIST_PAGE: u32 = 1000;
/// A request whose component has not answered by then gets a 500.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A handle on the store (there is one).
pub struct Bucket;

/// A compare-and-swap in progress: the value the key held when it began.
pub struct Cas {
    key: String,
    seen: Option<Vec<u8>>,
}

/// Spin's key-value store over a host store. Writes take one lock, so the
/// compare and the write of a swap cannot interleave with another write.
/// `latency` delays every call, as a store across the network would (the
/// race tests use it to make concurrent requests overlap).
pub struct SpinKv {
    store: Arc<dyn KvStore>,
    writes: Mutex<()>,
    latency: Duration,
}

impl SpinKv {
    pub fn new(store: Arc<dyn KvStore>, latency: Duration) -> SpinKv {
        SpinKv {
            store,
            writes: Mutex::new(()),
            latency,
        }
    }

    async fn read<T>(&self, read: impl FnOnce(&dyn KvStore) -> T) -> T {
        self.wait().await;
        read(&*self.store)
    }

    async fn write<T>(&self, write: impl FnOnce(&dyn KvStore) -> T) -> T {
        self.wait().await;
        let _serialized = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        write(&*self.store)
    }

    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

/// What one request's Store holds.
pub struct SpinState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    kv: Arc<SpinKv>,
    variables: Arc<HashMap<String, String>>,
}

impl WasiView for SpinState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SpinState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Store failures carry no detail to the guest: keys may hold ids.
fn kv_error(_: KvFailure) -> store::Error {
    store::Error::Other("the key-value store failed".into())
}

fn table_error(_: wasmtime::component::ResourceTableError) -> store::Error {
    store::Error::Other("too many open handles".into())
}

impl store::Host for SpinState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        if identifier != STORE_LABEL {
            return Err(store::Error::NoSuchStore);
        }
        self.table.push(Bucket).map_err(table_error)
    }
}

impl store::HostBucket for SpinState {
    async fn get(
        &mut self,
        _: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        self.kv
            .read(|store| store.get(&key))
            .await
            .map_err(kv_error)
    }

    async fn set(
        &mut self,
        _: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        self.kv
            .write(|store| store.set(&key, &value, None))
            .await
            .map_err(kv_error)
    }

    async fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        self.kv
            .write(|store| store.remove(&key))
            .await
            .map_err(kv_error)
    }

    async fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        let (keys, cursor) = self
            .kv
            .read(|store| store.list("", cursor.as_deref(), LIST_PAGE))
            .await
            .map_err(kv_error)?;
        Ok(store::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::HostCas for SpinState {
    async fn new(
        &mut self,
        _: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, store::Error> {
        let seen = self
            .kv
            .read(|store| store.get(&key))
            .await
            .map_err(kv_error)?;
        self.table.push(Cas { key, seen }).map_err(table_error)
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, store::Error> {
        let cas = self.table.get(&cas).map_err(table_error)?;
        Ok(cas.seen.clone())
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl atomics::Host for SpinState {
    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let handle = self
            .table
            .get(&cas)
            .map_err(|e| atomics::CasError::StoreError(table_error(e)))?;
        let swapped = self
            .kv
            .write(|store| {
                if store.get(&handle.key)? != handle.seen {
                    return Ok(false);
                }
                store.set(&handle.key, &value, None).map(|()| true)
            })
            .await;
        match swapped {
            Ok(true) => {
                let _ = self.table.delete(cas);
                Ok(())
            }
            Ok(false) => Err(atomics::CasError::CasFailed(cas)),
            Err(failure) => Err(atomics::CasError::StoreError(kv_error(failure))),
        }
    }
}

impl config::Host for SpinState {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.variables.get(&key).cloned())
    }
}

/// Spin's variable names for the `WATS_*` settings: `WATS_APP_SECRET` is
/// `wats_app_secret`.
pub fn variables(settings: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    settings
        .into_iter()
        .filter(|(key, _)| key.starts_with("WATS_"))
        .map(|(key, value)| (key.to_ascii_lowercase(), value))
        .collect()
}

/// The compiled component, ready to instantiate per request.
pub struct SpinRuntime {
    pre: ProxyPre<SpinState>,
    kv: Arc<SpinKv>,
    variables: Arc<HashMap<String, String>>,
}

impl SpinRuntime {
    pub fn load(
        path: &Path,
        kv: SpinKv,
        variables: HashMap<String, String>,
    ) -> Result<SpinRuntime> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading the Spin component {}", path.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        bindings::Imports::add_to_linker::<_, HasSelf<SpinState>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .context("the component is not a wasi:http proxy this host can supply")?;
        Ok(SpinRuntime {
            pre,
            kv: Arc::new(kv),
            variables: Arc::new(variables),
        })
    }

    fn store(&self) -> Store<SpinState> {
        let state = SpinState {
            table: ResourceTable::new(),
            // The guest's stderr is its log, as in Spin; nothing else.
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            kv: self.kv.clone(),
            variables: self.variables.clone(),
        };
        Store::new(self.pre.engine(), state)
    }

    /// One request through a fresh instance. The instance may run on after
    /// the response (the component drains the outbox after a 202).
    pub async fn handle(
        &self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.store();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(anyhow::Error::from)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(anyhow::Error::from)?;
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match tokio::time::timeout(ANSWER_TIMEOUT, receiver).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(_))) => anyhow::bail!("the component answered with an error"),
            Ok(Err(_)) => {
                let _ = task.await;
                anyhow::bail!("the component ended without answering")
            }
            Err(_) => anyhow::bail!("the component did not answer in time"),
        }
    }
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    runtime: Arc<SpinRuntime>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    crate::http_server::accept(listener, shutdown, move |request| {
        let runtime = runtime.clone();
        async move {
            runtime.handle(request).await.unwrap_or_else(|_| {
                // No detail: a trap's text could quote request data.
                StderrLog.write(Level::Error, "wats.host.request_failed", &[]);
                host_error(ApiError::Internal)
                    .map(|body| body.map_err(|never| match never {}).boxed_unsync())
            })
        }
    })
    .await
}
