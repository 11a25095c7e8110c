//! Event deliveries: each new update, for each of the application's
//! endpoints that takes its kind (`WATS_EVENTS_ENDPOINTS`), POSTed as a
//! Standard Webhooks message (`core::signing`).
//!
//! With a store, an update's events are queued in its delivery's
//! projections batch, before Meta is answered, and `drain` sends them
//! later, whatever the endpoints do meanwhile: at least once, with backoff,
//! for up to 3 days. Each keeps one `webhook-id` across its attempts, so a
//! receiver dedupes redeliveries. Without a store they are sent inline.
//! Keys (docs/kv-schema.md): `ev:item:<id>`, `ev:due:…`, `ev:lease:<id>`.

mod listing;

pub(crate) use listing::{endpoints, is_cursor, is_event_id, list, retry};

use super::outbox::DrainReport;
use super::queue::{self, Leased, Queue, QueueItem};
use super::store;
use crate::context::Context;
use crate::core::config::{Endpoint, Events};
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp, OutgoingRequest, Response};
use crate::core::time::iso8601;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const QUEUE: Queue = Queue {
    item: "ev:item:",
    due: "ev:due:",
    lease: "ev:lease:",
};
/// An event not delivered within this long after it was queued is failed.
const GIVE_UP_AFTER_MILLIS: u64 = 3 * 24 * 60 * 60 * 1000;
/// Finished events stay readable this long.
const FINISHED_TTL_SECONDS: u32 = 7 * 24 * 60 * 60;
/// `ev:body:<32 hex>`: an update's event body, shared by its endpoints'
/// events. It outlives them: 3 days pending (and 3 more per manual retry),
/// then 7 days readable.
const BODY_PREFIX: &str = "ev:body:";
const BODY_TTL_SECONDS: u32 = 14 * 24 * 60 * 60;
const ID_PREFIX: &str = "evt_";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    Pending,
    Delivered,
    Failed,
}

/// One update on its way to one endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventDelivery {
    /// Its id in the queue and the operator routes: the time it was queued,
    /// then a hash (`evt_` and 32 hex digits). Keys named after it sort in
    /// the order events are queued, so a batch of new events writes a few
    /// store pages rather than one per event (with two endpoints on
    /// SQLite: a quarter less CPU per delivery, p99 a third).
    pub id: String,
    /// Its `webhook-id`: the same for every attempt, and for a re-queue of
    /// the same update after a crash, so receivers dedupe both. Events
    /// queued before ids were time-ordered have it as their id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub webhook_id: String,
    /// Which endpoint, by a hash of its URL: reordering the list keeps it.
    pub endpoint: String,
    pub kind: String,
    pub state: State,
    pub attempts: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub next_attempt_at: u64,
    /// Its update's place in its delivery, plus one: events due together
    /// go out in the order Meta sent their updates.
    #[serde(default)]
    pub sequence: u16,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// A stable code for the last failure, never the endpoint's text.
    pub last_error: Option<String>,
    /// Where its body is: one per update, whatever the number of
    /// endpoints, signed anew but the same on every attempt.
    pub body_key: String,
}

impl QueueItem for EventDelivery {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_attempt_at(&self) -> u64 {
        self.next_attempt_at
    }

    fn is_pending(&self) -> bool {
        self.state == State::Pending
    }

    fn order(&self) -> u16 {
        self.sequence
    }
}

/// An endpoint's identity in stored events: 16 hex of its URL's hash.
fn endpoint_hash(endpoint: &Endpoint) -> String {
    hex::encode(&Sha256::digest(endpoint.url.expose().as_bytes())[..8])
}

/// Where the endpoint of this hash is in `WATS_EVENTS_ENDPOINTS`, if it
/// still is.
fn endpoint_index(events: &Events, hash: &str) -> Option<usize> {
    events
        .endpoints
        .iter()
        .position(|endpoint| endpoint_hash(endpoint) == hash)
}

/// The `webhook-id` of an update for an endpoint: the same for every
/// delivery of the update by Meta, and different per endpoint.
fn webhook_id(endpoint: &Endpoint, dedupe_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(endpoint.url.expose().as_bytes());
    hasher.update([0]);
    hasher.update(dedupe_key.as_bytes());
    format!("{ID_PREFIX}{}", hex::encode(&hasher.finalize()[..16]))
}

/// `<13 digits of millis><19 hex digits of hash>`: ordered by time, unique
/// by the hash.
fn time_ordered(now: u64, hash: &str) -> String {
    format!("{now:013}{}", &hash[..19])
}

impl EventDelivery {
    fn webhook_id(&self) -> &str {
        match self.webhook_id.as_str() {
            "" => &self.id,
            id => id,
        }
    }
}

/// `{"type":"whatsapp.<kind>","timestamp":"<RFC 3339>","data":<update>}`,
/// compact; `update_json` is the normalized update, compact already.
fn event_body(kind: &str, now: u64, update_json: &str) -> String {
    format!(
        r#"{{"type":"whatsapp.{kind}","timestamp":"{}","data":{update_json}}}"#,
        iso8601(now)
    )
}

/// An update as the events queue and the inline sender take it.
pub(crate) struct NewEvent<'a> {
    pub kind: &'a str,
    /// The update's place in its delivery.
    pub sequence: u16,
    pub dedupe_key: &'a str,
    pub json: &'a str,
}

/// The writes that queue an update for each endpoint that takes its kind:
/// its body once, and per endpoint the event and its due key. An update is
/// queued once, by the delivery that claimed it; only a crash between this
/// batch and its done mark queues it again, under the same `webhook-id`.
pub(crate) fn queue_ops<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    update: &NewEvent<'_>,
) -> Vec<KvOp> {
    let now = ctx.host.now_millis();
    let mut ops = Vec::new();
    let body_hash = hex::encode(&Sha256::digest(update.dedupe_key.as_bytes())[..16]);
    let body_key = format!("{BODY_PREFIX}{}", time_ordered(now, &body_hash));
    for (index, endpoint) in events.endpoints.iter().enumerate() {
        if !endpoint.wants(update.kind) {
            continue;
        }
        if ops.is_empty() {
            let body = event_body(update.kind, now, update.json);
            let ttl = Some(BODY_TTL_SECONDS);
            ops.push(KvOp::set(body_key.clone(), body, ttl));
        }
        let webhook_id = webhook_id(endpoint, update.dedupe_key);
        let event = EventDelivery {
            id: format!(
                "{ID_PREFIX}{}",
                time_ordered(now, &webhook_id[ID_PREFIX.len()..])
            ),
            webhook_id,
            endpoint: endpoint_hash(endpoint),
            kind: update.kind.to_owned(),
            state: State::Pending,
            attempts: 0,
            created_at: now,
            updated_at: now,
            next_attempt_at: now,
            sequence: update.sequence.saturating_add(1),
            last_status: None,
            last_error: None,
            body_key: body_key.clone(),
        };
        let bytes = serde_json::to_vec(&event).unwrap_or_default();
        ops.push(KvOp::set(QUEUE.item_key(&event.id), bytes, None));
        ops.push(KvOp::set(QUEUE.due_key(&event), b"", None));
        ctx.recorder.event_delivery(index, "queued");
    }
    ops
}

/// Without a store: POSTs the update to each endpoint that takes it, once.
/// Any failure fails the dispatch, so Meta delivers the update again.
pub(crate) async fn send_inline<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    update: &NewEvent<'_>,
) -> Result<(), ApiError> {
    let now = ctx.host.now_millis();
    let body = event_body(update.kind, now, update.json);
    let mut delivered = true;
    for (index, endpoint) in events.endpoints.iter().enumerate() {
        if !endpoint.wants(update.kind) {
            continue;
        }
        let id = webhook_id(endpoint, update.dedupe_key);
        let outcome = match post(ctx, events, endpoint, &id, &body).await {
            Ok(response) if is_success(&response) => "delivered",
            _ => {
                delivered = false;
                "failed"
            }
        };
        ctx.recorder.event_delivery(index, outcome);
    }
    delivered.then_some(()).ok_or(ApiError::DispatchFailed)
}

/// POSTs a signed event body; the timestamp is the attempt's. A Cloudflare
/// Queue gets the body with its `webhook-id` as `webhookId`, for the
/// consumer to dedupe by (a queue has no headers, and only Workers the
/// account binds to it can write to it).
async fn post<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    endpoint: &Endpoint,
    id: &str,
    body: &str,
) -> Result<Response, ()> {
    let key = events.signing_key.as_ref().ok_or(())?;
    let timestamp = ctx.host.now_millis() / 1000;
    let body = match endpoint.queue() {
        Some(_) => format!(
            r#"{{"webhookId":"{id}",{}"#,
            body.strip_prefix('{').ok_or(())?
        ),
        None => body.to_owned(),
    };
    let request = OutgoingRequest {
        method: "POST".into(),
        url: endpoint.url.expose().to_owned(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), id.to_owned()),
            ("webhook-timestamp".into(), timestamp.to_string()),
            (
                "webhook-signature".into(),
                key.sign(id, timestamp, body.as_bytes()),
            ),
        ],
        body: body.into_bytes(),
    };
    ctx.host.send(request).await.map_err(drop)
}

fn is_success(response: &Response) -> bool {
    (200..300).contains(&response.status)
}

/// The bodies of these events, in one batch (each once).
async fn bodies<H: Host>(
    ctx: &Context<'_, H>,
    claimed: &[Leased<EventDelivery>],
) -> Result<BTreeMap<String, String>, ApiError> {
    let keys: Vec<String> = claimed
        .iter()
        .map(|leased| leased.item.body_key.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ops = keys.iter().cloned().map(KvOp::Get).collect();
    let found = store::batch(ctx, ops).await?;
    Ok(keys
        .into_iter()
        .zip(found)
        .filter_map(|(key, body)| Some((key, String::from_utf8(body?).ok()?)))
        .collect())
}

/// Sends up to `limit` due events, each once, and records what became of
/// them in one batch.
pub(crate) async fn drain<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    limit: u32,
    report: &mut DrainReport,
) -> Result<(), ApiError> {
    let mut writes = Vec::new();
    let mut last_times = BTreeMap::new();
    let claimed: Vec<Leased<EventDelivery>> = QUEUE.claim(ctx, limit).await?;
    let bodies = bodies(ctx, &claimed).await?;
    for Leased { mut item, .. } in claimed {
        let old_due_key = QUEUE.due_key(&item);
        let now = ctx.host.now_millis();
        let index = endpoint_index(events, &item.endpoint);
        let body = bodies.get(&item.body_key);
        let answer = match (index, body) {
            (Some(index), Some(body)) => {
                let id = item.webhook_id();
                post(ctx, events, &events.endpoints[index], id, body).await
            }
            _ => Err(()),
        };
        item.attempts += 1;
        item.updated_at = now;
        item.last_status = answer.as_ref().ok().map(|response| response.status);
        let outcome = match &answer {
            Ok(response) if is_success(response) => {
                item.state = State::Delivered;
                item.last_error = None;
                "delivered"
            }
            _ => {
                item.last_error = Some(
                    match (&answer, index, body) {
                        (_, None, _) => "endpoint_removed",
                        (_, _, None) => "event_expired",
                        (Ok(_), _, _) => "endpoint_refused",
                        (Err(()), _, _) => "endpoint_unreachable",
                    }
                    .into(),
                );
                let retry_after = answer.as_ref().ok().and_then(|r| r.header("retry-after"));
                let next = queue::retry_at(now, item.attempts - 1, retry_after);
                let hopeless = index.is_none() || body.is_none();
                if hopeless || next >= item.created_at + GIVE_UP_AFTER_MILLIS {
                    item.state = State::Failed;
                    "failed"
                } else {
                    item.next_attempt_at = next;
                    "retried"
                }
            }
        };
        match outcome {
            "delivered" => report.events_delivered += 1,
            "retried" => report.events_retried += 1,
            _ => report.events_failed += 1,
        }
        if let Some(index) = index {
            ctx.recorder.event_delivery(index, outcome);
            let which = if outcome == "delivered" { "ok" } else { "fail" };
            last_times.insert(format!("{ENDPOINT_PREFIX}{}:{which}", item.endpoint), now);
        }
        writes.extend(QUEUE.store_ops(&item, &old_due_key, FINISHED_TTL_SECONDS));
        if let Some(key) = item.finished_key() {
            writes.push(KvOp::set(key, b"", Some(FINISHED_TTL_SECONDS)));
        }
    }
    // Once per endpoint and outcome: a batch names each key once.
    for (key, at) in last_times {
        writes.push(KvOp::set(key, at.to_string(), None));
    }
    store::write(ctx, writes).await?;
    let next_due = QUEUE.next_due(ctx).await?;
    report.next_due_millis = queue::earliest(report.next_due_millis, next_due);
    Ok(())
}

/// `ev:fin:<state>:<inverted millis>:<id>`: delivered and failed events,
/// newest first, for as long as the events themselves are kept.
const FINISHED_PREFIX: &str = "ev:fin:";
/// `ev:ep:<endpoint hash>:ok|fail`: when an endpoint last took an event,
/// and last failed one.
const ENDPOINT_PREFIX: &str = "ev:ep:";
/// The milliseconds that invert times into newest-first key order.
const MAX_MILLIS: u64 = 9_999_999_999_999;

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

impl EventDelivery {
    /// Its key in the index of finished events, once finished.
    fn finished_key(&self) -> Option<String> {
        (self.state != State::Pending).then(|| {
            let at = MAX_MILLIS.saturating_sub(self.updated_at);
            format!(
                "{FINISHED_PREFIX}{}:{at:013}:{}",
                self.state.name(),
                self.id
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Secret;
    use crate::core::signing::SigningKey;
    use crate::testing::{block_on, TestHost};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn events(urls: &[&str]) -> Events {
        Events {
            endpoints: urls
                .iter()
                .map(|url| Endpoint {
                    url: Secret::new(*url),
                    kinds: Vec::new(),
                })
                .collect(),
            signing_key: SigningKey::parse(SECRET),
        }
    }

    fn queue_one(host: &TestHost, events: &Events) {
        let ctx = Context::new(host, |_| None);
        let update = NewEvent {
            kind: "message",
            sequence: 0,
            dedupe_key: "message:wamid.X",
            json: r#"{"kind":"message"}"#,
        };
        let ops = queue_ops(&ctx, events, &update);
        block_on(store::write(&ctx, ops)).unwrap();
    }

    fn drained(ctx: &Context<'_, TestHost>, events: &Events) -> DrainReport {
        let mut report = DrainReport::default();
        block_on(drain(ctx, events, 10, &mut report)).unwrap();
        report
    }

    fn stored(host: &TestHost) -> Vec<EventDelivery> {
        let kv = host.kv.borrow();
        let items = kv.iter().filter(|(key, _)| key.starts_with(QUEUE.item));
        items
            .map(|(_, (value, _))| serde_json::from_slice(value).unwrap())
            .collect()
    }

    #[test]
    fn ids_follow_the_queueing_time_and_a_re_queued_update_keeps_its_webhook_id() {
        let host = TestHost::configured();
        let events = events(&["https://app.example/hook"]);
        queue_one(&host, &events);
        host.advance(1_500);
        queue_one(&host, &events);
        let mut queued = stored(&host);
        queued.sort_by_key(|event| event.created_at);
        let [first, second] = &queued[..] else {
            panic!("two events: {queued:?}")
        };
        assert!(first.id < second.id, "{} {}", first.id, second.id);
        assert!(is_event_id(&first.id) && is_event_id(first.webhook_id()));
        assert_eq!(first.webhook_id(), second.webhook_id());
        let at = format!("{ID_PREFIX}{:013}", first.created_at);
        assert!(first.id.starts_with(&at), "{} {at}", first.id);
        // An event stored before ids were time-ordered: its id is its
        // webhook-id.
        let older = EventDelivery {
            webhook_id: String::new(),
            ..first.clone()
        };
        let reread: EventDelivery =
            serde_json::from_slice(&serde_json::to_vec(&older).unwrap()).unwrap();
        assert_eq!(reread.webhook_id(), older.id);
    }

    #[test]
    fn a_queue_endpoint_gets_the_event_with_its_webhook_id_inside() {
        let host = TestHost::configured();
        let events = events(&["queue:WATS_EVENTS"]);
        queue_one(&host, &events);
        host.reply(200, "");
        let ctx = Context::new(&host, |_| None);
        assert_eq!(drained(&ctx, &events).events_delivered, 1);
        let sent = host.sent.borrow();
        assert_eq!(sent[0].url, "queue:WATS_EVENTS");
        let message: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(message["webhookId"], stored(&host)[0].webhook_id());
        assert_eq!(message["type"], "whatsapp.message");
        assert_eq!(message["data"]["kind"], "message");
    }

    #[test]
    fn an_event_is_signed_and_kept_until_its_endpoint_takes_it() {
        let host = TestHost::configured();
        let events = events(&["https://app.example/hook"]);
        queue_one(&host, &events);
        let ctx = Context::new(&host, |_| None);
        host.replies.borrow_mut().push_back(Ok(Response {
            status: 503,
            headers: vec![("retry-after".into(), "30".into())],
            body: Vec::new(),
        }));
        assert_eq!(drained(&ctx, &events).events_retried, 1);
        let event = &stored(&host)[0];
        assert_eq!(
            event.next_attempt_at,
            host.now.get() + 30_000,
            "Retry-After"
        );
        assert_eq!(
            (event.last_status, event.last_error.as_deref()),
            (Some(503), Some("endpoint_refused"))
        );
        host.advance(30_000);
        host.reply(204, "");
        assert_eq!(drained(&ctx, &events).events_delivered, 1);
        assert_eq!(stored(&host)[0].state, State::Delivered);
        let sent = host.sent.borrow();
        let (first, second) = (&sent[0], &sent[1]);
        let header = |request: &OutgoingRequest, name: &str| {
            request
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(header(first, "webhook-id"), header(second, "webhook-id"));
        assert_eq!(header(first, "webhook-id"), stored(&host)[0].webhook_id());
        assert_eq!(first.body, second.body, "the same body on every attempt");
        let timestamp: u64 = header(second, "webhook-timestamp").parse().unwrap();
        let key = SigningKey::parse(SECRET).unwrap();
        let id = header(second, "webhook-id");
        assert_eq!(
            header(second, "webhook-signature"),
            key.sign(&id, timestamp, &second.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
        assert_eq!(body["type"], "whatsapp.message");
        assert_eq!(body["data"]["kind"], "message");
    }

    #[test]
    fn an_event_fails_after_three_days_or_when_its_endpoint_is_gone() {
        let host = TestHost::configured();
        let ctx = Context::new(&host, |_| None);
        let two = events(&["https://a.example/hook", "https://b.example/hook"]);
        queue_one(&host, &two);
        host.advance(GIVE_UP_AFTER_MILLIS);
        host.reply(500, "");
        let report = drained(&ctx, &events(&["https://a.example/hook"]));
        assert_eq!((report.events_failed, report.next_due_millis), (2, None));
        let mut codes: Vec<_> = stored(&host)
            .into_iter()
            .map(|e| e.last_error.unwrap())
            .collect();
        codes.sort();
        assert_eq!(codes, ["endpoint_refused", "endpoint_removed"]);
    }
}
