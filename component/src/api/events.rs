//! The events operator routes: what became of the events for the
//! application's endpoints, a retry of one, each endpoint's state, and a
//! drain on demand.
//! Never a payload or an endpoint's URL (docs/events.md).

use crate::context::Context;
use crate::core::config::Events;
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, page_limit, Params};
use crate::state::{
    self,
    events::{self, State},
};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    ListDeliveries,
    RetryDelivery,
    Endpoints,
    /// The drain a host's timer runs, for a host without one (Spin) and
    /// its cron.
    Drain,
}

/// What `POST {prefix}/drain` sends at most, of each queue.
const DRAIN_LIMIT: u32 = 50;

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
    params: &Params,
) -> Result<Response, ApiError> {
    let config = &ctx.config()?.events;
    match op {
        Op::ListDeliveries => list_deliveries(ctx, config, request).await,
        Op::RetryDelivery => retry_delivery(ctx, config, params.get("eventId")).await,
        Op::Endpoints => Ok(json_response(
            200,
            &json!({ "endpoints": events::endpoints(ctx, config).await? }),
        )),
        Op::Drain => Ok(json_response(
            200,
            &state::drain(ctx, DRAIN_LIMIT).await?.to_json(),
        )),
    }
}

/// `GET {prefix}/events/deliveries?state=&limit=&cursor=`.
async fn list_deliveries<H: Host>(
    ctx: &Context<'_, H>,
    config: &Events,
    request: &Request,
) -> Result<Response, ApiError> {
    let state = match request.query("state").as_deref() {
        None | Some("pending") => State::Pending,
        Some("delivered") => State::Delivered,
        Some("failed") => State::Failed,
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "`state` must be pending, delivered or failed.".into(),
            ))
        }
    };
    let limit = page_limit(request)?;
    let cursor = request.query("cursor");
    if cursor.as_deref().is_some_and(|c| !events::is_cursor(c)) {
        return Err(ApiError::InvalidRequest(
            "`cursor` must be the nextCursor of the previous page.".into(),
        ));
    }
    let page = events::list(ctx, config, state, limit, cursor.as_deref()).await?;
    Ok(json_response(
        200,
        &json!({ "items": page.items, "nextCursor": page.next_cursor }),
    ))
}

/// `POST {prefix}/events/deliveries/{eventId}/retry`.
async fn retry_delivery<H: Host>(
    ctx: &Context<'_, H>,
    config: &Events,
    id: &str,
) -> Result<Response, ApiError> {
    if !events::is_event_id(id) {
        return Err(ApiError::InvalidRequest(
            "Path segment `eventId` must be an event id (evt_…).".into(),
        ));
    }
    match events::retry(ctx, config, id).await? {
        Some(view) => Ok(json_response(202, &view)),
        None => Err(ApiError::NotFound),
    }
}
