//! The webhook route: Meta's GET verification challenge and signed POST
//! deliveries. A delivery is acknowledged only when every update in it was
//! dispatched now or before; a retried delivery dispatches only what was not
//! yet handled.

pub(crate) mod normalize;

use crate::compose;
use crate::context::Context;
use crate::core::auth::secrets_equal;
use crate::core::config::STORE_EXCLUSIVE_KEY;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp, Level, Request, Response, Update};
use crate::core::http::{json_response, text_response};
use crate::core::ids::is_safe_wamid;
use crate::core::limits::{MAX_UPDATES_PER_DELIVERY, TOO_MANY_UPDATES};
use crate::state::events::{self, NewEvent};
use crate::state::projections::{self, NewMessage};
use crate::state::send::send;
use crate::state::{store, webhook_log};
use normalize::{normalize, Delivery, NormalizedUpdate};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long a dispatched update is remembered: Meta retries for up to 7 days.
const SEEN_TTL_SECONDS: u32 = 8 * 24 * 60 * 60;
/// How long a claim by a delivery in progress blocks a concurrent duplicate.
/// 60 s is also the shortest TTL Workers KV accepts.
const CLAIM_TTL_SECONDS: u32 = 60;
/// Tries of the done marks' batch before giving up (see `settle`).
const DONE_MARK_ATTEMPTS: usize = 3;
const DONE: &[u8] = b"done";
/// A claim's value: this prefix and the start time of the host that made
/// it (`Host::started_millis`), its life.
const CLAIMED: &str = "claimed:";

/// The value of a claim made now.
fn claim_mark<H: Host>(ctx: &Context<'_, H>) -> Vec<u8> {
    format!("{CLAIMED}{}", ctx.host.started_millis()).into_bytes()
}

/// Whether a claim another delivery holds was made by an earlier life of
/// this host, which is its store's only live writer: that delivery died
/// with it (docs/kv-schema.md, "After a crash").
fn claim_of_earlier_life<H: Host>(ctx: &Context<'_, H>, held: &[u8]) -> bool {
    let exclusive = ctx.host.config(STORE_EXCLUSIVE_KEY).as_deref() == Some("1");
    exclusive && held != claim_mark(ctx).as_slice()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Meta's subscription challenge.
    Verify,
    /// A signed delivery (the signature was checked by the dispatcher).
    Receive,
}

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
) -> Result<Response, ApiError> {
    match op {
        Op::Verify => verify(ctx, request),
        Op::Receive => receive(ctx, request).await,
    }
}

fn verify<H: Host>(ctx: &Context<'_, H>, request: &Request) -> Result<Response, ApiError> {
    let mode = request.query("hub.mode");
    let token = request.query("hub.verify_token");
    let challenge = request.query("hub.challenge");
    let (Some("subscribe"), Some(token), Some(challenge)) = (mode.as_deref(), token, challenge)
    else {
        return Err(ApiError::InvalidRequest(
            "Expected hub.mode=subscribe, hub.verify_token and hub.challenge.".into(),
        ));
    };
    if !secrets_equal(&token, ctx.config()?.verify_token.expose()) {
        return Err(ApiError::VerificationFailed);
    }
    // The challenge is echoed back, so only what Meta sends (digits, in
    // practice) is accepted: nothing that could become markup or a header.
    let safe = !challenge.is_empty()
        && challenge.len() <= 128
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !safe {
        return Err(ApiError::InvalidRequest(
            "hub.challenge must be up to 128 letters or digits.".into(),
        ));
    }
    Ok(text_response(200, "text/plain", challenge))
}

async fn receive<H: Host>(ctx: &Context<'_, H>, request: &Request) -> Result<Response, ApiError> {
    // The signature was checked before the body was looked at (`authorize`).
    let delivery = normalize(&request.body).map_err(|_| {
        ApiError::InvalidRequest("Webhook body must be a JSON object with an entry array.".into())
    })?;
    if delivery.updates.len() > MAX_UPDATES_PER_DELIVERY {
        return Err(ApiError::InvalidRequest(TOO_MANY_UPDATES.into()));
    }
    let mut handled = Handled::default();
    // In phases, each over every update in delivery order, so that the
    // store hears three calls whatever the delivery's size (claims,
    // projections, done marks) instead of several per update.
    let claimed = claim_all(ctx, &delivery, &mut handled).await;
    let projected = project_all(ctx, &delivery, claimed, &mut handled).await;
    let (dispatched, refused) = dispatch_all(ctx, projected, &mut handled).await;
    let answer = if handled.store_failed {
        Err(ApiError::StoreUnavailable)
    } else if let Some(error) = handled.first_error.take() {
        Err(error)
    } else {
        Ok(json_response(
            200,
            &json!({ "ok": true, "received": delivery.updates.len(), "dispatched": dispatched.len(), "duplicates": handled.duplicates }),
        ))
    };
    // The console's log of deliveries joins the done marks' batch; a
    // failed or absent store keeps no log.
    let logged = (!handled.store_failed && !handled.stateless).then(|| {
        let entry = log_entry(ctx, &delivery, &handled, dispatched.len(), &answer);
        webhook_log::log_ops(ctx, &entry, &request.body)
    });
    let (log_ops, trims) = logged.unwrap_or_default();
    settle(ctx, &dispatched, &refused, log_ops).await;
    if trims {
        // Best effort: a later delivery trims again.
        let _ = webhook_log::trim(ctx).await;
    }
    after_dispatch(ctx, &delivery, &dispatched).await?;
    answer
}

/// What the log keeps of a delivery: kinds and counts, never an id.
fn log_entry<H: Host>(
    ctx: &Context<'_, H>,
    delivery: &Delivery<'_>,
    handled: &Handled,
    accepted: usize,
    answer: &Result<Response, ApiError>,
) -> webhook_log::Entry {
    let mut kinds: Vec<String> = Vec::new();
    for update in &delivery.updates {
        if !kinds.iter().any(|kind| kind == update.kind) {
            kinds.push(update.kind.to_owned());
        }
    }
    let updates = delivery.updates.len();
    webhook_log::Entry {
        at: ctx.host.now_millis(),
        updates,
        kinds,
        accepted,
        duplicates: handled.duplicates,
        refused: updates.saturating_sub(accepted + handled.duplicates),
        status: answer.as_ref().map_or_else(ApiError::status, |r| r.status),
        code: answer.as_ref().err().map(|error| error.code().to_owned()),
    }
}

/// The writes that list an inbound message (recorded with its claim) or
/// advance a sent one by its status.
fn projection_ops<H: Host>(ctx: &Context<'_, H>, claim: &Claimed<'_, '_>, json: &str) -> Vec<KvOp> {
    let update = claim.update;
    let Some(wamid) = update.id().filter(|id| is_safe_wamid(id)) else {
        return Vec::new();
    };
    match (update.kind, update.status()) {
        ("message", _) => claim
            .row_id
            .as_deref()
            .map(|row_id| projections::row_op(row_id, wamid))
            .into_iter()
            .collect(),
        ("status", Some(status)) => {
            let error_code = (status == "failed")
                .then(|| serde_json::from_str::<serde_json::Value>(json).ok())
                .flatten()
                .and_then(|update| update["errorCodes"][0].as_i64());
            let op = projections::status_op(ctx, wamid, status, error_code, update.user_id());
            op.into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// The WAMID of an inbound message, which the claim batch records.
fn message_id<'u>(update: &'u NormalizedUpdate<'_>) -> Option<&'u str> {
    (update.kind == "message")
        .then(|| update.id())
        .flatten()
        .filter(|id| is_safe_wamid(id))
}

fn seen_key(update: &NormalizedUpdate) -> String {
    // Hashed: kv keys stay short and hold no phone numbers or WAMIDs.
    let digest = Sha256::digest(update.dedupe_key.as_bytes());
    format!("wh:seen:{}", hex::encode(&digest[..16]))
}

/// What a delivery's updates came to, besides those dispatched.
#[derive(Default)]
struct Handled {
    duplicates: usize,
    /// The first refusal: Meta retries the delivery for it.
    first_error: Option<ApiError>,
    /// The store failed: the updates not yet claimed were left alone.
    store_failed: bool,
    /// The host has no store: nothing is claimed, marked or logged.
    stateless: bool,
}

impl Handled {
    fn refuse(&mut self, error: ApiError) {
        if error == ApiError::StoreUnavailable {
            self.store_failed = true;
        } else {
            self.first_error.get_or_insert(error);
        }
    }
}

/// An update this delivery claimed (or, without a store, will dispatch
/// unclaimed).
struct Claimed<'d, 'a> {
    update: &'d NormalizedUpdate<'a>,
    /// Its place in the delivery.
    sequence: u16,
    /// None without a store: no dedupe, as the spec's service without
    /// persistence dispatched every delivery.
    key: Option<String>,
    /// The listing row of an inbound message: the one its record, written
    /// by the claim batch or by an earlier delivery, names.
    row_id: Option<String>,
}

/// Claims, in one batch, each update not dispatched before and not being
/// dispatched by a concurrent delivery right now. The batch also records
/// each inbound message if it is not yet: the record names the row that
/// `project_all` writes, so a redelivery lists the message under its
/// first row and never twice.
async fn claim_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    delivery: &'d Delivery<'a>,
    handled: &mut Handled,
) -> Vec<Claimed<'d, 'a>> {
    let mut candidates: Vec<Claimed> = Vec::with_capacity(delivery.updates.len());
    let mut ops = Vec::with_capacity(delivery.updates.len() * 2);
    let mark = claim_mark(ctx);
    for (sequence, update) in delivery.updates.iter().enumerate() {
        let key = seen_key(update);
        // The same update twice in one delivery: the second is a duplicate
        // of the first (whose claim is not done yet, so the store would
        // call it in flight).
        if candidates.iter().any(|c| c.key.as_ref() == Some(&key)) {
            ctx.recorder.webhook_update(update.kind, "duplicate");
            handled.duplicates += 1;
            continue;
        }
        ops.push(KvOp::set_if_absent(
            key.clone(),
            mark.clone(),
            Some(CLAIM_TTL_SECONDS),
        ));
        let sequence = u16::try_from(sequence).unwrap_or(u16::MAX);
        let row_id = message_id(update).map(|wamid| {
            let number = delivery.phone_number_id(update);
            let message = NewMessage {
                wamid,
                outbound: false,
                from_phone: update.from(),
                to_phone: None,
                from_user_id: update.user_id(),
                to_user_id: None,
                phone_number_id: number.as_deref(),
                kind: update.log_detail,
                sequence,
            };
            let record = projections::new_record(ctx, &message);
            ops.push(record.record);
            record.row_id
        });
        candidates.push(Claimed {
            update,
            sequence,
            key: Some(key),
            row_id,
        });
    }
    let found = match store::batch(ctx, ops).await {
        Ok(found) => found,
        // A host without a store gets no dedupe.
        Err(ApiError::PersistenceNotConfigured) => {
            handled.stateless = true;
            for candidate in &mut candidates {
                candidate.key = None;
            }
            return candidates;
        }
        // Nothing was claimed: Meta's retry delivers every update again.
        Err(error) => {
            for candidate in &candidates {
                ctx.recorder.webhook_update(candidate.update.kind, "failed");
            }
            handled.refuse(error);
            return Vec::new();
        }
    };
    let mut answers = found.into_iter();
    let mut claimed = Vec::with_capacity(candidates.len());
    let mut taken_over = 0;
    for mut candidate in candidates {
        let claim = answers.next().flatten();
        if candidate.row_id.is_some() {
            // Recorded before: its row is the one that record names.
            if let Some(held) = answers.next().flatten() {
                candidate.row_id = projections::row_id_of(&held);
            }
        }
        match claim.as_deref() {
            None => claimed.push(candidate),
            Some(DONE) => {
                ctx.recorder
                    .webhook_update(candidate.update.kind, "duplicate");
                handled.duplicates += 1;
            }
            // Nobody else can claim it meanwhile (this host is the only
            // writer), so it is ours without a write; its done mark or
            // its release replaces the dead claim.
            Some(held) if claim_of_earlier_life(ctx, held) => {
                taken_over += 1;
                claimed.push(candidate);
            }
            // Claimed but not done: a delivery in flight, or one that
            // failed after claiming (its claim expires after
            // CLAIM_TTL_SECONDS). Acknowledging that would lose the update
            // if the claimer failed, so Meta is asked to retry.
            Some(_) => {
                ctx.recorder
                    .webhook_update(candidate.update.kind, "in_flight");
                handled.refuse(ApiError::UpdateInFlight);
            }
        }
    }
    if taken_over > 0 {
        ctx.host.log(
            Level::Info,
            "wats.webhook.claims_taken_over",
            &[("count", taken_over.to_string())],
        );
    }
    claimed
}

/// Lets Meta's retry dispatch these updates: their claims are removed, in
/// one batch (if even that fails, they expire after CLAIM_TTL_SECONDS).
async fn release<H: Host>(ctx: &Context<'_, H>, claims: &[&Claimed<'_, '_>]) {
    for claim in claims {
        ctx.recorder.webhook_update(claim.update.kind, "failed");
    }
    let ops = claims
        .iter()
        .filter_map(|claim| claim.key.clone().map(KvOp::Remove))
        .collect();
    let _ = store::write(ctx, ops).await;
}

/// Projects every claimed update, and queues its events for the
/// application's endpoints, in one batch, before any is dispatched: if the
/// batch fails, every claimed update is released for Meta's retry instead
/// of leaving history or the application without it. Both are idempotent,
/// so a retry may redo them.
async fn project_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    delivery: &Delivery<'a>,
    claimed: Vec<Claimed<'d, 'a>>,
    handled: &mut Handled,
) -> Vec<(Claimed<'d, 'a>, Update)> {
    let handed: Vec<(Claimed, Update)> = claimed
        .into_iter()
        .map(|claim| {
            let update = claim.update;
            let handed = Update {
                kind: update.kind,
                id: update.id().map(str::to_owned),
                status: update.status().map(str::to_owned),
                json: delivery.update_json(update),
            };
            (claim, handed)
        })
        .collect();
    let events = ctx.config().map(|config| &config.events).ok();
    let ops = handed
        .iter()
        .filter(|(claim, _)| claim.key.is_some())
        .flat_map(|(claim, update)| {
            let event = NewEvent {
                kind: update.kind,
                sequence: claim.sequence,
                dedupe_key: &claim.update.dedupe_key,
                json: &update.json,
            };
            let queued = events.map(|events| events::queue_ops(ctx, events, &event));
            projection_ops(ctx, claim, &update.json)
                .into_iter()
                .chain(queued.into_iter().flatten())
        })
        .collect();
    if let Err(error) = store::write(ctx, ops).await {
        let claims: Vec<&Claimed> = handed.iter().map(|(claim, _)| claim).collect();
        release(ctx, &claims).await;
        handled.refuse(error);
        return Vec::new();
    }
    handed
}

/// Dispatches in delivery order; returns what was dispatched and what
/// the application refused.
async fn dispatch_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    projected: Vec<(Claimed<'d, 'a>, Update)>,
    handled: &mut Handled,
) -> (Vec<Claimed<'d, 'a>>, Vec<Claimed<'d, 'a>>) {
    let mut dispatched = Vec::with_capacity(projected.len());
    let mut refused = Vec::new();
    for (claim, handed) in projected {
        let kind = claim.update.kind;
        if ctx.host.dispatch(&handed).await.is_err()
            || send_unqueued(ctx, &claim, &handed).await.is_err()
        {
            ctx.recorder.webhook_update(kind, "failed");
            ctx.host.log(
                Level::Warn,
                "wats.webhook.dispatch_failed",
                &[("kind", kind.into())],
            );
            handled.refuse(ApiError::DispatchFailed);
            refused.push(claim);
            continue;
        }
        ctx.recorder.webhook_update(kind, "dispatched");
        // Each of a message's statuses repeats its pricing; Meta charges
        // on delivery, so the delivered status counts it, once.
        if let (Some((category, kind)), Some("delivered")) =
            (claim.update.pricing, claim.update.status())
        {
            ctx.recorder.priced(category, kind);
        }
        dispatched.push(claim);
    }
    (dispatched, refused)
}

/// Without a store an update's events are not queued: they go to the
/// endpoints now, and a failure is a failed dispatch (Meta retries).
async fn send_unqueued<H: Host>(
    ctx: &Context<'_, H>,
    claim: &Claimed<'_, '_>,
    update: &Update,
) -> Result<(), ApiError> {
    let events = &ctx.config()?.events;
    if claim.key.is_some() || events.endpoints.is_empty() {
        return Ok(());
    }
    let event = NewEvent {
        kind: update.kind,
        sequence: claim.sequence,
        dedupe_key: &claim.update.dedupe_key,
        json: &update.json,
    };
    events::send_inline(ctx, events, &event).await
}

/// In one batch, marks dispatched updates done, releases the claims of
/// refused ones for Meta's retry, and logs the delivery (`log`). A
/// dispatch stands whatever happens to its mark; the batch is tried a few
/// times, because a claim that expires unmarked is dispatched again by a
/// later redelivery. A mark that never lands is logged: it is the one way
/// an update can reach the application twice.
async fn settle<H: Host>(
    ctx: &Context<'_, H>,
    dispatched: &[Claimed<'_, '_>],
    refused: &[Claimed<'_, '_>],
    log: Vec<KvOp>,
) {
    let marks = dispatched.iter().filter_map(|claim| {
        let key = claim.key.clone()?;
        Some(KvOp::set(key, DONE, Some(SEEN_TTL_SECONDS)))
    });
    let releases = refused
        .iter()
        .filter_map(|claim| claim.key.clone().map(KvOp::Remove));
    let ops: Vec<KvOp> = marks.chain(releases).chain(log).collect();
    if ops.is_empty() {
        return;
    }
    for _ in 0..DONE_MARK_ATTEMPTS {
        if store::write(ctx, ops.clone()).await.is_ok() {
            return;
        }
    }
    for claim in dispatched {
        ctx.host.log(
            Level::Warn,
            "wats.webhook.done_mark_failed",
            &[("kind", claim.update.kind.into())],
        );
    }
}

/// The optional log line and echo reply of each dispatched update.
async fn after_dispatch<H: Host>(
    ctx: &Context<'_, H>,
    delivery: &Delivery<'_>,
    dispatched: &[Claimed<'_, '_>],
) -> Result<(), ApiError> {
    let config = ctx.config()?;
    for claim in dispatched {
        let update = claim.update;
        if config.log_webhook_events {
            ctx.host.log(
                Level::Info,
                "wats.webhook.update",
                &[
                    ("kind", update.kind.into()),
                    ("detail", update.log_detail.into()),
                ],
            );
        }
        if let (true, Some((from, text))) = (config.echo_reply, delivery.inbound_text(update)) {
            let reply = format!("Echo: {text}");
            let reply: String = reply.chars().take(compose::MAX_TEXT_CHARS).collect();
            let object = json!({ "body": reply, "preview_url": false });
            let composed = compose::envelope(&from, "text", object, None);
            // From the number the message came to.
            let number = delivery.phone_number_id(update);
            let sender = number.and_then(|id| config.sender(&id).ok().flatten());
            let composed = compose::Composed { sender, ..composed };
            // A demo: its failure is counted and logged by the Graph client
            // and does not fail the delivery.
            let _ = send(ctx, &composed).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::STORE_EXCLUSIVE_KEY;
    use crate::testing::{block_on, TestHost};
    use crate::{handle, sign, Request};

    const BODY: &str = include_str!("../../../../tests/conformance/fixtures/batched-messages.json");

    fn delivery() -> Request {
        Request {
            method: "POST".into(),
            path_with_query: "/webhooks/whatsapp".into(),
            headers: vec![(
                "x-hub-signature-256".into(),
                sign("test-app-secret", BODY.as_bytes()),
            )],
            body: BODY.as_bytes().to_vec(),
        }
    }

    /// A host whose delivery died with its first life: every update of the
    /// delivery is claimed and none is done.
    fn crashed_mid_delivery(exclusive: bool) -> TestHost {
        let mut host = TestHost::configured();
        if exclusive {
            host.settings.insert(STORE_EXCLUSIVE_KEY.into(), "1".into());
        }
        host.started.set(1_000);
        let response = block_on(handle(&host, delivery()));
        assert_eq!(response.status, 200);
        // Turn every done mark back into a claim of that first life, as a
        // crash between the claims and the done marks leaves them.
        for (key, (value, _)) in host.kv.borrow_mut().iter_mut() {
            if key.starts_with("wh:seen:") {
                *value = b"claimed:1000".to_vec();
            }
        }
        host.updates.borrow_mut().clear();
        host
    }

    #[test]
    fn a_restarted_exclusive_host_takes_over_the_claims_of_its_earlier_life() {
        let host = crashed_mid_delivery(true);
        host.started.set(2_000);
        let response = block_on(handle(&host, delivery()));
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            host.updates.borrow().len(),
            6,
            "Meta's retry dispatches them at once"
        );
        assert!(host
            .logs
            .borrow()
            .iter()
            .any(|line| line.contains("claims_taken_over")));
        // Done now: a further retry is a duplicate.
        let again = block_on(handle(&host, delivery()));
        assert!(String::from_utf8_lossy(&again.body).contains(r#""duplicates":6"#));
    }

    #[test]
    fn a_claim_of_the_same_life_or_a_shared_store_stays_in_flight() {
        // The same life: a concurrent delivery of this host holds it.
        let host = crashed_mid_delivery(true);
        let response = block_on(handle(&host, delivery()));
        assert_eq!(response.status, 409);
        // A store other live hosts may write: the claim may be theirs.
        let host = crashed_mid_delivery(false);
        host.started.set(2_000);
        let response = block_on(handle(&host, delivery()));
        assert_eq!(response.status, 409);
        assert!(host.updates.borrow().is_empty());
    }

    /// Listing rows of inbound messages, by row id.
    fn listed(host: &TestHost) -> Vec<(String, Vec<u8>)> {
        let kv = host.kv.borrow();
        let rows = kv.iter().filter(|(key, _)| key.starts_with("msg:row:"));
        rows.map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect()
    }

    #[test]
    fn a_retry_lists_a_message_whose_row_an_earlier_try_lost() {
        let host = TestHost::configured();
        assert_eq!(block_on(handle(&host, delivery())).status, 200);
        let rows = listed(&host);
        assert_eq!(rows.len(), 3, "three inbound messages");
        // The records stay and the rows and claims are gone, as when the
        // projection batch failed after the claim batch had recorded them
        // (the claims released for Meta's retry).
        host.kv
            .borrow_mut()
            .retain(|key, _| !key.starts_with("msg:row:") && !key.starts_with("wh:seen:"));
        host.advance(5_000);
        assert_eq!(block_on(handle(&host, delivery())).status, 200);
        assert_eq!(
            listed(&host),
            rows,
            "the same rows, under the first records"
        );
    }
}
