//! Runs the Spin app's component (`hosts/spin`, a `wasi:http/proxy`
//! component) on loopback the way Spin 3 does, since Spin itself cannot be
//! installed here: wasi:http from `wasmtime-wasi-http`, and the interfaces
//! Spin adds, implemented here:
//! - `fermyon:spin/sqlite`, the app's `default` database: a SQLite file
//!   (or memory) that runs the component's statements, as Spin's local
//!   SQLite does;
//! - `wasi:keyvalue` (draft 2: store and compare-and-swap) over one of the
//!   host's stores (SQLite or memory), the label `default` only;
//! - `wasi:config`, Spin's variables: every `WATS_*` setting, lower-cased.
//!
//! The app grants one store, the database or the key-value store
//! (`SpinGrant`); opening the other is `access-denied`, as in Spin.
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
use std::sync::atomic::{AtomicU64, Ordering};
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
            "fermyon:spin/sqlite.connection": super::SqlConnection,
        },
        imports: { default: async },
    });
}

use bindings::fermyon::spin::sqlite;
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

/// A handle on the database (there is one).
pub struct SqlConnection;

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
    calls: AtomicU64,
}

impl SpinKv {
    pub fn new(store: Arc<dyn KvStore>, latency: Duration) -> SpinKv {
        SpinKv {
            store,
            writes: Mutex::new(()),
            latency,
            calls: AtomicU64::new(0),
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
        self.calls.fetch_add(1, Ordering::Relaxed);
        store_delay(self.latency).await;
    }
}

/// Spin's SQLite: one connection, shared by every instance as Spin's
/// local database is, each statement run whole under its lock. `latency`
/// delays every statement, as a database across the network would.
pub struct SpinSql {
    db: Mutex<rusqlite::Connection>,
    latency: Duration,
    calls: AtomicU64,
}

impl SpinSql {
    /// The database in this file, or in memory.
    pub fn open(path: Option<&Path>, latency: Duration) -> Result<SpinSql> {
        let db = match path {
            Some(path) => rusqlite::Connection::open(path),
            None => rusqlite::Connection::open_in_memory(),
        }
        .context("cannot open the Spin SQLite database")?;
        db.busy_timeout(Duration::from_secs(5))?;
        Ok(SpinSql {
            db: Mutex::new(db),
            latency,
            calls: AtomicU64::new(0),
        })
    }

    async fn execute(
        &self,
        statement: &str,
        parameters: Vec<sqlite::Value>,
    ) -> Result<sqlite::QueryResult, sqlite::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        store_delay(self.latency).await;
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        run_statement(&db, statement, parameters).map_err(|error| {
            // SQLite's message, as Spin passes it on: the component reads
            // "no such table" from it.
            sqlite::Error::Io(error.to_string())
        })
    }
}

fn run_statement(
    db: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<sqlite::Value>,
) -> rusqlite::Result<sqlite::QueryResult> {
    use rusqlite::types::{Value, ValueRef};
    let mut prepared = db.prepare_cached(statement)?;
    let columns: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let bound = parameters.into_iter().map(|value| match value {
        sqlite::Value::Integer(n) => Value::Integer(n),
        sqlite::Value::Real(x) => Value::Real(x),
        sqlite::Value::Text(text) => Value::Text(text),
        sqlite::Value::Blob(bytes) => Value::Blob(bytes),
        sqlite::Value::Null => Value::Null,
    });
    let mut rows = prepared.query(rusqlite::params_from_iter(bound))?;
    let mut results = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    ValueRef::Integer(n) => sqlite::Value::Integer(n),
                    ValueRef::Real(x) => sqlite::Value::Real(x),
                    ValueRef::Text(text) => {
                        sqlite::Value::Text(String::from_utf8_lossy(text).into_owned())
                    }
                    ValueRef::Blob(bytes) => sqlite::Value::Blob(bytes.to_vec()),
                    ValueRef::Null => sqlite::Value::Null,
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        results.push(sqlite::RowResult { values });
    }
    Ok(sqlite::QueryResult {
        columns,
        rows: results,
    })
}

/// The store the app's manifest grants the component.
pub enum SpinGrant {
    /// `sqlite_databases = ["default"]`.
    Sqlite(SpinSql),
    /// `key_value_stores = ["default"]`.
    KeyValue(SpinKv),
}

/// Waits `latency`, as a call to a store across the network would. Not
/// with tokio's sleep: its timer rounds up to its next millisecond tick, so
/// that 2 ms took 3.1 on average here, a thread's sleep 2.1 to 2.2.
async fn store_delay(latency: Duration) {
    if !latency.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(latency)).await;
    }
}

/// What one request's Store holds.
pub struct SpinState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    grant: Arc<SpinGrant>,
    variables: Arc<HashMap<String, String>>,
}

impl SpinState {
    /// The key-value store, if granted (else, as in Spin, access denied).
    fn kv(&self) -> Result<&SpinKv, store::Error> {
        match &*self.grant {
            SpinGrant::KeyValue(kv) => Ok(kv),
            SpinGrant::Sqlite(_) => Err(store::Error::AccessDenied),
        }
    }

    fn sql(&self) -> Result<&SpinSql, sqlite::Error> {
        match &*self.grant {
            SpinGrant::Sqlite(sql) => Ok(sql),
            SpinGrant::KeyValue(_) => Err(sqlite::Error::AccessDenied),
        }
    }
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
        self.kv()?;
        self.table.push(Bucket).map_err(table_error)
    }
}

impl store::HostBucket for SpinState {
    async fn get(
        &mut self,
        _: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        self.kv()?
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
        self.kv()?
            .write(|store| store.set(&key, &value, None))
            .await
            .map_err(kv_error)
    }

    async fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        self.kv()?
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
            .kv()?
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
            .kv()?
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
        let kv = self.kv().map_err(atomics::CasError::StoreError)?;
        let swapped = kv
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

impl sqlite::Host for SpinState {}

impl sqlite::HostConnection for SpinState {
    async fn open(&mut self, database: String) -> Result<Resource<SqlConnection>, sqlite::Error> {
        if database != STORE_LABEL {
            return Err(sqlite::Error::NoSuchDatabase);
        }
        self.sql()?;
        self.table
            .push(SqlConnection)
            .map_err(|_| sqlite::Error::Io("too many open handles".into()))
    }

    async fn execute(
        &mut self,
        _: Resource<SqlConnection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Result<sqlite::QueryResult, sqlite::Error> {
        self.sql()?.execute(&statement, parameters).await
    }

    async fn drop(&mut self, connection: Resource<SqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
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
    grant: Arc<SpinGrant>,
    variables: Arc<HashMap<String, String>>,
}

impl SpinRuntime {
    pub fn load(
        path: &Path,
        grant: SpinGrant,
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
            grant: Arc::new(grant),
            variables: Arc::new(variables),
        })
    }

    /// The calls the components made to the store so far: statements, or
    /// key-value calls (a compare-and-swap is two).
    pub fn store_calls(&self) -> u64 {
        match &*self.grant {
            SpinGrant::Sqlite(sql) => sql.calls.load(Ordering::Relaxed),
            SpinGrant::KeyValue(kv) => kv.calls.load(Ordering::Relaxed),
        }
    }

    fn store(&self) -> Store<SpinState> {
        let state = SpinState {
            table: ResourceTable::new(),
            // The guest's stderr is its log, as in Spin; nothing else.
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            grant: self.grant.clone(),
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
