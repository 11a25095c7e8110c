//! Event deliveries: each new update, for each of the application's
//! endpoints that takes its kind (`WATS_EVENTS_ENDPOINTS`), POSTed as a
//! Standard Webhooks message (`core::signing`).
//!
//! With a store, an update's events are queued in its delivery's
//! projections batch, before Meta is answered, and `drain` sends them
//! later, whatever the endpoints do meanwhile: at least once, with backoff,
//! for up to 3 days. Each keeps one `webhook-id` across its attempts, so a
//! receiver dedupes redeliveries. Without a store they are sent inline.
//!
//! An update is one queue item, whatever the number of endpoints: its body
//! and each endpoint's event inside, due when its earliest pending event
//! is. Queueing it writes two rows (item and due key), which keeps the
//! request path of a delivery close to its cost without endpoints.
//! Keys (docs/kv-schema.md): `ev:item:<update id>`, `ev:due:…`,
//! `ev:lease:<update id>`.

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
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const QUEUE: Queue = Queue {
    item: "ev:item:",
    due: "ev:due:",
    lease: "ev:lease:",
};
/// An event not delivered within this long after it was queued (or last
/// retried by hand) is failed.
const GIVE_UP_AFTER_MILLIS: u64 = 3 * 24 * 60 * 60 * 1000;
/// An update whose events all finished stays readable this long.
const FINISHED_TTL_SECONDS: u32 = 7 * 24 * 60 * 60;
const ID_PREFIX: &str = "evt_";
/// An update id: 13 digits of millis and 17 hex; an event id adds its
/// place among the update's events, 2 hex.
const UPDATE_ID_LEN: usize = 30;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    Pending,
    Delivered,
    Failed,
}

/// An update on its way to the endpoints that take its kind.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueuedUpdate {
    /// The time it was queued, then a hash: keys named after it sort in
    /// the order updates are queued, so a batch of new ones writes a few
    /// store pages rather than one per update.
    pub id: String,
    pub kind: String,
    /// Its place in its delivery, plus one: updates due together go out
    /// in the order Meta sent them.
    pub sequence: u16,
    /// One per endpoint that takes its kind.
    pub events: Vec<EventDelivery>,
    /// What every endpoint gets, signed anew but the same on every attempt.
    pub body: Box<RawValue>,
}

/// An update's event for one endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventDelivery {
    /// Its `webhook-id`: the same for every attempt, and for a re-queue of
    /// the same update after a crash, so receivers dedupe both.
    pub webhook_id: String,
    /// Which endpoint, by a hash of its URL: reordering the list keeps it.
    pub endpoint: String,
    pub state: State,
    pub attempts: u32,
    /// When its 3 days began: when it was queued, or last retried by hand.
    pub since: u64,
    pub updated_at: u64,
    pub next_attempt_at: u64,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// A stable code for the last failure, never the endpoint's text.
    pub last_error: Option<String>,
}

impl QueueItem for QueuedUpdate {
    fn id(&self) -> &str {
        &self.id
    }

    /// Its earliest pending event's.
    fn next_attempt_at(&self) -> u64 {
        self.pending()
            .map(|event| event.next_attempt_at)
            .min()
            .unwrap_or(0)
    }

    fn is_pending(&self) -> bool {
        self.pending().next().is_some()
    }

    fn order(&self) -> u16 {
        self.sequence
    }
}

impl QueuedUpdate {
    fn pending(&self) -> impl Iterator<Item = &EventDelivery> {
        self.events
            .iter()
            .filter(|event| event.state == State::Pending)
    }

    /// The id of its event at `slot`: `evt_<update id><slot, 2 hex>`.
    fn event_id(&self, slot: usize) -> String {
        format!("{ID_PREFIX}{}{slot:02x}", self.id)
    }
}

/// An event id's update id and slot.
fn split_event_id(id: &str) -> Option<(&str, usize)> {
    let rest = id.strip_prefix(ID_PREFIX)?;
    let (update, slot) = (rest.get(..UPDATE_ID_LEN)?, rest.get(UPDATE_ID_LEN..)?);
    Some((update, usize::from_str_radix(slot, 16).ok()?))
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

/// The writes that queue an update for the endpoints that take its kind:
/// the update with its events, and its due key. An update is queued once,
/// by the delivery that claimed it; only a crash between this batch and
/// its done mark queues it again, under the same `webhook-id`s.
pub(crate) fn queue_ops<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    update: &NewEvent<'_>,
) -> Vec<KvOp> {
    let now = ctx.host.now_millis();
    let mut queued = Vec::new();
    for (index, endpoint) in events.endpoints.iter().enumerate() {
        if !endpoint.wants(update.kind) {
            continue;
        }
        queued.push(EventDelivery {
            webhook_id: webhook_id(endpoint, update.dedupe_key),
            endpoint: endpoint_hash(endpoint),
            state: State::Pending,
            attempts: 0,
            since: now,
            updated_at: now,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
        });
        ctx.recorder.event_delivery(index, "queued");
    }
    let body = RawValue::from_string(event_body(update.kind, now, update.json));
    let (false, Ok(body)) = (queued.is_empty(), body) else {
        return Vec::new();
    };
    let hash = hex::encode(&Sha256::digest(update.dedupe_key.as_bytes())[..9]);
    let item = QueuedUpdate {
        id: format!("{now:013}{}", &hash[..UPDATE_ID_LEN - 13]),
        kind: update.kind.to_owned(),
        sequence: update.sequence.saturating_add(1),
        events: queued,
        body,
    };
    let bytes = serde_json::to_vec(&item).unwrap_or_default();
    vec![
        KvOp::set(QUEUE.item_key(&item.id), bytes, None),
        KvOp::set(QUEUE.due_key(&item), b"", None),
    ]
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

/// What one attempt made of an event.
enum Outcome {
    Delivered,
    Retried,
    Failed,
}

/// Offers the event to its endpoint and records the answer in it.
async fn attempt<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    event: &mut EventDelivery,
    body: &str,
) -> Outcome {
    let now = ctx.host.now_millis();
    let index = endpoint_index(events, &event.endpoint);
    let answer = match index {
        Some(index) => {
            post(
                ctx,
                events,
                &events.endpoints[index],
                &event.webhook_id,
                body,
            )
            .await
        }
        None => Err(()),
    };
    event.attempts += 1;
    event.updated_at = now;
    event.last_status = answer.as_ref().ok().map(|response| response.status);
    if answer.as_ref().is_ok_and(is_success) {
        event.state = State::Delivered;
        event.last_error = None;
        return Outcome::Delivered;
    }
    event.last_error = Some(
        match (&answer, index) {
            (_, None) => "endpoint_removed",
            (Ok(_), _) => "endpoint_refused",
            (Err(()), _) => "endpoint_unreachable",
        }
        .into(),
    );
    let retry_after = answer.as_ref().ok().and_then(|r| r.header("retry-after"));
    let next = queue::retry_at(now, event.attempts - 1, retry_after);
    if index.is_none() || next >= event.since + GIVE_UP_AFTER_MILLIS {
        event.state = State::Failed;
        Outcome::Failed
    } else {
        event.next_attempt_at = next;
        Outcome::Retried
    }
}

/// Sends the due events of up to `limit` updates, each once, and records
/// what became of them in one batch.
pub(crate) async fn drain<H: Host>(
    ctx: &Context<'_, H>,
    events: &Events,
    limit: u32,
    report: &mut DrainReport,
) -> Result<(), ApiError> {
    let mut writes = Vec::new();
    let mut last_times = BTreeMap::new();
    let claimed: Vec<Leased<QueuedUpdate>> = QUEUE.claim(ctx, limit).await?;
    for Leased { mut item, .. } in claimed {
        let old_due_key = QUEUE.due_key(&item);
        let now = ctx.host.now_millis();
        for slot in 0..item.events.len() {
            let event = &mut item.events[slot];
            if event.state != State::Pending || event.next_attempt_at > now {
                continue;
            }
            let outcome = attempt(ctx, events, event, item.body.get()).await;
            let name = match outcome {
                Outcome::Delivered => {
                    report.events_delivered += 1;
                    "delivered"
                }
                Outcome::Retried => {
                    report.events_retried += 1;
                    "retried"
                }
                Outcome::Failed => {
                    report.events_failed += 1;
                    "failed"
                }
            };
            if let Some(index) = endpoint_index(events, &event.endpoint) {
                ctx.recorder.event_delivery(index, name);
                let which = if name == "delivered" { "ok" } else { "fail" };
                last_times.insert(format!("{ENDPOINT_PREFIX}{}:{which}", event.endpoint), now);
            }
            let finished = item.finished_key(slot);
            writes.extend(finished.map(|key| KvOp::set(key, b"", Some(FINISHED_TTL_SECONDS))));
        }
        writes.extend(QUEUE.store_ops(&item, &old_due_key, FINISHED_TTL_SECONDS));
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

/// `ev:fin:<state>:<inverted millis>:<event id>`: delivered and failed
/// events, newest first, for as long as their updates are kept.
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

impl QueuedUpdate {
    /// Its event's key in the index of finished events, once finished.
    fn finished_key(&self, slot: usize) -> Option<String> {
        let event = self.events.get(slot)?;
        (event.state != State::Pending).then(|| {
            let at = MAX_MILLIS.saturating_sub(event.updated_at);
            format!(
                "{FINISHED_PREFIX}{}:{at:013}:{}",
                event.state.name(),
                self.event_id(slot)
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

    fn queue(host: &TestHost, events: &Events, wamid: &str) -> usize {
        let ctx = Context::new(host, |_| None);
        let dedupe_key = format!("message:{wamid}");
        let update = NewEvent {
            kind: "message",
            sequence: 0,
            dedupe_key: &dedupe_key,
            json: r#"{"kind":"message"}"#,
        };
        let ops = queue_ops(&ctx, events, &update);
        let rows = ops.len();
        block_on(store::write(&ctx, ops)).unwrap();
        rows
    }

    fn queue_one(host: &TestHost, events: &Events) {
        queue(host, events, "wamid.X");
    }

    fn drained(ctx: &Context<'_, TestHost>, events: &Events) -> DrainReport {
        let mut report = DrainReport::default();
        block_on(drain(ctx, events, 10, &mut report)).unwrap();
        report
    }

    fn stored(host: &TestHost) -> Vec<QueuedUpdate> {
        let kv = host.kv.borrow();
        let items = kv.iter().filter(|(key, _)| key.starts_with(QUEUE.item));
        items
            .map(|(_, (value, _))| serde_json::from_slice(value).unwrap())
            .collect()
    }

    fn header(request: &OutgoingRequest, name: &str) -> String {
        let found = request.headers.iter().find(|(key, _)| key == name);
        found.unwrap().1.clone()
    }

    #[test]
    fn ids_follow_the_queueing_time_and_a_re_queued_update_keeps_its_webhook_id() {
        let host = TestHost::configured();
        let events = events(&["https://app.example/hook"]);
        queue_one(&host, &events);
        let queued_at = host.now.get();
        host.advance(1_500);
        queue_one(&host, &events);
        let mut queued = stored(&host);
        queued.sort_by_key(|update| update.events[0].since);
        let [first, second] = &queued[..] else {
            panic!("two updates: {queued:?}")
        };
        assert!(first.id < second.id, "{} {}", first.id, second.id);
        assert!(is_event_id(&first.event_id(0)) && is_event_id(&first.events[0].webhook_id));
        assert_eq!(first.events[0].webhook_id, second.events[0].webhook_id);
        assert!(
            first.id.starts_with(&format!("{queued_at:013}")),
            "{}",
            first.id
        );
        assert_eq!(
            split_event_id(&first.event_id(0)),
            Some((first.id.as_str(), 0))
        );
    }

    /// The request path writes two rows per update, whatever the number of
    /// endpoints; an endpoint that takes an event is not offered it again
    /// while another one's is retried.
    #[test]
    fn an_update_is_two_rows_and_each_endpoint_takes_its_event_once() {
        let host = TestHost::configured();
        let two = events(&["https://a.example/hook", "https://b.example/hook"]);
        assert_eq!(queue(&host, &two, "wamid.A"), 2);
        let ctx = Context::new(&host, |_| None);
        host.reply(204, "");
        host.reply(500, "");
        let report = drained(&ctx, &two);
        assert_eq!((report.events_delivered, report.events_retried), (1, 1));
        let [update] = &stored(&host)[..] else {
            panic!("one update")
        };
        let states: Vec<State> = update.events.iter().map(|event| event.state).collect();
        assert_eq!(states, [State::Delivered, State::Pending]);
        host.advance(2_000);
        host.reply(204, "");
        assert_eq!(drained(&ctx, &two).events_delivered, 1);
        let sent = host.sent.borrow();
        let urls: Vec<&str> = sent.iter().map(|request| request.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://a.example/hook",
                "https://b.example/hook",
                "https://b.example/hook"
            ]
        );
        assert!(!stored(&host)[0].is_pending());
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
        assert_eq!(message["webhookId"], stored(&host)[0].events[0].webhook_id);
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
        let event = stored(&host)[0].events[0].clone();
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
        assert_eq!(stored(&host)[0].events[0].state, State::Delivered);
        let sent = host.sent.borrow();
        let (first, second) = (&sent[0], &sent[1]);
        assert_eq!(header(first, "webhook-id"), header(second, "webhook-id"));
        assert_eq!(header(first, "webhook-id"), event.webhook_id);
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
        let mut codes: Vec<_> = stored(&host)[0]
            .events
            .iter()
            .map(|e| e.last_error.clone().unwrap())
            .collect();
        codes.sort();
        assert_eq!(codes, ["endpoint_refused", "endpoint_removed"]);
    }

    /// Pending events are listed by update, a page never splitting one;
    /// a retry of a finished event makes its update pending again.
    #[test]
    fn pages_of_pending_events_keep_updates_whole_and_a_retry_requeues() {
        let host = TestHost::configured();
        let ctx = Context::new(&host, |_| None);
        let two = events(&["https://a.example/hook", "https://b.example/hook"]);
        for wamid in ["wamid.1", "wamid.2", "wamid.3"] {
            queue(&host, &two, wamid);
            host.advance(1);
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = block_on(list(&ctx, &two, State::Pending, 3, cursor.as_deref())).unwrap();
            assert_eq!(page.items.len(), 2, "{:?}", page.items);
            seen.extend(
                page.items
                    .iter()
                    .map(|item| item["id"].as_str().unwrap().to_owned()),
            );
            if let Some(next) = &page.next_cursor {
                assert!(is_cursor(next), "{next}");
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), distinct.len()), (6, 6), "{seen:?}");
        for _ in 0..3 {
            host.reply(204, "");
            host.reply(204, "");
        }
        assert_eq!(drained(&ctx, &two).events_delivered, 6);
        let delivered = block_on(list(&ctx, &two, State::Delivered, 10, None)).unwrap();
        assert_eq!(delivered.items.len(), 6);
        let id = delivered.items[0]["id"].as_str().unwrap();
        let again = block_on(retry(&ctx, &two, id)).unwrap().unwrap();
        assert_eq!(again["state"], "pending");
        let delivered = block_on(list(&ctx, &two, State::Delivered, 10, None)).unwrap();
        assert_eq!(delivered.items.len(), 5);
        let pending = block_on(list(&ctx, &two, State::Pending, 10, None)).unwrap();
        assert_eq!(pending.items.len(), 1);
        assert_eq!(pending.items[0]["id"], id);
    }
}
