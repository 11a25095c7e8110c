//! A durable queue over kv, shared by the outbox (queued sends) and event
//! deliveries (updates for the application's endpoints): each item under
//! its id, an index of due keys in time order, and a lease per item.
//!
//! A lease is a kv key written with set-if-absent and a TTL, so one worker
//! holds an item at a time; a worker that dies lets its lease expire.
//! Keys: `<item><id>`, `<due><13-digit millis>:<id>`, `<lease><id>`
//! (docs/kv-schema.md).

use super::store;
use crate::context::Context;
use crate::core::config::STORE_EXCLUSIVE_KEY;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long a claim holds an item; a worker sends within one timeout.
pub(crate) const LEASE_SECONDS: u32 = 60;
const FIRST_BACKOFF_MILLIS: u64 = 2_000;
const MAX_BACKOFF_MILLIS: u64 = 15 * 60_000;
/// How soon, at the earliest, a drain asks to be called again: an item due
/// now but leased by a send in flight cannot be claimed before its lease
/// ends, and a host should not spin on it.
const MIN_REDRAIN_MILLIS: u64 = 1_000;

/// What a queue needs of its items.
pub(crate) trait QueueItem: Serialize + DeserializeOwned {
    fn id(&self) -> &str;
    /// When it is due; a finished item has no due key.
    fn next_attempt_at(&self) -> u64;
    fn is_pending(&self) -> bool;
    /// Orders items due in the same millisecond (a delivery's events keep
    /// their delivery's order); 0 for none.
    fn order(&self) -> u16 {
        0
    }
}

/// The key prefixes of one queue.
pub(crate) struct Queue {
    pub item: &'static str,
    pub due: &'static str,
    pub lease: &'static str,
}

/// An item held under a lease.
pub(crate) struct Leased<T> {
    pub item: T,
    pub lease_id: String,
}

impl Queue {
    pub(crate) fn item_key(&self, id: &str) -> String {
        format!("{}{id}", self.item)
    }

    pub(crate) fn lease_key(&self, id: &str) -> String {
        format!("{}{id}", self.lease)
    }

    /// `<due><millis, 13 digits>:<id>`, or with an order `<millis>.<order,
    /// 5 digits>:<id>`, which sorts before the unordered keys of that
    /// millisecond and among them by order.
    pub(crate) fn due_key(&self, item: &impl QueueItem) -> String {
        let (due, at, id) = (self.due, item.next_attempt_at(), item.id());
        match item.order() {
            0 => format!("{due}{at:013}:{id}"),
            order => format!("{due}{at:013}.{order:05}:{id}"),
        }
    }

    /// A due key's time (none if unreadable) and item id.
    fn parse_due_key<'k>(&self, key: &'k str) -> Option<(Option<u64>, &'k str)> {
        let (at, id) = key.strip_prefix(self.due)?.split_once(':')?;
        let millis = at.split('.').next().unwrap_or(at);
        Some((millis.parse().ok(), id))
    }

    pub(crate) fn parse<T: QueueItem>(bytes: Option<Vec<u8>>) -> Option<T> {
        bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    pub(crate) async fn load<T: QueueItem, H: Host>(
        &self,
        ctx: &Context<'_, H>,
        id: &str,
    ) -> Result<Option<T>, ApiError> {
        Ok(Queue::parse(store::get(ctx, &self.item_key(id)).await?))
    }

    /// The writes that store an item as it now is: the item (kept `ttl`
    /// seconds once finished), its due key while pending, the removal of
    /// the due key it had (after the new one: it may be the same key) and
    /// of its lease.
    pub(crate) fn store_ops<T: QueueItem>(
        &self,
        item: &T,
        old_due_key: &str,
        finished_ttl: u32,
    ) -> Vec<KvOp> {
        let pending = item.is_pending();
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        let mut ops = vec![KvOp::set(
            self.item_key(item.id()),
            bytes,
            (!pending).then_some(finished_ttl),
        )];
        let due_key = self.due_key(item);
        if pending {
            ops.push(KvOp::set(due_key.clone(), b"", None));
        }
        if old_due_key != due_key || !pending {
            ops.push(KvOp::Remove(old_due_key.to_owned()));
        }
        ops.push(KvOp::Remove(self.lease_key(item.id())));
        ops
    }

    /// Claims up to `limit` items that are due, each under a new lease.
    pub(crate) async fn claim<T: QueueItem, H: Host>(
        &self,
        ctx: &Context<'_, H>,
        limit: u32,
    ) -> Result<Vec<Leased<T>>, ApiError> {
        let now = ctx.host.now_millis();
        let mut claimed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store::list(ctx, self.due, cursor.as_deref(), limit.max(1) * 2).await?;
            // The due items of this page, no more than are still wanted: keys
            // are in due order, so the first one not due ends the claim.
            let wanted = limit.saturating_sub(claimed.len() as u32) as usize;
            let mut later = false;
            let mut due: Vec<(&String, &str)> = Vec::new();
            for due_key in &page.keys {
                let Some((at, id)) = self.parse_due_key(due_key) else {
                    continue;
                };
                if at.is_none_or(|at| at > now) {
                    later = true;
                    break;
                }
                if due.len() < wanted {
                    due.push((due_key, id));
                }
            }
            claimed.extend(self.lease_all(ctx, &due).await?);
            match page.cursor {
                Some(next) if !later && (claimed.len() as u32) < limit => cursor = Some(next),
                _ => break,
            }
        }
        Ok(claimed)
    }

    /// Takes a lease on each due item and reads the items, in one batch;
    /// then drops, in one more, the due keys that finished or rescheduled
    /// items left behind. An item whose lease another worker holds is
    /// skipped.
    async fn lease_all<T: QueueItem, H: Host>(
        &self,
        ctx: &Context<'_, H>,
        due: &[(&String, &str)],
    ) -> Result<Vec<Leased<T>>, ApiError> {
        // A lease names the life of the host that took it (its start), so
        // that a restarted host that is its store's only writer takes over
        // the leases its earlier life died holding, as it does webhook
        // claims, instead of waiting out their TTL.
        let life = ctx.host.started_millis();
        let lease_ids: Vec<String> = due
            .iter()
            .map(|(_, id)| format!("{life}:{}", unique_hex(ctx.host, id.as_bytes())))
            .collect();
        let exclusive = ctx.host.config(STORE_EXCLUSIVE_KEY).as_deref() == Some("1");
        let of_earlier_life = |held: &[u8]| {
            let held = String::from_utf8_lossy(held);
            exclusive
                && held
                    .split_once(':')
                    .is_none_or(|(at, _)| at != life.to_string())
        };
        let mut ops = Vec::with_capacity(due.len() * 2);
        for ((_, id), lease_id) in due.iter().zip(&lease_ids) {
            let lease =
                KvOp::set_if_absent(self.lease_key(id), lease_id.as_bytes(), Some(LEASE_SECONDS));
            ops.extend([lease, KvOp::Get(self.item_key(id))]);
        }
        let found = store::batch(ctx, ops).await?;
        let mut claimed = Vec::new();
        let mut cleanup = Vec::new();
        for (((due_key, id), lease_id), answers) in due.iter().zip(lease_ids).zip(found.chunks(2)) {
            let [held, item] = answers else {
                return Err(ApiError::StoreUnavailable);
            };
            match held {
                Some(held) if of_earlier_life(held) => {
                    cleanup.push(KvOp::set(
                        self.lease_key(id),
                        lease_id.as_bytes(),
                        Some(LEASE_SECONDS),
                    ));
                }
                Some(_) => continue, // another worker holds it
                None => {}
            }
            match Queue::parse::<T>(item.clone()) {
                Some(item) if item.is_pending() && self.due_key(&item) == **due_key => {
                    claimed.push(Leased { item, lease_id });
                    continue;
                }
                // Rescheduled, but its new due key may not have landed:
                // without one it would never be sent.
                Some(item) if item.is_pending() => {
                    cleanup.push(KvOp::set(self.due_key(&item), b"", None));
                }
                // Finished or missing: its due key is left over.
                Some(_) | None => {}
            }
            cleanup.extend([
                KvOp::Remove((*due_key).clone()),
                KvOp::Remove(self.lease_key(id)),
            ]);
        }
        store::write(ctx, cleanup).await?;
        Ok(claimed)
    }

    /// When the first item in the due index is due, not sooner than
    /// `MIN_REDRAIN_MILLIS` from now.
    pub(crate) async fn next_due<H: Host>(
        &self,
        ctx: &Context<'_, H>,
    ) -> Result<Option<u64>, ApiError> {
        let page = store::list(ctx, self.due, None, 1).await?;
        let due = page.keys.first().and_then(|key| self.parse_due_key(key)?.0);
        let soonest = ctx.host.now_millis() + MIN_REDRAIN_MILLIS;
        Ok(due.map(|due| due.max(soonest)))
    }
}

/// 16 hex characters unique to this call: no randomness is needed, only
/// distinct values per instance and moment.
pub(crate) fn unique_hex(host: &impl Host, salt: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(host.started_millis().to_be_bytes());
    hasher.update(host.monotonic_nanos().to_be_bytes());
    hasher.update(host.now_millis().to_be_bytes());
    hasher.update(salt);
    hex::encode(&hasher.finalize()[..8])
}

/// When to try again after `attempts` failures: doubling from 2 s up to
/// 15 min, and never before the receiver's Retry-After (seconds).
pub(crate) fn retry_at(now: u64, attempts: u32, retry_after: Option<&str>) -> u64 {
    let backoff = FIRST_BACKOFF_MILLIS
        .saturating_mul(1 << attempts.min(20))
        .min(MAX_BACKOFF_MILLIS);
    let asked = retry_after
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(0, |seconds| seconds.saturating_mul(1000));
    now + backoff.max(asked)
}

/// The earlier of two optional times.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        assert_eq!(retry_at(0, 0, None), 2_000);
        assert_eq!(retry_at(0, 3, None), 16_000);
        assert_eq!(retry_at(0, 30, None), 15 * 60_000);
        assert_eq!(retry_at(1_000, 0, Some("37")), 38_000);
        assert_eq!(retry_at(0, 3, Some("1")), 16_000);
        assert_eq!(retry_at(0, 0, Some("soon")), 2_000);
    }

    #[test]
    fn the_earliest_of_two_times() {
        assert_eq!(earliest(Some(3), Some(2)), Some(2));
        assert_eq!(earliest(None, Some(2)), Some(2));
        assert_eq!(earliest(None, None), None);
    }

    /// A lease names its host's life: a restarted host that is its store's
    /// only writer takes over the leases of its earlier life at once; a
    /// host sharing its store waits for them to expire.
    #[test]
    fn a_restarted_exclusive_host_takes_over_leases_of_its_earlier_life() {
        use crate::core::config::Secret;
        use crate::core::signing::SigningKey;
        use crate::state::events::{self, NewEvent};
        use crate::testing::{block_on, TestHost};
        let events = crate::core::config::Events {
            endpoints: vec![crate::core::config::Endpoint {
                url: Secret::new("https://app.example/hook"),
                kinds: Vec::new(),
            }],
            signing_key: SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        };
        for exclusive in [true, false] {
            let mut host = TestHost::configured();
            if exclusive {
                host.settings.insert(STORE_EXCLUSIVE_KEY.into(), "1".into());
            }
            host.started.set(1_000);
            let ctx = Context::new(&host, |_| None);
            let update = NewEvent {
                kind: "message",
                sequence: 0,
                dedupe_key: "message:wamid.L1",
                json: "{}",
            };
            block_on(store::write(
                &ctx,
                events::queue_ops(&ctx, &events, &update),
            ))
            .unwrap();
            let queue = Queue {
                item: "ev:item:",
                due: "ev:due:",
                lease: "ev:lease:",
            };
            let first: Vec<Leased<events::QueuedUpdate>> = block_on(queue.claim(&ctx, 10)).unwrap();
            assert_eq!(first.len(), 1);
            // The host dies holding the lease, and starts again.
            host.started.set(2_000);
            let ctx = Context::new(&host, |_| None);
            let again: Vec<Leased<events::QueuedUpdate>> = block_on(queue.claim(&ctx, 10)).unwrap();
            assert_eq!(
                again.len(),
                usize::from(exclusive),
                "exclusive: {exclusive}"
            );
        }
    }
}
