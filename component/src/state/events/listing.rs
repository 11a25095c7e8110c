//! Reading events back for the operator routes: a page of one state, a
//! retry, each endpoint's state. Never a body or an endpoint's URL.

use super::{
    endpoint_hash, endpoint_index, split_event_id, EventDelivery, QueuedUpdate, State,
    ENDPOINT_PREFIX, FINISHED_PREFIX, FINISHED_TTL_SECONDS, ID_PREFIX, QUEUE, UPDATE_ID_LEN,
};
use crate::context::Context;
use crate::core::config::Events;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp};
use crate::core::time::iso8601;
use crate::state::queue::Queue;
use crate::state::store;
use serde_json::{json, Value};

impl QueuedUpdate {
    /// What the operator routes show of its event at `slot`: no body, no
    /// URL; the endpoint by its place in `WATS_EVENTS_ENDPOINTS` (null once
    /// it is no longer there).
    fn view(&self, slot: usize, events: &Events) -> Value {
        let event: &EventDelivery = &self.events[slot];
        json!({
            "id": self.event_id(slot),
            "webhookId": event.webhook_id,
            "endpoint": endpoint_index(events, &event.endpoint),
            "kind": self.kind,
            "state": event.state,
            "attempts": event.attempts,
            "createdAt": iso8601(event.since),
            "updatedAt": iso8601(event.updated_at),
            "nextAttemptAt": (event.state == State::Pending).then(|| iso8601(event.next_attempt_at)),
            "lastStatus": event.last_status,
            "lastError": event.last_error,
        })
    }
}

/// Whether `id` is an event id this service could have issued.
pub(crate) fn is_event_id(id: &str) -> bool {
    id.len() == ID_PREFIX.len() + UPDATE_ID_LEN + 2
        && id.starts_with(ID_PREFIX)
        && id[ID_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `cursor` is one a listing gave: `<13 digits>[.<5 digits>]:<update
/// id>` for pending events, `<13 digits>:<event id>` for finished ones.
pub(crate) fn is_cursor(cursor: &str) -> bool {
    let Some((position, id)) = cursor.split_once(':') else {
        return false;
    };
    let (millis, order) = position.split_once('.').unwrap_or((position, "00000"));
    let digits = |text: &str, n: usize| text.len() == n && text.bytes().all(|b| b.is_ascii_digit());
    let update_id = id.len() == UPDATE_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit());
    digits(millis, 13) && digits(order, 5) && (update_id || is_event_id(id))
}

pub(crate) struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// Events in one state: pending ones in the order their updates are due,
/// finished ones newest first. Two calls: the index, then the updates.
pub(crate) async fn list<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    state: State,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page, ApiError> {
    let prefix = match state {
        State::Pending => QUEUE.due.to_owned(),
        finished @ (State::Delivered | State::Failed) => {
            format!("{FINISHED_PREFIX}{}:", finished.name())
        }
    };
    let after = cursor.map(|cursor| format!("{prefix}{cursor}"));
    let page = store::list(ctx, &prefix, after.as_deref(), limit).await?;
    // Each key's update, and which of its events (all pending ones, for a
    // due key).
    let wanted: Vec<(&str, Option<usize>)> = page
        .keys
        .iter()
        .filter_map(|key| {
            let id = key.rsplit(':').next()?;
            Some(match split_event_id(id) {
                Some((update, slot)) => (update, Some(slot)),
                None => (id, None),
            })
        })
        .collect();
    let ops = wanted
        .iter()
        .map(|(update, _)| KvOp::Get(QUEUE.item_key(update)))
        .collect();
    let found = store::batch(ctx, ops).await?;
    let mut items = Vec::new();
    let (mut last, mut cut) = (None, false);
    for ((key, (_, slot)), update) in page.keys.iter().zip(&wanted).zip(found) {
        let Some(update) = Queue::parse::<QueuedUpdate>(update) else {
            continue;
        };
        let slots: Vec<usize> = (0..update.events.len())
            .filter(|at| slot.is_none_or(|slot| slot == *at))
            .filter(|at| update.events[*at].state == state)
            .collect();
        // A page never splits an update's pending events: it ends before
        // the update that would overflow it, unless that one is its first.
        if !items.is_empty() && items.len() + slots.len() > limit as usize {
            cut = true;
            break;
        }
        items.extend(slots.into_iter().map(|slot| update.view(slot, events)));
        last = Some(key.clone());
    }
    let next_cursor = if cut { last } else { page.cursor };
    let next_cursor = next_cursor.and_then(|key| key.strip_prefix(&prefix).map(str::to_owned));
    Ok(Page { items, next_cursor })
}

/// Offers an event to its endpoint again now, whatever its state (a
/// delivered one is sent again: a replay), with 3 more days to succeed.
pub(crate) async fn retry<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    let Some((update_id, slot)) = split_event_id(id) else {
        return Ok(None);
    };
    let Some(mut update) = QUEUE.load::<QueuedUpdate, H>(ctx, update_id).await? else {
        return Ok(None);
    };
    let old_due_key = QUEUE.due_key(&update);
    let old_finished_key = update.finished_key(slot);
    let Some(event) = update.events.get_mut(slot) else {
        return Ok(None);
    };
    let now = ctx.host.now_millis();
    event.state = State::Pending;
    event.since = now;
    event.updated_at = now;
    event.next_attempt_at = now;
    let endpoint = event.endpoint.clone();
    let mut ops = QUEUE.store_ops(&update, &old_due_key, FINISHED_TTL_SECONDS);
    ops.extend(old_finished_key.map(KvOp::Remove));
    store::write(ctx, ops).await?;
    if let Some(index) = endpoint_index(events, &endpoint) {
        ctx.recorder.event_delivery(index, "queued");
    }
    Ok(Some(update.view(slot, events)))
}
/// Each endpoint: its place, host and kinds, when it last took an event and
/// last failed one (from the store), and this host's counts since it
/// started (from its metric totals; on the Worker, one isolate's).
pub(crate) async fn endpoints<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
) -> Result<Vec<Value>, ApiError> {
    let ops = events
        .endpoints
        .iter()
        .flat_map(|endpoint| {
            let hash = endpoint_hash(endpoint);
            ["ok", "fail"].map(|which| KvOp::Get(format!("{ENDPOINT_PREFIX}{hash}:{which}")))
        })
        .collect();
    let found = store::batch(ctx, ops).await?;
    let time = |stored: &Option<Vec<u8>>| {
        let millis = std::str::from_utf8(stored.as_deref()?).ok()?.parse().ok()?;
        Some(iso8601(millis))
    };
    let totals = ctx.host.metrics_snapshot();
    let count = |index: usize, outcome: &str| {
        let index = index.to_string();
        totals
            .iter()
            .filter(|sample| sample.name == "event_deliveries_total")
            .filter(|sample| {
                sample
                    .labels
                    .iter()
                    .any(|(k, v)| k == "endpoint" && *v == index)
                    && sample
                        .labels
                        .iter()
                        .any(|(k, v)| k == "outcome" && v == outcome)
            })
            .map(|sample| sample.value)
            .sum::<f64>()
    };
    Ok(events
        .endpoints
        .iter()
        .zip(found.chunks(2))
        .enumerate()
        .map(|(index, (endpoint, times))| {
            json!({
                "index": index,
                "host": endpoint.host(),
                "kinds": endpoint.kinds,
                "lastSuccessAt": time(&times[0]),
                "lastFailureAt": time(&times[1]),
                "queued": count(index, "queued"),
                "delivered": count(index, "delivered"),
                "retried": count(index, "retried"),
                "failed": count(index, "failed"),
            })
        })
        .collect())
}
