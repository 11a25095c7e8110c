//! What the service remembers, read back: the message history, queued
//! sends, and the log of Meta's recent deliveries.

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, limit_within, page_limit, Params};
use crate::core::ids::is_safe_wamid;
use crate::state::{outbox, projections, webhook_log};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    ListMessages,
    GetMessage,
    GetOutboxItem,
    ListOutbox,
    ListWebhookDeliveries,
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
        Op::ListOutbox => list_outbox(ctx, request).await,
        Op::ListWebhookDeliveries => list_webhook_deliveries(ctx, request).await,
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

/// `GET {prefix}/outbox?state=&limit=&cursor=`.
async fn list_outbox<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let state = match request.query("state").as_deref() {
        None | Some("queued") => outbox::State::Queued,
        Some("sent") => outbox::State::Sent,
        Some("failed") => outbox::State::Failed,
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "`state` must be queued, sent or failed.".into(),
            ))
        }
    };
    let limit = page_limit(request)?;
    let cursor = request.query("cursor");
    if cursor
        .as_deref()
        .is_some_and(|id| !outbox::is_outbox_id(id))
    {
        return Err(ApiError::InvalidRequest(
            "`cursor` must be the nextCursor of the previous page.".into(),
        ));
    }
    let (items, next_cursor) = outbox::list(ctx, state, limit, cursor.as_deref()).await?;
    Ok(json_response(
        200,
        &json!({ "items": items, "nextCursor": next_cursor }),
    ))
}

/// `GET {prefix}/webhooks/deliveries?limit=`: newest first, at most 500.
async fn list_webhook_deliveries<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let limit = limit_within(request, 100, webhook_log::MAX_ENTRIES)?;
    let items = webhook_log::recent(ctx, limit).await?;
    Ok(json_response(200, &json!({ "items": items })))
}
