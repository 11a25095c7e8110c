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

const ITEM_PREFIX: &str = "outbox:item:";
const DUE_PREFIX: &str = "outbox:due:";
const LEASE_PREFIX: &str = "outbox:lease:";
/// Written right after Graph accepted an item's send, before anything else:
/// a drain that finds it marks the item sent instead of sending again.
const SENT_PREFIX: &str = "outbox:sent:";
/// Writes of the sent fact before giving up (then a later claim, after the
/// lease expires, may send again).
const SENT_FACT_ATTEMPTS: usize = 5;
const ID_PREFIX: &str = "wats-out-";
/// How long a claim holds an item; a drain sends within one Graph timeout.
pub(crate) const LEASE_SECONDS: u32 = 60;
/// Attempts before an item that keeps failing is marked failed.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF_MILLIS: u64 = 2_000;
const MAX_BACKOFF_MILLIS: u64 = 15 * 60_000;
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
    pub attempts: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub next_attempt_at: u64,
    pub wa_message_id: Option<String>,
    pub last_error: Option<AttemptError>,
}

impl Item {
    fn due_key(&self) -> String {
        format!("{DUE_PREFIX}{:013}:{}", self.next_attempt_at, self.id)
    }

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

/// A due key's time (none if unreadable) and item id.
fn parse_due_key(key: &str) -> Option<(Option<u64>, &str)> {
    let (at, id) = key.strip_prefix(DUE_PREFIX)?.split_once(':')?;
    Some((at.parse().ok(), id))
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

fn item_key(id: &str) -> String {
    format!("{ITEM_PREFIX}{id}")
}

fn lease_key(id: &str) -> String {
    format!("{LEASE_PREFIX}{id}")
}

/// 16 hex characters unique to this call: no randomness is needed, only
/// distinct values per instance and moment.
fn unique_hex(host: &impl Host, salt: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(host.started_millis().to_be_bytes());
    hasher.update(host.monotonic_nanos().to_be_bytes());
    hasher.update(host.now_millis().to_be_bytes());
    hasher.update(salt);
    hex::encode(&hasher.finalize()[..8])
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
            format!("{ID_PREFIX}{now:012x}{}", unique_hex(ctx.host, &payload))
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
            if !store::set_if_absent(ctx, &item_key(&item.id), &bytes, None).await? {
                // Written by a concurrent try: that one completes it.
                return Ok(Queued::of(&item));
            }
            item
        }
    };
    if item.state == State::Queued {
        // The same key each time: `next_attempt_at` is stored in the item.
        store::write(ctx, vec![KvOp::set(item.due_key(), b"", None)]).await?;
    }
    ctx.recorder.outbox("queued");
    Ok(Queued::of(&item))
}

/// A queued send, if there is one by this id.
pub(crate) async fn load<H: Host>(
    ctx: &Context<'_, H>,
    id: &str,
) -> Result<Option<Item>, ApiError> {
    Ok(parse_item(store::get(ctx, &item_key(id)).await?))
}

fn parse_item(bytes: Option<Vec<u8>>) -> Option<Item> {
    bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Whether `id` is an outbox id this service could have issued.
pub(crate) fn is_outbox_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with(ID_PREFIX)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An item held under a lease.
pub(crate) struct Claimed {
    pub item: Item,
    pub lease_id: String,
}

/// Claims up to `limit` items that are due, each under a new lease.
pub(crate) async fn claim<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
) -> Result<Vec<Claimed>, ApiError> {
    let now = ctx.host.now_millis();
    let mut claimed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store::list(ctx, DUE_PREFIX, cursor.as_deref(), limit.max(1) * 2).await?;
        // The due items of this page, no more than are still wanted: keys
        // are in due order, so the first one not due ends the claim.
        let wanted = limit.saturating_sub(claimed.len() as u32) as usize;
        let mut later = false;
        let mut due: Vec<(&String, &str)> = Vec::new();
        for due_key in &page.keys {
            let Some((at, id)) = parse_due_key(due_key) else {
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
        claimed.extend(lease_all(ctx, &due).await?);
        match page.cursor {
            Some(next) if !later && (claimed.len() as u32) < limit => cursor = Some(next),
            _ => break,
        }
    }
    Ok(claimed)
}

/// Takes a lease on each due item and reads the items, in one batch; then
/// drops, in one more, the due keys that finished or rescheduled items left
/// behind. An item whose lease another worker holds is skipped.
async fn lease_all<H: Host>(
    ctx: &Context<'_, H>,
    due: &[(&String, &str)],
) -> Result<Vec<Claimed>, ApiError> {
    let lease_ids: Vec<String> = due
        .iter()
        .map(|(_, id)| unique_hex(ctx.host, id.as_bytes()))
        .collect();
    let mut ops = Vec::with_capacity(due.len() * 2);
    for ((_, id), lease_id) in due.iter().zip(&lease_ids) {
        let lease = KvOp::set_if_absent(lease_key(id), lease_id.as_bytes(), Some(LEASE_SECONDS));
        ops.extend([lease, KvOp::Get(item_key(id))]);
    }
    let found = store::batch(ctx, ops).await?;
    let mut claimed = Vec::new();
    let mut cleanup = Vec::new();
    for (((due_key, id), lease_id), answers) in due.iter().zip(lease_ids).zip(found.chunks(2)) {
        let [held, item] = answers else {
            return Err(ApiError::StoreUnavailable);
        };
        if held.is_some() {
            continue; // another worker holds it
        }
        match parse_item(item.clone()) {
            Some(item) if item.state == State::Queued && item.due_key() == **due_key => {
                claimed.push(Claimed { item, lease_id });
                continue;
            }
            // Rescheduled, but its new due key may not have landed:
            // without one it would never be sent.
            Some(item) if item.state == State::Queued => {
                cleanup.push(KvOp::set(item.due_key(), b"", None));
            }
            // Finished or missing: its due key is left over.
            Some(_) | None => {}
        }
        cleanup.extend([
            KvOp::Remove((*due_key).clone()),
            KvOp::Remove(lease_key(id)),
        ]);
    }
    store::write(ctx, cleanup).await?;
    Ok(claimed)
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
    let key = lease_key(&item.id);
    let lease = store::get(ctx, &key).await?;
    if lease.as_deref() == Some(lease_id.as_bytes()) {
        return Ok(true);
    }
    if lease.is_some() {
        return Ok(false); // another claim holds it now
    }
    if !store::set_if_absent(ctx, &key, lease_id.as_bytes(), Some(LEASE_SECONDS)).await? {
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
    claimed: Claimed,
    attempt: Attempt,
) -> Result<Item, MarkError> {
    let Claimed { mut item, lease_id } = claimed;
    if !still_holds(ctx, &item, &lease_id).await? {
        ctx.recorder.outbox("stale_lease");
        return Err(MarkError::StaleLease);
    }
    let old_due_key = item.due_key();
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
    let ttl = (item.state != State::Queued).then_some(FINISHED_TTL_SECONDS);
    let bytes = serde_json::to_vec(&item).unwrap_or_default();
    let mut ops = vec![KvOp::set(item_key(&item.id), bytes, ttl)];
    if item.state == State::Queued {
        ops.push(KvOp::set(item.due_key(), b"", None));
    }
    // After the new due key: it may be the same key (a retry due at once).
    if old_due_key != item.due_key() || item.state != State::Queued {
        ops.push(KvOp::Remove(old_due_key));
    }
    ops.push(KvOp::Remove(lease_key(&item.id)));
    store::write(ctx, ops).await?;
    ctx.recorder.outbox(outcome);
    Ok(item)
}

/// When to try again after `attempts` failures: doubling from 2 s up to
/// 15 min, and never before Graph's Retry-After.
pub(crate) fn retry_at(now: u64, attempts: u32, retry_after: Option<&str>) -> u64 {
    let backoff = FIRST_BACKOFF_MILLIS
        .saturating_mul(1 << attempts.min(20))
        .min(MAX_BACKOFF_MILLIS);
    let asked = retry_after
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(0, |seconds| seconds.saturating_mul(1000));
    now + backoff.max(asked)
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

/// What one drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub claimed: u32,
    pub sent: u32,
    pub retried: u32,
    pub failed: u32,
    pub stale: u32,
    /// When the earliest queued item is due (milliseconds since the epoch),
    /// if one is: a host may sleep until then.
    pub next_due_millis: Option<u64>,
}

/// How soon, at the earliest, a drain asks to be called again: an item due
/// now but leased by a send in flight cannot be claimed before its lease
/// ends, and a host should not spin on it.
const MIN_REDRAIN_MILLIS: u64 = 1_000;

impl DrainReport {
    /// The report as log fields: counts only.
    pub fn log_fields(&self) -> [(&'static str, String); 5] {
        [
            ("claimed", self.claimed.to_string()),
            ("sent", self.sent.to_string()),
            ("retried", self.retried.to_string()),
            ("failed", self.failed.to_string()),
            ("stale", self.stale.to_string()),
        ]
    }
}

/// Claims due items and sends each once.
pub(crate) async fn drain<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
) -> Result<DrainReport, ApiError> {
    let mut report = DrainReport::default();
    for claimed in claim(ctx, limit).await? {
        report.claimed += 1;
        let composed = Composed {
            to: claimed.item.to.clone(),
            kind: crate::compose::graph_kind(&claimed.item.kind),
            payload: claimed.item.payload.clone(),
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
                                at: retry_at(
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
    report.next_due_millis = next_due(ctx).await?;
    Ok(report)
}

/// When the first item in the due index is due, not sooner than
/// `MIN_REDRAIN_MILLIS` from now.
async fn next_due<H: Host>(ctx: &Context<'_, H>) -> Result<Option<u64>, ApiError> {
    let page = store::list(ctx, DUE_PREFIX, None, 1).await?;
    let due = page.keys.first().and_then(|key| parse_due_key(key)?.0);
    let soonest = ctx.host.now_millis() + MIN_REDRAIN_MILLIS;
    Ok(due.map(|due| due.max(soonest)))
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
        let mut first = block_on(claim(&ctx, 10)).unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            block_on(claim(&ctx, 10)).unwrap().is_empty(),
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
        host.advance(u64::from(LEASE_SECONDS) * 2000);
        assert!(
            block_on(claim(&ctx, 10)).unwrap().is_empty(),
            "sent items are not claimed again"
        );
    }

    #[test]
    fn a_stale_lease_cannot_complete_a_newer_claim() {
        let host = TestHost::configured();
        let id = queue_one(&host);
        let ctx = Context::new(&host, |_| None);
        let stale = block_on(claim(&ctx, 10)).unwrap().remove(0);
        host.advance(u64::from(LEASE_SECONDS) * 1000 + 1);
        let current = block_on(claim(&ctx, 10)).unwrap().remove(0);
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
        let slow = block_on(claim(&ctx, 10)).unwrap().remove(0);
        host.advance(u64::from(LEASE_SECONDS) * 1000 + 1);
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
    fn backoff_doubles_caps_and_honours_retry_after() {
        assert_eq!(retry_at(0, 0, None), 2_000);
        assert_eq!(retry_at(0, 3, None), 16_000);
        assert_eq!(retry_at(0, 30, None), 15 * 60_000);
        assert_eq!(retry_at(1_000, 0, Some("37")), 38_000);
        assert_eq!(retry_at(0, 3, Some("1")), 16_000);
        assert_eq!(retry_at(0, 0, Some("soon")), 2_000);
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
