//! The webhook route: Meta's GET verification challenge and signed POST
//! deliveries. A delivery is acknowledged only when every update in it was
//! dispatched now or before; a retried delivery dispatches only what was not
//! yet handled.

pub mod normalize;

use crate::auth::{secrets_equal, signature_valid};
use crate::error::ApiError;
use crate::host::{Host, Level, Request, Response, Update};
use crate::http::{json_response, text_response};
use crate::limits::MAX_UPDATES_PER_DELIVERY;
use crate::projections::{self, NewMessage};
use crate::store::counted;
use crate::Context;
use crate::{compose, messages};
use normalize::{normalize, Delivery, NormalizedUpdate};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long a dispatched update is remembered: Meta retries for up to 7 days.
const SEEN_TTL_SECONDS: u32 = 8 * 24 * 60 * 60;
/// How long a claim by a delivery in progress blocks a concurrent duplicate.
/// 60 s is also the shortest TTL Workers KV accepts.
const CLAIM_TTL_SECONDS: u32 = 60;
/// The refusal of a delivery over MAX_UPDATES_PER_DELIVERY, figure written
/// out (a test in `limits` keeps the two equal).
pub(crate) const TOO_MANY_UPDATES: &str = "A delivery may hold at most 1000 updates.";
/// Writes of the done mark before giving up (see `deliver_once`).
const DONE_MARK_ATTEMPTS: usize = 3;
const DONE: &[u8] = b"done";
const CLAIMED: &[u8] = b"claimed";

pub fn verify<H: Host>(ctx: &Context<'_, H>, request: &Request) -> Result<Response, ApiError> {
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

pub async fn receive<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let config = ctx.config()?;
    if !signature_valid(
        config.app_secret.expose(),
        request.header("x-hub-signature-256"),
        &request.body,
    ) {
        return Err(ApiError::InvalidSignature);
    }
    let delivery = normalize(&request.body).map_err(|_| {
        ApiError::InvalidRequest("Webhook body must be a JSON object with an entry array.".into())
    })?;
    if delivery.updates.len() > MAX_UPDATES_PER_DELIVERY {
        return Err(ApiError::InvalidRequest(TOO_MANY_UPDATES.into()));
    }
    let mut dispatched = 0;
    let mut duplicates = 0;
    let mut first_error = None;
    for (sequence, update) in delivery.updates.iter().enumerate() {
        let sequence = u16::try_from(sequence).unwrap_or(u16::MAX);
        match deliver_once(ctx, &delivery, update, sequence).await {
            Ok(Outcome::Dispatched) => dispatched += 1,
            Ok(Outcome::Duplicate) => duplicates += 1,
            // A failing store would fail every remaining update too, each
            // perhaps only after a timeout: stop at the first.
            Err(ApiError::StoreUnavailable) => return Err(ApiError::StoreUnavailable),
            // A refused update does not stop the others: the retry then has
            // less to do.
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    Ok(json_response(
        200,
        &json!({ "ok": true, "received": delivery.updates.len(), "dispatched": dispatched, "duplicates": duplicates }),
    ))
}

/// Records inbound messages and advances sent ones by their statuses.
async fn project<H: Host>(
    ctx: &Context<'_, H>,
    update: &NormalizedUpdate<'_>,
    json: &str,
    sequence: u16,
) -> Result<(), ApiError> {
    let Some(wamid) = update.id().filter(|id| projections::is_safe_wamid(id)) else {
        return Ok(());
    };
    match (update.kind, update.status()) {
        ("message", _) => {
            let message = NewMessage {
                wamid,
                outbound: false,
                from_phone: update.from(),
                to_phone: None,
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
            projections::add_status(ctx, wamid, status, error_code).await
        }
        _ => Ok(()),
    }
}

enum Outcome {
    Dispatched,
    Duplicate,
}

fn seen_key(update: &NormalizedUpdate) -> String {
    // Hashed: kv keys stay short and hold no phone numbers or WAMIDs.
    let digest = Sha256::digest(update.dedupe_key.as_bytes());
    format!("wh:seen:{}", hex::encode(&digest[..16]))
}

/// Dispatches an update unless it was dispatched before or is being
/// dispatched by a concurrent delivery right now.
async fn deliver_once<H: Host>(
    ctx: &Context<'_, H>,
    delivery: &Delivery<'_>,
    update: &NormalizedUpdate<'_>,
    sequence: u16,
) -> Result<Outcome, ApiError> {
    let host = ctx.host;
    let key = seen_key(update);
    let claimed = host
        .kv_set_if_absent(&key, CLAIMED, Some(CLAIM_TTL_SECONDS))
        .await;
    let stateless = match counted(ctx, claimed) {
        Ok(true) => false,
        Ok(false) => {
            // Done before: a duplicate. Claimed but not done: a delivery in
            // flight, or one that failed after claiming (its claim expires
            // after CLAIM_TTL_SECONDS). Acknowledging that would lose the
            // update if the claimer failed, so Meta is asked to retry.
            let mark = counted(ctx, host.kv_get(&key).await)?;
            if mark.as_deref() == Some(DONE) {
                ctx.recorder.webhook_update(update.kind, "duplicate");
                return Ok(Outcome::Duplicate);
            }
            ctx.recorder.webhook_update(update.kind, "in_flight");
            return Err(ApiError::UpdateInFlight);
        }
        // A host without a store gets no dedupe: every delivery is
        // dispatched, as the spec's service without persistence did.
        Err(ApiError::PersistenceNotConfigured) => true,
        Err(error) => {
            ctx.recorder.webhook_update(update.kind, "failed");
            return Err(error);
        }
    };
    let handed = Update {
        kind: update.kind,
        id: update.id().map(str::to_owned),
        status: update.status().map(str::to_owned),
        json: delivery.update_json(update),
    };
    // Projected before dispatch: a projection that fails fails the update
    // (released for Meta's retry) instead of leaving history without it.
    // Projections are idempotent, so a retry may redo this.
    if !stateless {
        if let Err(error) = project(ctx, update, &handed.json, sequence).await {
            ctx.recorder.webhook_update(update.kind, "failed");
            let _ = host.kv_remove(&key).await;
            return Err(error);
        }
    }
    if host.dispatch(&handed).await.is_err() {
        ctx.recorder.webhook_update(update.kind, "failed");
        // Release the claim so Meta's retry dispatches it; if even that
        // fails, the claim expires after CLAIM_TTL_SECONDS.
        let _ = host.kv_remove(&key).await;
        host.log(
            Level::Warn,
            "wats.webhook.dispatch_failed",
            &[("kind", update.kind.into())],
        );
        return Err(ApiError::DispatchFailed);
    }
    ctx.recorder.webhook_update(update.kind, "dispatched");
    if !stateless {
        // The dispatch stands whatever happens to the mark; tried a few
        // times, because a claim that expires unmarked is dispatched again
        // by a later redelivery (counted in metrics each time).
        for _ in 0..DONE_MARK_ATTEMPTS {
            if counted(ctx, host.kv_set(&key, DONE, Some(SEEN_TTL_SECONDS)).await).is_ok() {
                break;
            }
        }
    }
    let config = ctx.config()?;
    if config.log_webhook_events {
        host.log(
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
        // A demo: its failure is counted and logged by the Graph client and
        // does not fail the delivery.
        let _ = messages::send(ctx, &composed).await;
    }
    Ok(Outcome::Dispatched)
}
