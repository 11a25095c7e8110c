//! The message send routes. Bodies are validated (in `compose`) before
//! anything reaches Graph; a rejected body gets 400 naming the field, never
//! echoing it. A send asking for `Prefer: respond-async` is queued in the
//! outbox and answered 202.

use crate::compose::fields::{Fields, Limit};
use crate::compose::{self, envelope, Composed, MAX_TEXT_CHARS};
use crate::error::ApiError;
use crate::graph::{EndpointFamily, GraphClient};
use crate::host::{Host, Request, Response};
use crate::http::json_response;
use crate::projections::{self, NewMessage};
use crate::Context;
use crate::{idempotency, outbox};
use serde_json::{json, Map, Value};

/// Parses a request body that must be a JSON object.
pub fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidRequest(
            "Request body must be a JSON object.".into(),
        )),
    }
}

/// `POST {prefix}/messages/text`: `{to, text, previewUrl?}`. As the spec
/// says, its text may hold no control characters at all (the generic route
/// accepts line breaks).
pub async fn send_text_route<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let body = json_object(request)?;
    let fields = Fields::root(&body);
    let to = compose::recipient(&fields)?;
    let text = fields.required_text("text", Limit::line(MAX_TEXT_CHARS))?;
    let preview_url = fields.bool("previewUrl")?.unwrap_or(false);
    let object = json!({ "body": text, "preview_url": preview_url });
    deliver(ctx, request, envelope(to, "text", object, None)).await
}

/// `POST {prefix}/messages`: the Graph-native text body or a composer body.
pub async fn send_message_route<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let body = json_object(request)?;
    let groups = ctx.config()?.paths.group_routes;
    let composed = compose::compose(&body, groups)?;
    deliver(ctx, request, composed).await
}

/// `POST {prefix}/messages/{messageId}/read`: marks an inbound message read,
/// optionally showing a typing indicator (`{"typingIndicator": true}`).
pub async fn mark_read_route<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
    message_id: &str,
) -> Result<Response, ApiError> {
    if !projections::is_safe_wamid(message_id) {
        return Err(ApiError::InvalidRequest(
            "Path segment `messageId` must be a WhatsApp message id (wamid.…).".into(),
        ));
    }
    let typing = if request.body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let body = json_object(request)?;
        let fields = Fields::root(&body);
        fields.only(&["typingIndicator"], "a mark-as-read")?;
        fields.bool("typingIndicator")?.unwrap_or(false)
    };
    let graph = GraphClient::for_request(ctx)?;
    let call =
        crate::manage::messaging::mark_read(&graph.config.phone_number_id, message_id, typing)?;
    Ok(json_response(200, &graph.run(call).await?))
}

/// Whether the caller asked for asynchronous delivery (RFC 7240).
fn wants_async(request: &Request) -> bool {
    request.header("prefer").is_some_and(|prefer| {
        prefer
            .split([',', ';'])
            .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
    })
}

/// Sends now (200 with Graph's reply), or queues (202) when asked to.
async fn deliver<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
    composed: Composed,
) -> Result<Response, ApiError> {
    if wants_async(request) {
        let config = ctx.config()?;
        // With an Idempotency-Key, retries of this request name one item.
        let retry_of = request.header(idempotency::HEADER).map(|key| {
            let mut identity = format!("{}\n{key}\n", request.path()).into_bytes();
            identity.extend_from_slice(&request.body);
            identity
        });
        let queued = outbox::enqueue(ctx, &composed, retry_of.as_deref()).await?;
        let mut response = json_response(202, &queued);
        let location = format!("{}/outbox/{}", config.paths.api_prefix, queued.outbox_id);
        response.headers.push(("location".into(), location));
        response
            .headers
            .push(("preference-applied".into(), "respond-async".into()));
        return Ok(response);
    }
    let reply = send(ctx, &composed).await?;
    Ok(json_response(200, &reply))
}

/// POSTs a payload to the phone number's messages endpoint.
async fn post_message<H: Host>(ctx: &Context<'_, H>, payload: &Value) -> Result<Value, ApiError> {
    let graph = GraphClient::for_request(ctx)?;
    let path = format!("{}/messages", graph.config.phone_number_id);
    Ok(graph
        .post_json(EndpointFamily::Messages, &path, payload)
        .await?)
}

/// Sends a message through Graph, counts the outcome and records the sent
/// message's projection.
pub async fn send<H: Host>(ctx: &Context<'_, H>, composed: &Composed) -> Result<Value, ApiError> {
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
pub async fn send_unrecorded<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
) -> Result<Value, ApiError> {
    let result = post_message(ctx, &composed.payload).await;
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
pub fn sent_id(reply: &Value) -> Option<&str> {
    reply["messages"][0]["id"]
        .as_str()
        .filter(|id| projections::is_safe_wamid(id))
}

/// Records a sent message in the history (idempotent: a message recorded
/// before keeps its record).
pub async fn record_sent<H: Host>(
    ctx: &Context<'_, H>,
    composed: &Composed,
    wamid: &str,
) -> Result<(), ApiError> {
    let message = NewMessage {
        wamid,
        outbound: true,
        from_phone: None,
        to_phone: Some(&composed.to),
        kind: composed.kind,
        sequence: 0,
    };
    projections::record(ctx, message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prefer: &str) -> Request {
        Request {
            headers: vec![("Prefer".into(), prefer.into())],
            ..Request::default()
        }
    }

    #[test]
    fn respond_async_is_found_among_preferences() {
        assert!(wants_async(&request("respond-async")));
        assert!(wants_async(&request(
            "return=minimal, Respond-Async; wait=10"
        )));
        assert!(!wants_async(&request("return=minimal")));
        assert!(!wants_async(&Request::default()));
    }
}
