//! A fault-injecting host for tests: wrappers around the kv store, the
//! Graph client and the event sink that fail a set share of calls, the way
//! a flaky network and a struggling store do.
//!
//! Faults are drawn from a seeded generator, so a run with one seed injects
//! the same faults in the same order every time (given the same calls).

use crate::runtime::{OutboundError, OutgoingRequest, Response, Update};
use crate::services::{BoxFuture, EventSink, KvFailure, KvStore, Outbound};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wats::KvOp;

fn per_mille(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * 1000.0).round() as u32
}

/// Where faults come from, and how many were injected.
pub struct Faults {
    /// Out of 1000 calls.
    per_mille: AtomicU32,
    state: Mutex<u64>,
    pub kv_injected: AtomicUsize,
    pub graph_injected: AtomicUsize,
    pub dispatch_injected: AtomicUsize,
}

impl Faults {
    /// Fails `share` (0.0 to 1.0) of the calls of every wrapper using it.
    pub fn new(seed: u64, share: f64) -> Arc<Faults> {
        Arc::new(Faults {
            per_mille: AtomicU32::new(per_mille(share)),
            state: Mutex::new(seed | 1),
            kv_injected: AtomicUsize::new(0),
            graph_injected: AtomicUsize::new(0),
            dispatch_injected: AtomicUsize::new(0),
        })
    }

    /// A number from the generator (xorshift64*).
    fn next(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Whether this call fails, and if so one of `kinds` fault kinds.
    fn strike(&self, kinds: u64) -> Option<u64> {
        let draw = self.next();
        let per_mille = self.per_mille.load(Ordering::Relaxed);
        ((draw % 1000) < u64::from(per_mille)).then_some((draw >> 32) % kinds)
    }

    /// Changes the share of calls that fail (0.0 stops injecting).
    pub fn set_share(&self, share: f64) {
        self.per_mille.store(per_mille(share), Ordering::Relaxed);
    }

    pub fn injected(&self) -> usize {
        self.kv_injected.load(Ordering::Relaxed)
            + self.graph_injected.load(Ordering::Relaxed)
            + self.dispatch_injected.load(Ordering::Relaxed)
    }
}

/// A kv store whose calls fail: before the operation (nothing happened),
/// or after it (it happened, but the caller hears a timeout), or as a
/// timeout before it.
pub struct FaultyKv {
    pub inner: Arc<dyn KvStore>,
    pub faults: Arc<Faults>,
}

enum KvFault {
    FailBefore,
    TimeoutBefore,
    TimeoutAfter,
}

impl FaultyKv {
    fn fault(&self) -> Option<KvFault> {
        let kind = self.faults.strike(3)?;
        self.faults.kv_injected.fetch_add(1, Ordering::Relaxed);
        Some(match kind {
            0 => KvFault::FailBefore,
            1 => KvFault::TimeoutBefore,
            _ => KvFault::TimeoutAfter,
        })
    }

    fn call<T>(
        &self,
        operation: impl FnOnce(&dyn KvStore) -> Result<T, KvFailure>,
    ) -> Result<T, KvFailure> {
        match self.fault() {
            None => operation(&*self.inner),
            Some(KvFault::FailBefore) => Err(KvFailure::Unavailable("injected: failure".into())),
            Some(KvFault::TimeoutBefore) => Err(KvFailure::Unavailable("injected: timeout".into())),
            Some(KvFault::TimeoutAfter) => {
                let _ = operation(&*self.inner);
                Err(KvFailure::Unavailable("injected: timeout".into()))
            }
        }
    }
}

impl KvStore for FaultyKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        self.call(|kv| kv.get(key))
    }

    fn set(&self, key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), KvFailure> {
        self.call(|kv| kv.set(key, value, ttl_seconds))
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvFailure> {
        self.call(|kv| kv.set_if_absent(key, value, ttl_seconds))
    }

    fn remove(&self, key: &str) -> Result<(), KvFailure> {
        self.call(|kv| kv.remove(key))
    }

    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        self.call(|kv| kv.list(prefix, cursor, limit))
    }

    /// One fault decision for the whole batch, as for one call.
    fn apply(&self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        self.call(|kv| kv.apply(ops))
    }

    fn batch(&self) -> u64 {
        self.inner.batch()
    }

    fn commit(&self, batches: std::ops::RangeInclusive<u64>) -> Result<(), KvFailure> {
        self.inner.commit(batches)
    }

    fn commit_async(
        &self,
        batches: std::ops::RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<(), KvFailure>> {
        self.inner.commit_async(batches)
    }
}

/// A Graph that times out (before the request reached it), answers 500, or
/// answers 429 with `Retry-After: 1`, for a share of calls.
pub struct FaultyGraph {
    pub inner: Arc<dyn Outbound>,
    pub faults: Arc<Faults>,
}

fn graph_error(status: u16, code: i64, retry_after: Option<&str>) -> Response {
    let body = format!(
        r#"{{"error":{{"message":"injected","type":"OAuthException","code":{code},"fbtrace_id":"injected"}}}}"#
    );
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(seconds) = retry_after {
        headers.push(("retry-after".into(), seconds.into()));
    }
    Response {
        status,
        headers,
        body: body.into_bytes(),
    }
}

impl Outbound for FaultyGraph {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        let Some(kind) = self.faults.strike(3) else {
            return self.inner.send(request);
        };
        self.faults.graph_injected.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            match kind {
                0 => Err(OutboundError::Timeout),
                1 => Ok(graph_error(500, 2, None)),
                _ => Ok(graph_error(429, 130429, Some("1"))),
            }
        })
    }
}

/// An event sink that refuses a share of updates.
pub struct FaultyEvents {
    pub inner: Arc<dyn EventSink>,
    pub faults: Arc<Faults>,
}

impl EventSink for FaultyEvents {
    fn dispatch(&self, update: &Update) -> Result<(), String> {
        if self.faults.strike(1).is_some() {
            self.faults
                .dispatch_injected
                .fetch_add(1, Ordering::Relaxed);
            return Err("injected: dispatch failed".into());
        }
        self.inner.dispatch(update)
    }
}
