//! The service's kv on a Durable Object with SQLite storage.
//!
//! Workers KV is eventually consistent, has no compare-and-swap and lists
//! only forwards from opaque cursors: webhook dedupe, Idempotency-Key,
//! message statuses and outbox leases all need an atomic set-if-absent, and
//! paging needs ordered listing after a key. A Durable Object runs one
//! request at a time and its SQLite calls are synchronous, so each operation
//! below is atomic and every read sees every earlier write. Keys are the
//! service's ASCII keys (docs/kv-schema.md); expired rows are invisible at
//! once and deleted by an alarm.

use wats::{KvError, KvPage};
use worker::{
    durable_object, js_sys, Date, DurableObject, Env, Headers, Method, Request, RequestInit,
    Response, SqlStorageValue, State, Stub,
};

/// How often the alarm deletes expired rows.
const SWEEP_MILLIS: u64 = 60 * 60 * 1000;

/// The Worker's side: one stub per request.
pub struct StateClient {
    stub: Stub,
}

impl StateClient {
    /// None when the Worker has no such binding: the service then runs
    /// without a store (`persistence_not_configured` where it needs one).
    pub fn connect(env: &Env, binding: &str, name: &str) -> Option<StateClient> {
        let namespace = env.durable_object(binding).ok()?;
        let stub = namespace.id_from_name(name).ok()?.get_stub().ok()?;
        Some(StateClient { stub })
    }

    async fn call(
        &self,
        op: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), KvError> {
        let unavailable = || KvError::Unavailable("durable object call failed".into());
        let request_headers = Headers::new();
        for (name, value) in headers {
            request_headers
                .set(name, value)
                .map_err(|_| unavailable())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(request_headers);
        if let Some(body) = body {
            init.with_body(Some(js_sys::Uint8Array::from(body).into()));
        }
        let request = Request::new_with_init(&format!("https://wats-state/{op}"), &init)
            .map_err(|_| unavailable())?;
        let mut response = self
            .stub
            .fetch_with_request(request)
            .await
            .map_err(|_| unavailable())?;
        let bytes = response.bytes().await.map_err(|_| unavailable())?;
        match response.status_code() {
            500.. => Err(unavailable()),
            status => Ok((status, bytes)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let (status, body) = self.call("get", &[("x-key", key)], None).await?;
        Ok((status == 200).then_some(body))
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvError> {
        let ttl = ttl.map(|t| t.to_string()).unwrap_or_default();
        self.call("set", &[("x-key", key), ("x-ttl", &ttl)], Some(value))
            .await
            .map(|_| ())
    }

    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<u32>,
    ) -> Result<bool, KvError> {
        let ttl = ttl.map(|t| t.to_string()).unwrap_or_default();
        let (_, body) = self
            .call(
                "set-if-absent",
                &[("x-key", key), ("x-ttl", &ttl)],
                Some(value),
            )
            .await?;
        Ok(body == b"1")
    }

    pub async fn remove(&self, key: &str) -> Result<(), KvError> {
        self.call("remove", &[("x-key", key)], None)
            .await
            .map(|_| ())
    }

    pub async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        let limit = limit.to_string();
        let mut headers = vec![("x-prefix", prefix), ("x-limit", limit.as_str())];
        if let Some(cursor) = cursor {
            headers.push(("x-cursor", cursor));
        }
        let (_, body) = self.call("list", &headers, None).await?;
        let page: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| KvError::Other("unreadable page".into()))?;
        let keys = page["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(KvPage {
            keys,
            cursor: page["cursor"].as_str().map(str::to_owned),
        })
    }
}

/// The Durable Object: the rows of one phone number's state.
#[durable_object]
pub struct WatsState {
    state: State,
}

impl WatsState {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn now() -> i64 {
        Date::now().as_millis() as i64
    }

    fn expiry(ttl: Option<String>) -> SqlStorageValue {
        match ttl.and_then(|t| t.parse::<i64>().ok()) {
            Some(seconds) => SqlStorageValue::Integer(Self::now() + seconds * 1000),
            None => SqlStorageValue::Null,
        }
    }

    async fn arm_sweep(&self) -> worker::Result<()> {
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(SWEEP_MILLIS as i64).await?;
        }
        Ok(())
    }

    async fn serve(&self, mut request: Request) -> worker::Result<Response> {
        let header = |name: &str| request.headers().get(name).ok().flatten();
        let key = header("x-key").unwrap_or_default();
        let ttl = header("x-ttl").filter(|t| !t.is_empty());
        let op = request.path();
        let sql = self.sql();
        let now = SqlStorageValue::Integer(Self::now());
        match op.as_str() {
            "/get" => {
                let rows = sql.exec(
                    "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                    vec![key.into(), now],
                )?;
                match rows.raw().next() {
                    Some(row) => match row?.into_iter().next() {
                        Some(SqlStorageValue::Blob(value)) => Response::from_bytes(value),
                        _ => Response::from_bytes(Vec::new()),
                    },
                    None => Ok(Response::empty()?.with_status(404)),
                }
            }
            "/set" | "/set-if-absent" => {
                let has_ttl = ttl.is_some();
                let value = request.bytes().await?;
                let expires = Self::expiry(ttl);
                let written = if op == "/set" {
                    sql.exec(
                        "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) \
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                        vec![key.into(), value.into(), expires],
                    )?;
                    true
                } else {
                    // Both statements run before this request yields: no
                    // other request can come between them.
                    sql.exec(
                        "DELETE FROM kv WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?",
                        vec![key.clone().into(), now],
                    )?;
                    let cursor = sql.exec(
                        "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
                        vec![key.into(), value.into(), expires],
                    )?;
                    cursor.rows_written() > 0
                };
                if has_ttl {
                    self.arm_sweep().await?;
                }
                Response::ok(if written { "1" } else { "0" })
            }
            "/remove" => {
                sql.exec("DELETE FROM kv WHERE key = ?", vec![key.into()])?;
                Response::empty()
            }
            "/list" => {
                let prefix = header("x-prefix").unwrap_or_default();
                let cursor = header("x-cursor").unwrap_or_default();
                let limit: i64 = header("x-limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100);
                // Keys are ASCII: every key with the prefix sorts below
                // prefix + DEL.
                let end = format!("{prefix}\u{7f}");
                let rows = sql.exec(
                    "SELECT key FROM kv WHERE key >= ? AND key < ? AND key > ? \
                     AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
                    vec![
                        prefix.into(),
                        end.into(),
                        cursor.into(),
                        now,
                        (limit + 1).into(),
                    ],
                )?;
                let mut keys = Vec::new();
                for row in rows.raw() {
                    if let Some(SqlStorageValue::String(key)) = row?.into_iter().next() {
                        keys.push(key);
                    }
                }
                let more = keys.len() as i64 > limit;
                keys.truncate(limit as usize);
                let cursor = if more { keys.last().cloned() } else { None };
                Response::from_json(&serde_json::json!({ "keys": keys, "cursor": cursor }))
            }
            _ => Ok(Response::empty()?.with_status(404)),
        }
    }
}

impl DurableObject for WatsState {
    fn new(state: State, _env: Env) -> Self {
        let store = WatsState { state };
        // Runs once per object start; cheap when the table exists.
        let _ = store.sql().exec(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER)",
            None,
        );
        store
    }

    async fn fetch(&self, request: Request) -> worker::Result<Response> {
        match self.serve(request).await {
            Ok(response) => Ok(response),
            // Never the error's text: it may quote a key.
            Err(_) => Ok(Response::error("store failure", 500)?),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let now = SqlStorageValue::Integer(Self::now());
        self.sql().exec(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?",
            vec![now],
        )?;
        let rows = self.sql().exec(
            "SELECT 1 FROM kv WHERE expires_at IS NOT NULL LIMIT 1",
            None,
        )?;
        if rows.raw().next().is_some() {
            self.state.storage().set_alarm(SWEEP_MILLIS as i64).await?;
        }
        Response::ok("swept")
    }
}
