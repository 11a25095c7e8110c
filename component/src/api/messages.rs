//! The message send routes. Bodies are validated (in `compose`) before
//! anything reaches Graph; a rejected body gets 400 naming the field, never
//! echoing it. A send asking for `Prefer: respond-async` is queued in the
//! outbox and answered 202. An `Idempotency-Key` is the dispatcher's (the
//! routes are declared `.idempotent()`).

use crate::compose::fields::{invalid, json_object, Fields, Limit};
use crate::compose::{self, envelope, Composed, MAX_TEXT_CHARS};
use crate::context::Context;
use crate::core::config::NotServed;
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, Params};
use crate::core::ids::is_safe_wamid;
use crate::manage::messaging;
use crate::state::{idempotency, outbox, send};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    SendText,
    SendMessage,
    MarkRead,
}

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
    params: &Params,
) -> Result<Response, ApiError> {
    match op {
        Op::SendText => send_text(ctx, request).await,
        Op::SendMessage => send_message(ctx, request).await,
        Op::MarkRead => mark_read(ctx, request, params.get("messageId")).await,
    }
}

/// `POST {prefix}/messages/text`: `{to, text, previewUrl?}`. As the spec
/// says, its text may hold no control characters at all (the generic route
/// accepts line breaks).
async fn send_text<H: Host>(ctx: &Context<'_, H>, request: &Request) -> Result<Response, ApiError> {
    let mut body = json_object(request)?;
    let sender = take_sender(ctx, &mut body)?;
    let fields = Fields::root(&body);
    let to = compose::recipient(&fields)?;
    let text = fields.required_text("text", Limit::line(MAX_TEXT_CHARS))?;
    let preview_url = fields.bool("previewUrl")?.unwrap_or(false);
    let object = json!({ "body": text, "preview_url": preview_url });
    let composed = envelope(to, "text", object, None);
    deliver(ctx, request, Composed { sender, ..composed }).await
}

/// `POST {prefix}/messages`: the Graph-native text body or a composer body.
async fn send_message<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let mut body = json_object(request)?;
    let sender = take_sender(ctx, &mut body)?;
    let groups = ctx.config()?.paths.group_routes;
    let composed = compose::compose(&body, groups)?;
    deliver(ctx, request, Composed { sender, ..composed }).await
}

/// A send body's optional `from`: which of the configured numbers sends
/// it (none: the default one). Taken out of the body before the composers,
/// which refuse fields they do not know.
fn take_sender<H: Host>(
    ctx: &Context<'_, H>,
    body: &mut Map<String, Value>,
) -> Result<Option<String>, ApiError> {
    let Some(from) = body.remove("from") else {
        return Ok(None);
    };
    let config = ctx.config()?;
    from.as_str()
        .ok_or(NotServed)
        .and_then(|from| config.sender(from))
        .map_err(|NotServed| {
            invalid(
                "from",
                "must be one of the phone number ids in WATS_PHONE_NUMBER_ID",
            )
        })
}

/// `POST {prefix}/messages/{messageId}/read`: marks an inbound message read,
/// optionally showing a typing indicator (`{"typingIndicator": true}`).
async fn mark_read<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
    message_id: &str,
) -> Result<Response, ApiError> {
    if !is_safe_wamid(message_id) {
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
    let graph = ctx.graph()?;
    let call = messaging::mark_read(graph.config.phone_number_id(), message_id, typing)?;
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
    let reply = send::send(ctx, &composed).await?;
    Ok(json_response(200, &reply))
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
