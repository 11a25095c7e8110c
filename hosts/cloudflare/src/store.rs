//! The service's state: a Durable Object with SQLite storage, one per phone
//! number id, inside which the service itself runs.
//!
//! Workers KV is eventually consistent, has no compare-and-swap and lists
//! only forwards from opaque cursors: webhook dedupe, Idempotency-Key,
//! message statuses and outbox leases all need an atomic set-if-absent, and
//! paging needs ordered listing after a key. The Worker therefore forwards
//! each request to the object in one hop, and `wats::handle` runs there
//! over the object's synchronous SQL storage: a kv batch is one
//! `transactionSync` (atomic, rolled back whole on failure) with no round
//! trip, and every read sees every earlier write. Keys are the service's
//! ASCII keys (docs/kv-schema.md); expired rows are invisible at once and
//! deleted by the alarm, which also drains the outbox when a send is due.

use crate::host::WorkerHost;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wats::{Host, KvEntry, KvError, KvOp, KvPage};
use worker::{
    durable_object, js_sys, Date, DurableObject, Env, Request, Response, SqlStorage,
    SqlStorageValue, State, Storage,
};

/// How often, at most, the alarm comes back to delete expired rows.
const SWEEP_MILLIS: u64 = 60 * 60 * 1000;
/// Outbox items (and events) one drain sends at most, and the drains one
/// alarm runs at most; the alarm comes back for what is left.
const DRAIN_BATCH: u32 = 50;
const MAX_DRAIN_ROUNDS: usize = 20;

/// The object's SQL storage as the service's kv.
pub struct SqlKv {
    storage: Storage,
}

fn now() -> i64 {
    Date::now().as_millis() as i64
}

/// An alarm time as workers-rs takes it: milliseconds from now (an `i64`
/// is an offset there, not a time).
fn offset(at: u64) -> i64 {
    (at as i64 - now()).max(0)
}

fn expiry(ttl_seconds: Option<u32>) -> SqlStorageValue {
    match ttl_seconds {
        Some(seconds) => SqlStorageValue::Integer(now() + i64::from(seconds) * 1000),
        None => SqlStorageValue::Null,
    }
}

/// The live value of a key.
fn read(sql: &SqlStorage, key: &str) -> worker::Result<Option<Vec<u8>>> {
    let rows = sql.exec(
        "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
        vec![key.into(), now().into()],
    )?;
    let value = rows.raw().next().transpose()?;
    Ok(value.map(|row| match row.into_iter().next() {
        Some(SqlStorageValue::Blob(value)) => value,
        _ => Vec::new(),
    }))
}

fn write(sql: &SqlStorage, entry: KvEntry) -> worker::Result<()> {
    sql.exec(
        "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        vec![
            entry.key.into(),
            entry.value.into(),
            expiry(entry.ttl_seconds),
        ],
    )?;
    Ok(())
}

fn run_op(sql: &SqlStorage, op: KvOp) -> worker::Result<Option<Vec<u8>>> {
    match op {
        KvOp::Get(key) => read(sql, &key),
        KvOp::Set(entry) => write(sql, entry).map(|()| None),
        // An expired row reads as absent, and is replaced.
        KvOp::SetIfAbsent(entry) => match read(sql, &entry.key)? {
            Some(held) => Ok(Some(held)),
            None => write(sql, entry).map(|()| None),
        },
        KvOp::Remove(key) => {
            sql.exec("DELETE FROM kv WHERE key = ?", vec![key.into()])?;
            Ok(None)
        }
    }
}

/// Runs `work` inside `storage.transactionSync`: its writes commit together
/// or, when it fails, not at all. workers-rs binds only the asynchronous
/// `transaction`, whose callback may await; this one cannot, which is what
/// keeps every other request out of the middle of a batch.
fn transaction_sync<T: 'static>(
    storage: &Storage,
    work: impl FnOnce(&SqlStorage) -> worker::Result<T> + 'static,
) -> worker::Result<T> {
    let raw: &JsValue = storage.as_raw().as_ref();
    let run: js_sys::Function = js_sys::Reflect::get(raw, &"transactionSync".into())?
        .dyn_into()
        .map_err(|_| worker::Error::from("transactionSync is missing"))?;
    let sql = storage.sql();
    let outcome: Rc<RefCell<Option<worker::Result<T>>>> = Rc::default();
    let slot = outcome.clone();
    let body = Closure::once_into_js(move || -> Result<(), JsValue> {
        let result = work(&sql);
        let failed = result.is_err();
        *slot.borrow_mut() = Some(result);
        // Throwing is what rolls the transaction back.
        if failed {
            Err(JsValue::from_str("kv batch failed"))
        } else {
            Ok(())
        }
    });
    // A failed call has rolled back; `outcome` holds why (or nothing, if
    // the runtime refused to run the work at all).
    let _ = run.call1(raw, &body);
    let result = outcome.borrow_mut().take();
    result.unwrap_or_else(|| Err(worker::Error::from("the transaction did not run")))
}

impl SqlKv {
    pub fn batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        transaction_sync(&self.storage, move |sql| {
            ops.into_iter().map(|op| run_op(sql, op)).collect()
        })
        // Never the error's text: it may quote a key.
        .map_err(|_| KvError::Unavailable("durable object storage failed".into()))
    }

    pub fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KvPage, KvError> {
        let failed = |_| KvError::Unavailable("durable object storage failed".into());
        // Keys are ASCII: every key with the prefix sorts below prefix + DEL.
        let end = format!("{prefix}\u{7f}");
        let rows = self
            .storage
            .sql()
            .exec(
                "SELECT key FROM kv WHERE key >= ? AND key < ? AND key > ? \
                 AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
                vec![
                    prefix.into(),
                    end.into(),
                    cursor.unwrap_or_default().into(),
                    now().into(),
                    (i64::from(limit) + 1).into(),
                ],
            )
            .map_err(failed)?;
        let mut keys = Vec::new();
        for row in rows.raw() {
            if let Some(SqlStorageValue::String(key)) = row.map_err(failed)?.into_iter().next() {
                keys.push(key);
            }
        }
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        let cursor = if more { keys.last().cloned() } else { None };
        Ok(KvPage { keys, cursor })
    }
}

/// The Durable Object: one phone number's state, and the service over it.
#[durable_object]
pub struct WatsState {
    state: State,
    env: Env,
    /// Whether this start of the object has made sure its alarm is set
    /// (for the sweep of expired rows): checked once, not per request.
    alarm_checked: Cell<bool>,
}

impl WatsState {
    fn host(&self) -> WorkerHost {
        let kv = SqlKv {
            storage: self.state.storage(),
        };
        WorkerHost::new(self.env.clone(), Some(kv))
    }

    /// Brings the alarm forward to `at` (milliseconds) if it is unset or
    /// later.
    async fn arm(&self, at: u64) -> worker::Result<()> {
        let storage = self.state.storage();
        let scheduled = storage.get_alarm().await?;
        if scheduled.is_none_or(|scheduled| scheduled as u64 > at) {
            storage.set_alarm(offset(at)).await?;
        }
        Ok(())
    }
}

impl DurableObject for WatsState {
    fn new(state: State, env: Env) -> Self {
        // Runs once per object start; cheap when the table exists.
        let _ = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER)",
            None,
        );
        WatsState {
            state,
            env,
            alarm_checked: Cell::new(false),
        }
    }

    /// A request the Worker forwarded: the service answers it here.
    async fn fetch(&self, request: Request) -> worker::Result<Response> {
        let host = self.host();
        let method = request.method().to_string();
        let response = crate::serve(&host, request).await?;
        let now = now() as u64;
        // Work was queued (a send, a delivery's events): the alarm sends it
        // now, not a minute later. The answer stands whatever happens to
        // the alarm: the next request tries again.
        let queued =
            wats::config::work_queued(&|key| host.config(key), &method, response.status_code());
        let armed = if queued {
            self.arm(now).await
        } else if !self.alarm_checked.get() {
            self.arm(now + SWEEP_MILLIS).await
        } else {
            Ok(())
        };
        self.alarm_checked.set(armed.is_ok());
        Ok(response)
    }

    /// Sends due outbox items, deletes expired rows, and comes back when
    /// the next item is due (or for the next sweep).
    async fn alarm(&self) -> worker::Result<Response> {
        let host = self.host();
        let mut report = wats::drain(&host, DRAIN_BATCH).await;
        for _ in 1..MAX_DRAIN_ROUNDS {
            if !report.took_all_it_could(DRAIN_BATCH) {
                break;
            }
            report = wats::drain(&host, DRAIN_BATCH).await;
        }
        let sql = self.state.storage().sql();
        sql.exec(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?",
            vec![now().into()],
        )?;
        let sweep = now() as u64 + SWEEP_MILLIS;
        let next = report.next_due_millis.map_or(sweep, |due| due.min(sweep));
        self.state.storage().set_alarm(offset(next)).await?;
        Response::ok("done")
    }
}
