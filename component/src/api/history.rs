//! What the service remembers, read back: the message history and a queued
//! send's state.

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, page_limit, Params};
use crate::core::ids::is_safe_wamid;
use crate::state::{outbox, projections};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    ListMessages,
    GetMessage,
    GetOutboxItem,
}

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
    params: &Params,
) -> Result<Response, ApiError> {
    match op {
        Op::ListMessages => list_messages(ctx, request).await,
        Op::GetMessage => get_message(ctx, params.get("messageId")).await,
        Op::GetOutboxItem => get_outbox_item(ctx, params.get("outboxId")).await,
    }
}

/// `GET {prefix}/messages?limit=&cursor=`: newest first.
async fn list_messages<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let limit = page_limit(request)?;
    let cursor = request.query("cursor");
    let page = projections::list(ctx, limit, cursor.as_deref()).await?;
    Ok(json_response(
        200,
        &json!({ "items": page.items, "nextCursor": page.next_cursor }),
    ))
}

/// `GET {prefix}/messages/{messageId}`.
async fn get_message<H: Host>(
    ctx: &Context<'_, H>,
    message_id: &str,
) -> Result<Response, ApiError> {
    if !is_safe_wamid(message_id) {
        return Err(ApiError::InvalidRequest(
            "The message id must be a WhatsApp message id (wamid.…).".into(),
        ));
    }
    match projections::load(ctx, message_id).await? {
        Some(record) => Ok(json_response(200, &record)),
        None => Err(ApiError::NotFound),
    }
}

/// `GET {prefix}/outbox/{outboxId}`.
async fn get_outbox_item<H: Host>(ctx: &Context<'_, H>, id: &str) -> Result<Response, ApiError> {
    if !outbox::is_outbox_id(id) {
        return Err(ApiError::InvalidRequest(
            "Path segment `outboxId` must be an outbox id (wats-out-…).".into(),
        ));
    }
    match outbox::load(ctx, id).await? {
        Some(item) => Ok(json_response(200, &item.view())),
        None => Err(ApiError::NotFound),
    }
}
