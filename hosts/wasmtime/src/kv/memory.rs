//! The memory store: a sorted map behind one lock (`wats serve --memory`,
//! and tests).

use super::{check_size, check_sizes, expiry, list_start, live, page, SWEEP_EVERY_MILLIS};
use crate::services::{Clock, KvFailure, KvStore};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use wats::{KvEntry, KvOp};

/// Key to value and expiry (milliseconds since the epoch).
type Entries = BTreeMap<String, (Vec<u8>, Option<u64>)>;

pub struct MemoryKv {
    state: Mutex<MemoryState>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct MemoryState {
    entries: Entries,
    /// When expired entries are next swept out. Between sweeps every read
    /// checks expiry itself, so a sweep is housekeeping, not correctness;
    /// sweeping on every call made each operation O(entries).
    next_sweep: u64,
}

impl MemoryKv {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryKv {
        MemoryKv {
            state: Mutex::default(),
            clock,
        }
    }

    /// The entries and the time now, swept if a sweep is due.
    fn entries(&self) -> (MutexGuard<'_, MemoryState>, u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.clock.now_millis();
        if now >= state.next_sweep {
            state.entries.retain(|_, (_, expires)| live(*expires, now));
            state.next_sweep = now + SWEEP_EVERY_MILLIS;
        }
        (state, now)
    }
}

impl KvStore for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        let (state, now) = self.entries();
        Ok(state
            .entries
            .get(key)
            .filter(|(_, expires)| live(*expires, now))
            .map(|(value, _)| value.clone()))
    }

    fn set(&self, key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), KvFailure> {
        check_size(value)?;
        let expires = expiry(&*self.clock, ttl_seconds);
        self.entries()
            .0
            .entries
            .insert(key.to_owned(), (value.to_vec(), expires));
        Ok(())
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvFailure> {
        check_size(value)?;
        let expires = expiry(&*self.clock, ttl_seconds);
        let (mut state, now) = self.entries();
        if let Some((_, current)) = state.entries.get(key) {
            if live(*current, now) {
                return Ok(false);
            }
        }
        state
            .entries
            .insert(key.to_owned(), (value.to_vec(), expires));
        Ok(true)
    }

    fn remove(&self, key: &str) -> Result<(), KvFailure> {
        self.entries().0.entries.remove(key);
        Ok(())
    }

    /// Atomic: the whole batch runs under the lock.
    fn apply(&self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        check_sizes(ops)?;
        let (mut state, now) = self.entries();
        let entries = &mut state.entries;
        let found = |entries: &Entries, key: &str| {
            let (value, expires) = entries.get(key)?;
            live(*expires, now).then(|| value.clone())
        };
        let store = |entries: &mut Entries, entry: &KvEntry| {
            let expires = expiry(&*self.clock, entry.ttl_seconds);
            entries.insert(entry.key.clone(), (entry.value.clone(), expires));
            None
        };
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            answers.push(match op {
                KvOp::Get(key) => found(entries, key),
                KvOp::Set(entry) => store(entries, entry),
                KvOp::SetIfAbsent(entry) => {
                    found(entries, &entry.key).or_else(|| store(entries, entry))
                }
                KvOp::Remove(key) => {
                    entries.remove(key);
                    None
                }
            });
        }
        Ok(answers)
    }

    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        let (state, now) = self.entries();
        let after = cursor.unwrap_or("");
        // Range scan from the prefix (or the cursor) instead of every key.
        let keys: Vec<String> = state
            .entries
            .range::<str, _>((
                std::ops::Bound::Included(list_start(prefix, after)),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(key, (_, expires))| key.as_str() > after && live(*expires, now))
            .take(limit as usize + 1)
            .map(|(key, _)| key.clone())
            .collect();
        Ok(page(keys, limit))
    }
}
