//! A send through Graph, and its record in the history: the one path a
//! message takes out, whether a route sends it now or the outbox drains it.

use crate::compose::Composed;
use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::Host;
use crate::core::ids::{is_bsuid, is_safe_wamid};
use crate::graph::EndpointFamily;
use crate::state::projections::{self, NewMessage};
use serde_json::Value;

/// POSTs a payload to its sender's messages endpoint (the default number
/// unless the send names another).
async fn post_message<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
) -> Result<Value, ApiError> {
    let graph = ctx.graph()?;
    let sender = composed
        .sender
        .as_deref()
        .unwrap_or(graph.config.phone_number_id());
    let path = format!("{sender}/messages");
    Ok(graph
        .post_json(EndpointFamily::Messages, &path, &composed.payload)
        .await?)
}

/// Sends a message through Graph, counts the outcome and records the sent
/// message's projection.
pub(crate) async fn send<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
) -> Result<Value, ApiError> {
    let reply = send_unrecorded(ctx, composed).await?;
    if let Some(wamid) = sent_id(&reply) {
        // The send stands whatever happens to its record: tried a few
        // times, then left out of the history (each failure is counted).
        for _ in 0..RECORD_ATTEMPTS {
            if record_sent(ctx, composed, wamid).await.is_ok() {
                break;
            }
        }
    }
    Ok(reply)
}

/// Tries of a sent message's record before the send answers without it.
const RECORD_ATTEMPTS: usize = 3;

/// Sends a message through Graph and counts the outcome; no record.
pub(crate) async fn send_unrecorded<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
) -> Result<Value, ApiError> {
    let result = post_message(ctx, composed).await;
    let outcome = match &result {
        Ok(_) => "sent",
        Err(ApiError::Graph(error)) if error.is_rate_limit() => "rate_limited",
        Err(_) => "failed",
    };
    ctx.recorder
        .send_outcome(EndpointFamily::Messages.label(), outcome);
    result
}

/// The WAMID of Graph's reply to a send, if it is one.
pub(crate) fn sent_id(reply: &Value) -> Option<&str> {
    reply["messages"][0]["id"]
        .as_str()
        .filter(|id| is_safe_wamid(id))
}

/// Records a sent message in the history (idempotent: a message recorded
/// before keeps its record).
pub(crate) async fn record_sent<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
    wamid: &str,
) -> Result<(), ApiError> {
    // A send to a business-scoped user id has no number to record.
    let to_user = is_bsuid(&composed.to);
    let default_sender = ctx.config().ok().map(|c| c.phone_number_id());
    let message = NewMessage {
        wamid,
        outbound: true,
        from_phone: None,
        to_phone: (!to_user).then_some(composed.to.as_str()),
        from_user_id: None,
        to_user_id: to_user.then_some(composed.to.as_str()),
        phone_number_id: composed.sender.as_deref().or(default_sender),
        kind: composed.kind,
        sequence: 0,
    };
    projections::record(ctx, message).await
}
