//! The service's kv over `wasi:keyvalue` (draft 2, as Spin 3 offers it).
//!
//! Spin's store has no expiry and no ordered listing, so:
//! - each value is stored behind an 8-byte big-endian expiry (milliseconds
//!   since the epoch, 0 for none); an expired value reads as absent and is
//!   replaced by the next set-if-absent, but stays in the store until then;
//! - set-if-absent is a compare-and-swap (`wasi:keyvalue/atomics`), so two
//!   instances cannot both claim a key;
//! - listing reads every key of the store and sorts: fine for thousands of
//!   records, slow for millions (docs/hosts/spin.md).

use crate::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use crate::bindings::wasi::keyvalue::store::{self, Bucket};
use wats::{KvError, KvOp, KvPage};

/// The store the component asks for: Spin's default one.
pub const STORE_LABEL: &str = "default";
/// How often a read-modify-write retries when another instance wrote first.
const MAX_CAS_ATTEMPTS: usize = 16;
const EXPIRY_BYTES: usize = 8;

pub struct SpinStore {
    bucket: Bucket,
}

/// Store messages may name keys (which hold WhatsApp ids): never passed on.
fn failure(error: store::Error) -> KvError {
    match error {
        store::Error::NoSuchStore | store::Error::AccessDenied => KvError::NotConfigured,
        store::Error::Other(_) => KvError::Unavailable("the key-value store failed".into()),
    }
}

fn encode(value: &[u8], expires_at: u64) -> Vec<u8> {
    let mut stored = Vec::with_capacity(EXPIRY_BYTES + value.len());
    stored.extend_from_slice(&expires_at.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// The value, unless it has expired (or is not one of ours).
fn decode(mut stored: Vec<u8>, now: u64) -> Option<Vec<u8>> {
    let expiry: [u8; EXPIRY_BYTES] = stored.get(..EXPIRY_BYTES)?.try_into().ok()?;
    let expires_at = u64::from_be_bytes(expiry);
    if expires_at != 0 && expires_at <= now {
        return None;
    }
    Some(stored.split_off(EXPIRY_BYTES))
}

fn expiry(now: u64, ttl_seconds: Option<u32>) -> u64 {
    ttl_seconds.map_or(0, |ttl| now + u64::from(ttl) * 1000)
}

impl SpinStore {
    /// The component's store; `NotConfigured` when the app grants none.
    pub fn open() -> Result<SpinStore, KvError> {
        let bucket = store::open(STORE_LABEL).map_err(failure)?;
        Ok(SpinStore { bucket })
    }

    pub fn get(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, KvError> {
        let stored = self.bucket.get(key).map_err(failure)?;
        Ok(stored.and_then(|stored| decode(stored, now)))
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Option<u32>, now: u64) -> Result<(), KvError> {
        let stored = encode(value, expiry(now, ttl));
        self.bucket.set(key, &stored).map_err(failure)
    }

    /// Stores the value unless the key holds a live one; answers that one.
    pub fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<u32>,
        now: u64,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let cas = Cas::new(&self.bucket, key).map_err(failure)?;
        let current = cas.current().map_err(failure)?;
        if let Some(held) = current.and_then(|stored| decode(stored, now)) {
            return Ok(Some(held));
        }
        match atomics::swap(cas, &encode(value, expiry(now, ttl))) {
            Ok(()) => Ok(None),
            // Another instance wrote the key since: it is not absent.
            Err(CasError::CasFailed(_)) => Ok(Some(self.get(key, now)?.unwrap_or_default())),
            Err(CasError::StoreError(error)) => Err(failure(error)),
        }
    }

    /// Replaces the value with `change(current)` by compare-and-swap,
    /// retrying when another instance wrote in between.
    pub fn update(
        &self,
        key: &str,
        now: u64,
        change: impl Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), KvError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let cas = Cas::new(&self.bucket, key).map_err(failure)?;
            let current = cas.current().map_err(failure)?;
            let next = change(current.and_then(|stored| decode(stored, now)));
            match atomics::swap(cas, &encode(&next, 0)) {
                Ok(()) => return Ok(()),
                Err(CasError::CasFailed(_)) => continue,
                Err(CasError::StoreError(error)) => return Err(failure(error)),
            }
        }
        Err(KvError::Unavailable("the key is contended".into()))
    }

    /// A batch, op by op: each op is atomic for its key (set-if-absent by
    /// compare-and-swap), but a batch is not one unit, since Spin's store
    /// has no transactions (docs/kv-schema.md).
    pub fn apply(&self, ops: Vec<KvOp>, now: u64) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            answers.push(match op {
                KvOp::Get(key) => self.get(&key, now)?,
                KvOp::Set(entry) => {
                    self.set(&entry.key, &entry.value, entry.ttl_seconds, now)?;
                    None
                }
                KvOp::SetIfAbsent(entry) => {
                    self.set_if_absent(&entry.key, &entry.value, entry.ttl_seconds, now)?
                }
                KvOp::Remove(key) => {
                    self.remove(&key)?;
                    None
                }
            });
        }
        Ok(answers)
    }

    pub fn remove(&self, key: &str) -> Result<(), KvError> {
        self.bucket.delete(key).map_err(failure)
    }

    pub fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<KvPage, KvError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.bucket.list_keys(cursor.as_deref()).map_err(failure)?;
            keys.extend(page.keys.into_iter().filter(|key| {
                key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after)
            }));
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        keys.sort_unstable();
        Ok(page(keys, limit))
    }
}

/// The first `limit` keys, with a cursor when more follow.
fn page(mut keys: Vec<String>, limit: u32) -> KvPage {
    if keys.len() > limit as usize {
        keys.truncate(limit as usize);
        let cursor = keys.last().cloned();
        KvPage { keys, cursor }
    } else {
        KvPage { keys, cursor: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_expiry() {
        let stored = encode(b"claim", 2_000);
        assert_eq!(
            decode(stored.clone(), 1_999).as_deref(),
            Some(&b"claim"[..])
        );
        assert_eq!(decode(stored, 2_000), None, "expired at its expiry");
        assert_eq!(
            decode(encode(b"kept", 0), u64::MAX).as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(decode(b"short".to_vec(), 0), None, "not one of ours");
        assert_eq!(expiry(1_000, Some(60)), 61_000);
        assert_eq!(expiry(1_000, None), 0);
    }

    #[test]
    fn pages_stop_at_the_limit_with_a_cursor() {
        let keys = |n: usize| (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>();
        let full = page(keys(3), 2);
        assert_eq!(full.keys, ["k0", "k1"]);
        assert_eq!(full.cursor.as_deref(), Some("k1"));
        assert_eq!(page(keys(2), 2).cursor, None);
    }
}
