//! The webhook route: Meta's GET verification challenge and signed POST
//! deliveries. A delivery is acknowledged only when every update in it was
//! dispatched now or before; a retried delivery dispatches only what was not
//! yet handled.

pub(crate) mod normalize;

use crate::compose;
use crate::context::Context;
use crate::core::auth::secrets_equal;
use crate::core::error::ApiError;
use crate::core::host::{Host, Level, Request, Response, Update};
use crate::core::http::{json_response, text_response};
use crate::core::ids::is_safe_wamid;
use crate::core::limits::{MAX_UPDATES_PER_DELIVERY, TOO_MANY_UPDATES};
use crate::state::projections::{self, NewMessage};
use crate::state::send::send;
use crate::state::store::counted;
use normalize::{normalize, Delivery, NormalizedUpdate};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long a dispatched update is remembered: Meta retries for up to 7 days.
const SEEN_TTL_SECONDS: u32 = 8 * 24 * 60 * 60;
/// How long a claim by a delivery in progress blocks a concurrent duplicate.
/// 60 s is also the shortest TTL Workers KV accepts.
const CLAIM_TTL_SECONDS: u32 = 60;
/// Writes of the done mark before giving up (see `deliver_once`).
const DONE_MARK_ATTEMPTS: usize = 3;
const DONE: &[u8] = b"done";
const CLAIMED: &[u8] = b"claimed";

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
    // store's writes come in two batches (claims and projections before
    // the first dispatch, done marks after the last) instead of one per
    // update: a host that commits before each effect commits twice.
    let claimed = claim_all(ctx, &delivery, &mut handled).await;
    let projected = project_all(ctx, &delivery, claimed, &mut handled).await;
    let dispatched = dispatch_all(ctx, projected, &mut handled).await;
    mark_done(ctx, &dispatched).await;
    after_dispatch(ctx, &delivery, &dispatched).await?;
    if handled.store_failed {
        return Err(ApiError::StoreUnavailable);
    }
    if let Some(error) = handled.first_error {
        return Err(error);
    }
    Ok(json_response(
        200,
        &json!({ "ok": true, "received": delivery.updates.len(), "dispatched": dispatched.len(), "duplicates": handled.duplicates }),
    ))
}

/// Records inbound messages and advances sent ones by their statuses.
async fn project<H: Host>(
    ctx: &Context<'_, H>,
    update: &NormalizedUpdate<'_>,
    json: &str,
    sequence: u16,
) -> Result<(), ApiError> {
    let Some(wamid) = update.id().filter(|id| is_safe_wamid(id)) else {
        return Ok(());
    };
    match (update.kind, update.status()) {
        ("message", _) => {
            let message = NewMessage {
                wamid,
                outbound: false,
                from_phone: update.from(),
                to_phone: None,
                from_user_id: update.user_id(),
                kind: update.log_detail,
                sequence,
            };
            projections::record(ctx, message).await
        }
        ("status", Some(status)) => {
            let error_code = (status == "failed")
                .then(|| serde_json::from_str::<serde_json::Value>(json).ok())
                .flatten()
                .and_then(|update| update["errorCodes"][0].as_i64());
            projections::add_status(ctx, wamid, status, error_code, update.user_id()).await
        }
        _ => Ok(()),
    }
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
    sequence: u16,
    /// None without a store: no dedupe, as the spec's service without
    /// persistence dispatched every delivery.
    key: Option<String>,
}

/// Claims each update not dispatched before and not being dispatched by a
/// concurrent delivery right now.
async fn claim_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    delivery: &'d Delivery<'a>,
    handled: &mut Handled,
) -> Vec<Claimed<'d, 'a>> {
    let host = ctx.host;
    let mut claimed: Vec<Claimed> = Vec::with_capacity(delivery.updates.len());
    for (sequence, update) in delivery.updates.iter().enumerate() {
        let sequence = u16::try_from(sequence).unwrap_or(u16::MAX);
        let key = seen_key(update);
        // The same update twice in one delivery: the second is a duplicate
        // of the first (whose claim is not done yet, so the store would
        // call it in flight).
        if claimed.iter().any(|c| c.key.as_ref() == Some(&key)) {
            ctx.recorder.webhook_update(update.kind, "duplicate");
            handled.duplicates += 1;
            continue;
        }
        let claim = host
            .kv_set_if_absent(&key, CLAIMED, Some(CLAIM_TTL_SECONDS))
            .await;
        let claimed_key = match counted(ctx, claim) {
            Ok(true) => Ok(Some(key)),
            // A host without a store gets no dedupe.
            Err(ApiError::PersistenceNotConfigured) => Ok(None),
            // Done before: a duplicate. Claimed but not done: a delivery in
            // flight, or one that failed after claiming (its claim expires
            // after CLAIM_TTL_SECONDS). Acknowledging that would lose the
            // update if the claimer failed, so Meta is asked to retry.
            Ok(false) => match counted(ctx, host.kv_get(&key).await) {
                Ok(mark) if mark.as_deref() == Some(DONE) => {
                    ctx.recorder.webhook_update(update.kind, "duplicate");
                    handled.duplicates += 1;
                    continue;
                }
                Ok(_) => {
                    ctx.recorder.webhook_update(update.kind, "in_flight");
                    Err(ApiError::UpdateInFlight)
                }
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let refusal = match claimed_key {
            Ok(key) => {
                claimed.push(Claimed {
                    update,
                    sequence,
                    key,
                });
                continue;
            }
            Err(refusal) => refusal,
        };
        if refusal != ApiError::UpdateInFlight {
            ctx.recorder.webhook_update(update.kind, "failed");
        }
        handled.refuse(refusal);
        // A failing store would fail every remaining update too, each
        // perhaps only after a timeout: claiming stops here, and what was
        // claimed is released unprojected (`project_all`) for Meta's retry.
        if handled.store_failed {
            break;
        }
    }
    claimed
}

/// Lets Meta's retry dispatch an update: its claim is removed (if even
/// that fails, it expires after CLAIM_TTL_SECONDS).
async fn release<H: Host>(ctx: &Context<'_, H>, claimed: &Claimed<'_, '_>) {
    ctx.recorder.webhook_update(claimed.update.kind, "failed");
    if let Some(key) = &claimed.key {
        let _ = ctx.host.kv_remove(key).await;
    }
}

/// Projects every claimed update before any is dispatched: a projection
/// that fails fails its update (released for Meta's retry) instead of
/// leaving history without it. Projections are idempotent, so a retry may
/// redo them.
async fn project_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    delivery: &Delivery<'a>,
    claimed: Vec<Claimed<'d, 'a>>,
    handled: &mut Handled,
) -> Vec<(Claimed<'d, 'a>, Update)> {
    let mut projected = Vec::with_capacity(claimed.len());
    for claim in claimed {
        // Once the store has failed, the rest are released unprojected.
        if handled.store_failed {
            release(ctx, &claim).await;
            continue;
        }
        let update = claim.update;
        let handed = Update {
            kind: update.kind,
            id: update.id().map(str::to_owned),
            status: update.status().map(str::to_owned),
            json: delivery.update_json(update),
        };
        let result = match claim.key {
            Some(_) => project(ctx, update, &handed.json, claim.sequence).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => projected.push((claim, handed)),
            Err(error) => {
                release(ctx, &claim).await;
                handled.refuse(error);
            }
        }
    }
    projected
}

/// Dispatches in delivery order; returns what was dispatched.
async fn dispatch_all<'d, 'a, H: Host>(
    ctx: &Context<'_, H>,
    projected: Vec<(Claimed<'d, 'a>, Update)>,
    handled: &mut Handled,
) -> Vec<Claimed<'d, 'a>> {
    let mut dispatched = Vec::with_capacity(projected.len());
    for (claim, handed) in projected {
        let kind = claim.update.kind;
        if ctx.host.dispatch(&handed).await.is_err() {
            release(ctx, &claim).await;
            ctx.host.log(
                Level::Warn,
                "wats.webhook.dispatch_failed",
                &[("kind", kind.into())],
            );
            handled.refuse(ApiError::DispatchFailed);
            continue;
        }
        ctx.recorder.webhook_update(kind, "dispatched");
        dispatched.push(claim);
    }
    dispatched
}

/// Marks dispatched updates done. A dispatch stands whatever happens to its
/// mark; each is tried a few times, because a claim that expires unmarked
/// is dispatched again by a later redelivery. A mark that never lands is
/// logged: it is the one way an update can reach the application twice.
async fn mark_done<H: Host>(ctx: &Context<'_, H>, dispatched: &[Claimed<'_, '_>]) {
    for claim in dispatched {
        let Some(key) = &claim.key else {
            continue;
        };
        let mut marked = false;
        for _ in 0..DONE_MARK_ATTEMPTS {
            let mark = ctx.host.kv_set(key, DONE, Some(SEEN_TTL_SECONDS)).await;
            if counted(ctx, mark).is_ok() {
                marked = true;
                break;
            }
        }
        if !marked {
            ctx.host.log(
                Level::Warn,
                "wats.webhook.done_mark_failed",
                &[("kind", claim.update.kind.into())],
            );
        }
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
            // A demo: its failure is counted and logged by the Graph client
            // and does not fail the delivery.
            let _ = send(ctx, &composed).await;
        }
    }
    Ok(())
}
