//! Reading events back for the operator routes: a page of one state, a
//! retry, each endpoint's state. Never a body or an endpoint's URL.

use super::{
    endpoint_hash, endpoint_index, EventDelivery, State, ENDPOINT_PREFIX, FINISHED_PREFIX,
    FINISHED_TTL_SECONDS, ID_PREFIX, QUEUE,
};
use crate::context::Context;
use crate::core::config::Events;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp};
use crate::core::time::iso8601;
use crate::state::queue::Queue;
use crate::state::store;
use serde_json::{json, Value};

impl EventDelivery {
    /// What the operator routes show: no body, no URL; the endpoint by its
    /// place in `WATS_EVENTS_ENDPOINTS` (null once it is no longer there).
    fn view(&self, events: &Events) -> Value {
        json!({
            "id": self.id,
            "webhookId": self.webhook_id(),
            "endpoint": endpoint_index(events, &self.endpoint),
            "kind": self.kind,
            "state": self.state,
            "attempts": self.attempts,
            "createdAt": iso8601(self.created_at),
            "updatedAt": iso8601(self.updated_at),
            "nextAttemptAt": (self.state == State::Pending).then(|| iso8601(self.next_attempt_at)),
            "lastStatus": self.last_status,
            "lastError": self.last_error,
        })
    }
}

/// Whether `id` is an event id this service could have issued.
pub(crate) fn is_event_id(id: &str) -> bool {
    id.len() == ID_PREFIX.len() + 32
        && id.starts_with(ID_PREFIX)
        && id[ID_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `cursor` is one a listing gave: `<13 digits>[.<5 digits>]:<id>`.
pub(crate) fn is_cursor(cursor: &str) -> bool {
    let Some((position, id)) = cursor.split_once(':') else {
        return false;
    };
    let (millis, order) = position.split_once('.').unwrap_or((position, "00000"));
    let digits = |text: &str, n: usize| text.len() == n && text.bytes().all(|b| b.is_ascii_digit());
    digits(millis, 13) && digits(order, 5) && is_event_id(id)
}

pub(crate) struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// Events in one state: pending ones in the order they are due, finished
/// ones newest first. Two calls: the index, then the events.
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
    let ops = page
        .keys
        .iter()
        .filter_map(|key| key.rsplit(':').next())
        .map(|id| KvOp::Get(QUEUE.item_key(id)))
        .collect();
    let found = store::batch(ctx, ops).await?;
    let items = found
        .into_iter()
        .filter_map(Queue::parse::<EventDelivery>)
        .filter(|event| event.state == state)
        .map(|event| event.view(events))
        .collect();
    let next_cursor = page
        .cursor
        .and_then(|key| key.strip_prefix(&prefix).map(str::to_owned));
    Ok(Page { items, next_cursor })
}

/// Offers an event to its endpoint again now, whatever its state (a
/// delivered one is sent again: a replay), with 3 more days to succeed.
pub(crate) async fn retry<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(mut event) = QUEUE.load::<EventDelivery, H>(ctx, id).await? else {
        return Ok(None);
    };
    let old_due_key = QUEUE.due_key(&event);
    let old_finished_key = event.finished_key();
    let now = ctx.host.now_millis();
    event.state = State::Pending;
    event.created_at = now;
    event.updated_at = now;
    event.next_attempt_at = now;
    let mut ops = QUEUE.store_ops(&event, &old_due_key, FINISHED_TTL_SECONDS);
    ops.extend(old_finished_key.map(KvOp::Remove));
    store::write(ctx, ops).await?;
    if let Some(index) = endpoint_index(events, &event.endpoint) {
        ctx.recorder.event_delivery(index, "queued");
    }
    Ok(Some(event.view(events)))
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
