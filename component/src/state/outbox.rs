//! The outbox: sends queued by `Prefer: respond-async` and delivered later
//! by `drain`, which a host calls on a schedule.
//!
//! Contract (the spec's): enqueue; claim with a lease; mark succeeded or
//! failed with that lease. A lease is a kv key written with set-if-absent
//! and a TTL, so one worker holds an item at a time, and a worker whose
//! lease expired and was taken over cannot complete the newer claim (its
//! mark is refused as stale). Each claim sends at most once.
//!
//! Keys (docs/kv-schema.md): `outbox:item:<id>` holds the item,
//! `outbox:due:<millis>:<id>` orders queued items by when they are due,
//! `outbox:lease:<id>` holds the current lease id.

use super::queue::{self, Leased, Queue, QueueItem};
use super::send;
use super::store;
use crate::compose::Composed;
use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp, Level};
use crate::core::time::iso8601;
use crate::core::upstream::GraphError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const QUEUE: Queue = Queue {
    item: "outbox:item:",
    due: "outbox:due:",
    lease: "outbox:lease:",
};
/// Written right after Graph accepted an item's send, before anything else:
/// a drain that finds it marks the item sent instead of sending again.
const SENT_PREFIX: &str = "outbox:sent:";
/// Writes of the sent fact before giving up (then a later claim, after the
/// lease expires, may send again).
const SENT_FACT_ATTEMPTS: usize = 5;
const ID_PREFIX: &str = "wats-out-";
/// Attempts before an item that keeps failing is marked failed.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// Finished items stay readable this long.
const FINISHED_TTL_SECONDS: u32 = 7 * 24 * 60 * 60;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    Queued,
    Sent,
    Failed,
}

/// Why the last attempt failed: stable codes, never Meta's free text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptError {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_code: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    pub id: String,
    pub state: State,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The Graph payload, sent as it is.
    pub payload: Value,
    /// The number it is sent from, when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    pub attempts: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub next_attempt_at: u64,
    pub wa_message_id: Option<String>,
    pub last_error: Option<AttemptError>,
}

impl QueueItem for Item {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_attempt_at(&self) -> u64 {
        self.next_attempt_at
    }

    fn is_pending(&self) -> bool {
        self.state == State::Queued
    }
}

impl Item {
    /// What `GET {prefix}/outbox/{id}` shows: no payload.
    pub(crate) fn view(&self) -> Value {
        let mut view = json!({
            "outboxId": self.id,
            "state": self.state,
            "type": self.kind,
            "attempts": self.attempts,
            "createdAt": iso8601(self.created_at),
            "updatedAt": iso8601(self.updated_at),
            "nextAttemptAt": null,
            "waMessageId": self.wa_message_id,
            "lastError": self.last_error,
        });
        if self.state == State::Queued {
            view["nextAttemptAt"] = iso8601(self.next_attempt_at).into();
        }
        view
    }
}

/// The 202 body of a queued send.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Queued {
    pub outbox_id: String,
    pub state: State,
}

impl Queued {
    fn of(item: &Item) -> Queued {
        Queued {
            outbox_id: item.id.clone(),
            state: item.state,
        }
    }
}

/// Queues a send. `retry_of` identifies the request across a client's
/// retries (its Idempotency-Key, route and body): such a request always
/// names the same item, so a retry after a write that failed (or only
/// seemed to) completes that item instead of queueing a second copy.
pub(crate) async fn enqueue<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
    retry_of: Option<&[u8]>,
) -> Result<Queued, ApiError> {
    let now = ctx.host.now_millis();
    let id = match retry_of {
        Some(identity) => format!(
            "{ID_PREFIX}k{}",
            hex::encode(&Sha256::digest(identity)[..14])
        ),
        None => {
            let payload = serde_json::to_vec(&composed.payload).unwrap_or_default();
            format!(
                "{ID_PREFIX}{now:012x}{}",
                queue::unique_hex(ctx.host, &payload)
            )
        }
    };
    let item = match load(ctx, &id).await? {
        // Queued by an earlier try of this request: finish its writes.
        Some(existing) => existing,
        None => {
            let item = Item {
                id,
                state: State::Queued,
                to: composed.to.clone(),
                kind: composed.kind.into(),
                payload: composed.payload.clone(),
                sender: composed.sender.clone(),
                attempts: 0,
                created_at: now,
                updated_at: now,
                next_attempt_at: now,
                wa_message_id: None,
                last_error: None,
            };
            let bytes = serde_json::to_vec(&item).unwrap_or_default();
            // The item first: a due key without its item is dropped by
            // `claim`, an item without its due key would never be sent.
            if !store::set_if_absent(ctx, &QUEUE.item_key(&item.id), &bytes, None).await? {
                // Written by a concurrent try: that one completes it.
                return Ok(Queued::of(&item));
            }
            item
        }
    };
    if item.state == State::Queued {
        // The same key each time: `next_attempt_at` is stored in the item.
        store::write(ctx, vec![KvOp::set(QUEUE.due_key(&item), b"", None)]).await?;
    }
    ctx.recorder.outbox("queued");
    Ok(Queued::of(&item))
}

/// A queued send, if there is one by this id.
pub(crate) async fn load<H: Host>(
    ctx: &Context<'_, H>,
    id: &str,
) -> Result<Option<Item>, ApiError> {
    QUEUE.load(ctx, id).await
}

/// A page of queued sends in one state, in the order they were queued
/// (their ids start with the time): the item keys, then the items, in two
/// calls. The cursor is the last id looked at, so a page may hold fewer
/// than `limit` items and still have a next one.
pub(crate) async fn list<H: Host>(
    ctx: &Context<'_, H>,
    state: State,
    limit: u32,
    cursor: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let after = cursor.map(|id| QUEUE.item_key(id));
    let page = store::list(ctx, QUEUE.item, after.as_deref(), limit).await?;
    let found = store::batch(ctx, page.keys.into_iter().map(KvOp::Get).collect()).await?;
    let items = found
        .into_iter()
        .filter_map(Queue::parse::<Item>)
        .filter(|item| item.state == state)
        .map(|item| item.view())
        .collect();
    let next = page
        .cursor
        .and_then(|key| key.strip_prefix(QUEUE.item).map(str::to_owned));
    Ok((items, next))
}

/// Whether `id` is an outbox id this service could have issued.
pub(crate) fn is_outbox_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with(ID_PREFIX)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[derive(Debug, PartialEq)]
pub(crate) enum MarkError {
    /// The lease expired and another claim took the item over.
    StaleLease,
    Store(ApiError),
}

impl From<ApiError> for MarkError {
    fn from(error: ApiError) -> Self {
        MarkError::Store(error)
    }
}

/// Whether this claim may still mark the item: its lease is current, or it
/// expired and nobody has claimed or changed the item since (the lease is
/// then taken again, so a slow send is not sent a second time).
async fn still_holds<H: Host>(
    ctx: &Context<'_, H>,
    item: &Item,
    lease_id: &str,
) -> Result<bool, ApiError> {
    let key = QUEUE.lease_key(&item.id);
    let lease = store::get(ctx, &key).await?;
    if lease.as_deref() == Some(lease_id.as_bytes()) {
        return Ok(true);
    }
    if lease.is_some() {
        return Ok(false); // another claim holds it now
    }
    if !store::set_if_absent(ctx, &key, lease_id.as_bytes(), Some(queue::LEASE_SECONDS)).await? {
        return Ok(false);
    }
    let unchanged = load(ctx, &item.id)
        .await?
        .is_some_and(|stored| stored.state == State::Queued && stored.attempts == item.attempts);
    if !unchanged {
        // Another claim came and went: let the lease go, the item is theirs.
        store::write(ctx, vec![KvOp::Remove(key)]).await?;
    }
    Ok(unchanged)
}

/// What became of an attempt.
pub(crate) enum Attempt {
    Sent {
        wa_message_id: Option<String>,
    },
    /// Try again at this time (milliseconds since the epoch).
    Retry {
        at: u64,
        error: AttemptError,
    },
    Failed {
        error: AttemptError,
    },
}

/// Records the outcome of a claimed item's attempt, if the lease is still
/// this claim's.
pub(crate) async fn mark<H: Host>(
    ctx: &Context<'_, H>,
    claimed: Leased<Item>,
    attempt: Attempt,
) -> Result<Item, MarkError> {
    let Leased { mut item, lease_id } = claimed;
    if !still_holds(ctx, &item, &lease_id).await? {
        ctx.recorder.outbox("stale_lease");
        return Err(MarkError::StaleLease);
    }
    let old_due_key = QUEUE.due_key(&item);
    item.attempts += 1;
    item.updated_at = ctx.host.now_millis();
    let outcome = match attempt {
        Attempt::Sent { wa_message_id } => {
            item.state = State::Sent;
            item.wa_message_id = wa_message_id;
            item.last_error = None;
            "sent"
        }
        Attempt::Retry { at, error } => {
            item.next_attempt_at = at;
            item.last_error = Some(error);
            "retried"
        }
        Attempt::Failed { error } => {
            item.state = State::Failed;
            item.last_error = Some(error);
            "failed"
        }
    };
    let ops = QUEUE.store_ops(&item, &old_due_key, FINISHED_TTL_SECONDS);
    store::write(ctx, ops).await?;
    ctx.recorder.outbox(outcome);
    Ok(item)
}

/// Whether a failed send may succeed later: rate limits, Graph's own
/// faults and the network. A refused request (any other 4xx) or a reply
/// we cannot read (the message may be out) is final.
fn retryable(error: &GraphError) -> bool {
    match error {
        GraphError::Rejected { status, .. } => error.is_rate_limit() || *status >= 500,
        GraphError::Timeout | GraphError::Unreachable => true,
        GraphError::BadReply { .. } => false,
    }
}

/// What one drain did: of the outbox, and of the events queue
/// (`events::drain` adds its part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub claimed: u32,
    pub sent: u32,
    pub retried: u32,
    pub failed: u32,
    pub stale: u32,
    pub events_delivered: u32,
    pub events_retried: u32,
    pub events_failed: u32,
    /// When the earliest queued item or event is due (milliseconds since
    /// the epoch), if one is: a host may sleep until then.
    pub next_due_millis: Option<u64>,
}

impl DrainReport {
    /// The report as log fields: counts only.
    pub fn log_fields(&self) -> [(&'static str, String); 8] {
        [
            ("claimed", self.claimed.to_string()),
            ("sent", self.sent.to_string()),
            ("retried", self.retried.to_string()),
            ("failed", self.failed.to_string()),
            ("stale", self.stale.to_string()),
            ("eventsDelivered", self.events_delivered.to_string()),
            ("eventsRetried", self.events_retried.to_string()),
            ("eventsFailed", self.events_failed.to_string()),
        ]
    }

    /// Whether a drain of `limit` may have left items or events due now:
    /// it took as many as it was allowed. A host drains again at once.
    pub fn took_all_it_could(&self, limit: u32) -> bool {
        let events = self.events_delivered + self.events_retried + self.events_failed;
        self.claimed >= limit || events >= limit
    }

    /// The report as `POST {prefix}/drain` answers it (and the conformance
    /// runners show a drain).
    pub fn to_json(&self) -> Value {
        json!({
            "claimed": self.claimed, "sent": self.sent, "retried": self.retried,
            "failed": self.failed, "stale": self.stale,
            "eventsDelivered": self.events_delivered,
            "eventsRetried": self.events_retried,
            "eventsFailed": self.events_failed,
            "nextDueAt": self.next_due_millis.map(iso8601),
        })
    }

    /// Whether the drain did anything worth a log line.
    pub fn handled_any(&self) -> bool {
        self.claimed + self.events_delivered + self.events_retried + self.events_failed > 0
    }
}

/// Claims due items and sends each once.
pub(crate) async fn drain<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
) -> Result<DrainReport, ApiError> {
    let mut report = DrainReport::default();
    for claimed in QUEUE.claim::<Item, H>(ctx, limit).await? {
        report.claimed += 1;
        let composed = Composed {
            to: claimed.item.to.clone(),
            kind: crate::compose::graph_kind(&claimed.item.kind),
            payload: claimed.item.payload.clone(),
            sender: claimed.item.sender.clone(),
        };
        let sent_key = format!("{SENT_PREFIX}{}", claimed.item.id);
        // Sent by an earlier claim whose record or mark did not land: that
        // send stands, and this claim finishes it without sending again.
        let fact = store::get(ctx, &sent_key).await?;
        let attempt = match fact {
            Some(wamid) => Attempt::Sent {
                wa_message_id: String::from_utf8(wamid).ok().filter(|id| !id.is_empty()),
            },
            None => match send::send_unrecorded(ctx, &composed).await {
                Ok(reply) => {
                    let wa_message_id = send::sent_id(&reply).map(str::to_owned);
                    let fact = wa_message_id.clone().unwrap_or_default();
                    for _ in 0..SENT_FACT_ATTEMPTS {
                        let ttl = Some(FINISHED_TTL_SECONDS);
                        let written = KvOp::set(sent_key.clone(), fact.as_bytes(), ttl);
                        if store::write(ctx, vec![written]).await.is_ok() {
                            break;
                        }
                    }
                    Attempt::Sent { wa_message_id }
                }
                Err(error) => {
                    let graph = if let ApiError::Graph(graph) = &error {
                        Some(graph)
                    } else {
                        None
                    };
                    let meta_code = graph.and_then(|graph| graph.meta()?.code);
                    let failure = AttemptError {
                        code: error.code().into(),
                        meta_code,
                    };
                    let attempts = claimed.item.attempts + 1;
                    match graph {
                        Some(graph) if retryable(graph) && attempts < MAX_ATTEMPTS => {
                            Attempt::Retry {
                                at: queue::retry_at(
                                    ctx.host.now_millis(),
                                    attempts - 1,
                                    graph.retry_after(),
                                ),
                                error: failure,
                            }
                        }
                        _ => Attempt::Failed { error: failure },
                    }
                }
            },
        };
        if let Attempt::Sent {
            wa_message_id: Some(wamid),
        } = &attempt
        {
            // Recorded before the item is marked sent: if the record fails,
            // the item stays leased, and the claim after the lease finds the
            // sent fact and records it then.
            if send::record_sent(ctx, &composed, wamid).await.is_err() {
                ctx.recorder.outbox("unrecorded");
                ctx.host.log(Level::Warn, "wats.outbox.unrecorded", &[]);
                continue;
            }
        }
        let item = mark(ctx, claimed, attempt).await;
        tally(&mut report, ctx, item)?;
    }
    report.next_due_millis = QUEUE.next_due(ctx).await?;
    Ok(report)
}

/// Counts a marked item in the drain's report.
fn tally<H: Host>(
    report: &mut DrainReport,
    ctx: &Context<'_, H>,
    marked: Result<Item, MarkError>,
) -> Result<(), ApiError> {
    match marked {
        Ok(item) => match item.state {
            State::Sent => report.sent += 1,
            State::Failed => report.failed += 1,
            State::Queued => report.retried += 1,
        },
        Err(MarkError::StaleLease) => {
            report.stale += 1;
            ctx.host.log(Level::Warn, "wats.outbox.stale_lease", &[]);
        }
        Err(MarkError::Store(error)) => return Err(error),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::host::Response;
    use crate::testing::{block_on, TestHost};

    const SENT: &str = r#"{"messages":[{"id":"wamid.OUT1"}]}"#;

    fn queue_one(host: &TestHost) -> String {
        let ctx = Context::new(host, |_| None);
        let composed =
            crate::compose::envelope("15551230000", "text", json!({ "body": "hi" }), None);
        block_on(enqueue(&ctx, &composed, None)).unwrap().outbox_id
    }

    fn stored(host: &TestHost, id: &str) -> Item {
        block_on(load(&Context::new(host, |_| None), id))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_claimed_item_is_held_until_marked() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        let ctx = Context::new(&host, |_| None);
        let mut first = block_on(QUEUE.claim::<Item, _>(&ctx, 10)).unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            block_on(QUEUE.claim::<Item, _>(&ctx, 10))
                .unwrap()
                .is_empty(),
            "held by the lease"
        );
        let sent = Attempt::Sent {
            wa_message_id: Some("wamid.OUT1".into()),
        };
        let item = block_on(mark(&ctx, first.remove(0), sent)).unwrap();
        assert_eq!((item.state, item.attempts), (State::Sent, 1));
        assert_eq!(
            stored(&host, &id).wa_message_id.as_deref(),
            Some("wamid.OUT1")
        );
        host.advance(u64::from(queue::LEASE_SECONDS) * 2000);
        assert!(
            block_on(QUEUE.claim::<Item, _>(&ctx, 10))
                .unwrap()
                .is_empty(),
            "sent items are not claimed again"
        );
    }

    #[test]
    fn a_stale_lease_cannot_complete_a_newer_claim() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        let ctx = Context::new(&host, |_| None);
        let stale = block_on(QUEUE.claim::<Item, _>(&ctx, 10))
            .unwrap()
            .remove(0);
        host.advance(u64::from(queue::LEASE_SECONDS) * 1000 + 1);
        let current = block_on(QUEUE.claim::<Item, _>(&ctx, 10))
            .unwrap()
            .remove(0);
        let sent = || Attempt::Sent {
            wa_message_id: None,
        };
        assert_eq!(
            block_on(mark(&ctx, stale, sent())).unwrap_err(),
            MarkError::StaleLease
        );
        assert_eq!(stored(&host, &id).state, State::Queued);
        assert_eq!(
            block_on(mark(&ctx, current, sent())).unwrap().state,
            State::Sent
        );
    }

    #[test]
    fn an_expired_lease_nobody_took_still_completes() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        let ctx = Context::new(&host, |_| None);
        let slow = block_on(QUEUE.claim::<Item, _>(&ctx, 10))
            .unwrap()
            .remove(0);
        host.advance(u64::from(queue::LEASE_SECONDS) * 1000 + 1);
        let sent = Attempt::Sent {
            wa_message_id: None,
        };
        assert_eq!(block_on(mark(&ctx, slow, sent)).unwrap().state, State::Sent);
        assert_eq!(stored(&host, &id).state, State::Sent);
    }

    #[test]
    fn drain_retries_rate_limits_after_retry_after_and_then_sends() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        let ctx = Context::new(&host, |_| None);
        host.replies.borrow_mut().push_back(Ok(Response {
            status: 429,
            headers: vec![("retry-after".into(), "30".into())],
            body: Vec::new(),
        }));
        let report = block_on(drain(&ctx, 10)).unwrap();
        assert_eq!((report.claimed, report.retried), (1, 1));
        let item = stored(&host, &id);
        assert_eq!(item.next_attempt_at, host.now.get() + 30_000);
        assert_eq!(item.last_error.unwrap().code, "graph_request_failed");
        host.advance(29_000);
        assert_eq!(
            block_on(drain(&ctx, 10)).unwrap().claimed,
            0,
            "not due before Retry-After"
        );
        host.advance(1_000);
        host.reply(200, SENT);
        let report = block_on(drain(&ctx, 10)).unwrap();
        assert_eq!((report.claimed, report.sent), (1, 1));
        assert_eq!(host.sent.borrow().len(), 2, "one Graph call per claim");
        assert_eq!(stored(&host, &id).state, State::Sent);
    }

    #[test]
    fn drain_gives_up_on_a_refused_send() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        host.reply(400, r#"{"error":{"code":131026,"type":"OAuthException"}}"#);
        let report = block_on(drain(&Context::new(&host, |_| None), 10)).unwrap();
        assert_eq!(report.failed, 1);
        let item = stored(&host, &id);
        assert_eq!(
            (item.state, item.last_error.unwrap().meta_code),
            (State::Failed, Some(131026))
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let rejected = |status| GraphError::Rejected {
            status,
            meta: None,
            retry_after: None,
        };
        assert!(retryable(&rejected(429)));
        assert!(retryable(&rejected(503)));
        assert!(!retryable(&rejected(400)));
        assert!(retryable(&GraphError::Timeout));
        assert!(!retryable(&GraphError::BadReply { status: 200 }));
    }
}
