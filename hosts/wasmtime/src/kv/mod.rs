//! The stores behind the `kv` import: SQLite (the default of `wats serve`,
//! durable) and memory (`--memory`, and tests). Both are atomic for
//! set-if-absent because every operation holds one lock.

mod memory;
mod sqlite;

pub use memory::MemoryKv;
pub use sqlite::{Commits, SqliteKv};

use crate::services::{Clock, KvFailure};

/// Values larger than this are refused, as Workers KV's limit is 25 MiB and
/// no wats record comes near it.
const MAX_VALUE_BYTES: usize = 1 << 20;

fn expiry(clock: &dyn Clock, ttl_seconds: Option<u32>) -> Option<u64> {
    ttl_seconds.map(|ttl| clock.now_millis() + u64::from(ttl) * 1000)
}

fn check_size(value: &[u8]) -> Result<(), KvFailure> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvFailure::TooLarge);
    }
    Ok(())
}

/// `check_size` for every value a batch writes.
fn check_sizes(ops: &[wats::KvOp]) -> Result<(), KvFailure> {
    for op in ops {
        if let wats::KvOp::Set(entry) | wats::KvOp::SetIfAbsent(entry) = op {
            check_size(&entry.value)?;
        }
    }
    Ok(())
}

/// How often expired entries are dropped (memory) or swept (SQLite).
const SWEEP_EVERY_MILLIS: u64 = 1_000;

fn live(expires: Option<u64>, now: u64) -> bool {
    expires.is_none_or(|at| at > now)
}

/// Cuts a listing fetched with one extra key to `limit`, with a cursor when
/// the extra key shows that more follow.
fn page(mut keys: Vec<String>, limit: u32) -> (Vec<String>, Option<String>) {
    if keys.len() > limit as usize {
        keys.truncate(limit as usize);
        let cursor = keys.last().cloned();
        (keys, cursor)
    } else {
        (keys, None)
    }
}

/// Where a listing of `prefix` after the key `after` starts.
fn list_start<'a>(prefix: &'a str, after: &'a str) -> &'a str {
    if after > prefix {
        after
    } else {
        prefix
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::services::KvStore;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    pub(crate) struct TestClock(pub(crate) AtomicU64);

    impl Clock for TestClock {
        fn now_millis(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
        fn monotonic_nanos(&self) -> u64 {
            0
        }
    }

    fn stores() -> Vec<(Box<dyn KvStore>, Arc<TestClock>)> {
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let memory = MemoryKv::new(clock.clone());
        let clock2 = Arc::new(TestClock(AtomicU64::new(1_000)));
        let sqlite =
            SqliteKv::open(Path::new(":memory:"), clock2.clone(), Commits::Grouped).unwrap();
        vec![(Box::new(memory), clock), (Box::new(sqlite), clock2)]
    }

    #[test]
    fn set_if_absent_respects_live_values_and_replaces_expired_ones() {
        for (store, clock) in stores() {
            assert!(store.set_if_absent("k", b"a", Some(1)).unwrap());
            assert!(!store.set_if_absent("k", b"b", None).unwrap());
            assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"a"[..]));
            clock.0.fetch_add(1_000, Ordering::SeqCst);
            assert_eq!(store.get("k").unwrap(), None);
            assert!(store.set_if_absent("k", b"c", None).unwrap());
            assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"c"[..]));
            store.remove("k").unwrap();
            assert_eq!(store.get("k").unwrap(), None);
        }
    }

    #[test]
    fn a_batch_runs_in_order_and_answers_per_op() {
        use wats::KvOp;
        for (store, clock) in stores() {
            store.set("held", b"first", Some(1)).unwrap();
            let answers = store
                .apply(&[
                    KvOp::set_if_absent("held", b"second".to_vec(), None),
                    KvOp::set_if_absent("new", b"n".to_vec(), None),
                    KvOp::Get("new".into()),
                    KvOp::set("other", b"o".to_vec(), None),
                    KvOp::Remove("other".into()),
                    KvOp::Get("other".into()),
                ])
                .unwrap();
            assert_eq!(
                answers,
                [
                    Some(b"first".to_vec()),
                    None,
                    Some(b"n".to_vec()),
                    None,
                    None,
                    None
                ]
            );
            // An expired value does not hold its key.
            clock.0.fetch_add(1_000, Ordering::SeqCst);
            let answers = store
                .apply(&[KvOp::set_if_absent("held", b"third".to_vec(), None)])
                .unwrap();
            assert_eq!(answers, [None]);
            assert_eq!(store.get("held").unwrap().as_deref(), Some(&b"third"[..]));
        }
    }

    #[test]
    fn a_batch_with_an_oversized_value_writes_nothing() {
        use wats::KvOp;
        for (store, _) in stores() {
            let ops = [
                KvOp::set("a", b"1".to_vec(), None),
                KvOp::set("b", vec![0; MAX_VALUE_BYTES + 1], None),
            ];
            assert_eq!(store.apply(&ops), Err(KvFailure::TooLarge));
            assert_eq!(store.get("a").unwrap(), None);
        }
    }

    #[test]
    fn listing_pages_in_key_order() {
        for (store, _) in stores() {
            for key in ["p:3", "p:1", "q:1", "p:2"] {
                store.set(key, b"v", None).unwrap();
            }
            let (first, cursor) = store.list("p:", None, 2).unwrap();
            assert_eq!(first, ["p:1", "p:2"]);
            let (rest, cursor) = store.list("p:", cursor.as_deref(), 2).unwrap();
            assert_eq!((rest, cursor), (vec!["p:3".to_owned()], None));
        }
    }

    #[test]
    fn oversized_values_are_refused() {
        for (store, _) in stores() {
            assert_eq!(
                store.set("k", &vec![0; MAX_VALUE_BYTES + 1], None),
                Err(KvFailure::TooLarge)
            );
        }
    }
}
