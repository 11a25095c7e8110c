//! State: everything the service keeps in the host's kv (the dedupe and
//! idempotency records, the message history, the outbox, the events for
//! the application's endpoints) and the send path that records what it
//! sends. Key schema: docs/kv-schema.md.

pub(crate) mod events;
pub(crate) mod idempotency;
pub(crate) mod outbox;
pub(crate) mod projections;
pub(crate) mod queue;
pub(crate) mod send;
pub(crate) mod store;
pub(crate) mod webhook_log;

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::Host;

/// Sends up to `limit` due outbox items and up to `limit` due events, each
/// once: what a host's timer, and `POST {prefix}/drain`, run.
pub(crate) async fn drain<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
) -> Result<outbox::DrainReport, ApiError> {
    let config = ctx.config()?;
    let mut report = outbox::drain(ctx, limit).await?;
    if !config.events.endpoints.is_empty() {
        events::drain(ctx, &config.events, limit, &mut report).await?;
    }
    Ok(report)
}
