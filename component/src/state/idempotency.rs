//! `Idempotency-Key` on the send routes. The same key with the same body
//! replays the stored response without calling Graph. The same key with
//! another body is `409 idempotency_conflict`. While the first request is in
//! flight, a second is `409 idempotency_in_progress`, so two concurrent
//! requests send once. Only successes are stored: after a failure the key is
//! released, and the client may retry with it.

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp, Request, Response};
use crate::core::http::{text_response, JSON};
use crate::state::store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) const HEADER: &str = "idempotency-key";
/// How long a stored response is replayed.
const DONE_TTL_SECONDS: u32 = 24 * 60 * 60;
/// How long an in-flight claim blocks the key if its request never finishes.
const CLAIM_TTL_SECONDS: u32 = 60;
const MAX_KEY_LEN: usize = 255;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    body_hash: String,
    /// None while the first request is in flight.
    response: Option<StoredResponse>,
}

#[derive(Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    body: String,
    /// The headers that say where a queued send is (`Location`,
    /// `Preference-Applied`); absent in entries stored before them.
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// Headers a replay repeats; the content type is set anew.
const REPLAYED_HEADERS: &[&str] = &["location", "preference-applied"];

/// A claimed key: finish it with the response.
pub(crate) struct Claim {
    kv_key: String,
    body_hash: String,
}

pub(crate) enum Begin {
    /// No header: proceed without idempotency.
    NotRequested,
    /// The key is ours: proceed, then call `finish`.
    Claimed(Claim),
    /// A stored response to return as it is.
    Replay(Response),
}

/// Checks the request's `Idempotency-Key`, claiming it when it is new.
pub(crate) async fn begin<H: Host>(
    ctx: &Context<'_, H>,
    route: &str,
    request: &Request,
) -> Result<Begin, ApiError> {
    let Some(key) = request.header(HEADER) else {
        return Ok(Begin::NotRequested);
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters."
        )));
    }
    // Keys are hashed (they may be anything the client chose) and scoped
    // to the route.
    let kv_key = format!(
        "idem:{}",
        hex::encode(&Sha256::digest(format!("{route}\n{key}").as_bytes())[..16])
    );
    let body_hash = hex::encode(Sha256::digest(&request.body));
    let pending = serde_json::to_vec(&Entry {
        body_hash: body_hash.clone(),
        response: None,
    })
    .unwrap_or_default();
    // One call: the claim answers with the entry that holds the key, if any.
    // Without a store the key cannot be honoured: refusing (503
    // persistence_not_configured) beats a silent risk of sending twice.
    let claim = KvOp::set_if_absent(kv_key.clone(), pending, Some(CLAIM_TTL_SECONDS));
    let Some(held) = store::batch(ctx, vec![claim]).await?.pop().flatten() else {
        return Ok(Begin::Claimed(Claim { kv_key, body_hash }));
    };
    let entry = serde_json::from_slice::<Entry>(&held).ok();
    match entry {
        Some(entry) if entry.body_hash != body_hash => Err(ApiError::IdempotencyConflict),
        Some(Entry {
            response: Some(stored),
            ..
        }) => {
            let mut response = text_response(stored.status, JSON, stored.body);
            response.headers.extend(stored.headers);
            response
                .headers
                .push(("idempotent-replayed".into(), "true".into()));
            Ok(Begin::Replay(response))
        }
        // In flight (or unreadable): the first request answers for it.
        _ => Err(ApiError::IdempotencyInProgress),
    }
}

/// Stores a success for replay, or releases the key after a failure.
pub(crate) async fn finish<H: Host>(ctx: &Context<'_, H>, claim: Claim, response: &Response) {
    let op = if (200..300).contains(&response.status) {
        let entry = Entry {
            body_hash: claim.body_hash,
            response: Some(StoredResponse {
                status: response.status,
                body: String::from_utf8_lossy(&response.body).into_owned(),
                headers: response
                    .headers
                    .iter()
                    .filter(|(name, _)| {
                        REPLAYED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
                    })
                    .cloned()
                    .collect(),
            }),
        };
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        KvOp::set(claim.kv_key, value, Some(DONE_TTL_SECONDS))
    } else {
        KvOp::Remove(claim.kv_key)
    };
    // A failure here leaves the claim to expire: the send itself stands.
    let _ = store::write(ctx, vec![op]).await;
}
