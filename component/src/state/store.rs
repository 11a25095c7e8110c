//! How the service speaks to kv: in batches, one per phase of a request
//! (each call may be a round trip to the store). Each call is counted in
//! `persistence_operations_total`, and its failure becomes the one API error
//! that says what happened (`persistence_not_configured` when the host has
//! no store at all, `store_unavailable` otherwise).

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvError, KvOp, KvPage};

fn counted<T>(ctx: &Context<'_, impl Host>, result: Result<T, KvError>) -> Result<T, ApiError> {
    // Without a store the family is absent, as the reference has it.
    match &result {
        Ok(_) => ctx.recorder.persistence("success"),
        Err(KvError::NotConfigured) => {}
        Err(_) => ctx.recorder.persistence("failure"),
    }
    result.map_err(|error| match error {
        KvError::NotConfigured => ApiError::PersistenceNotConfigured,
        KvError::Unavailable(_) | KvError::TooLarge | KvError::Other(_) => {
            ApiError::StoreUnavailable
        }
    })
}

/// Runs `ops` as one batch: one entry per op (`Host::kv_batch`).
pub(crate) async fn batch<H: Host>(
    ctx: &Context<'_, H>,
    ops: Vec<KvOp>,
) -> Result<Vec<Option<Vec<u8>>>, ApiError> {
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    let count = ops.len();
    let found = counted(ctx, ctx.host.kv_batch(ops).await)?;
    // A host that answers short would shift every answer after the gap.
    if found.len() != count {
        return Err(ApiError::StoreUnavailable);
    }
    Ok(found)
}

/// A batch of writes, whose answers say nothing.
pub(crate) async fn write<H: Host>(ctx: &Context<'_, H>, ops: Vec<KvOp>) -> Result<(), ApiError> {
    batch(ctx, ops).await.map(drop)
}

pub(crate) async fn get<H: Host>(
    ctx: &Context<'_, H>,
    key: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut found = batch(ctx, vec![KvOp::Get(key.into())]).await?;
    Ok(found.pop().flatten())
}

/// Stores the value unless the key holds one, and says whether it did.
pub(crate) async fn set_if_absent<H: Host>(
    ctx: &Context<'_, H>,
    key: &str,
    value: &[u8],
    ttl_seconds: Option<u32>,
) -> Result<bool, ApiError> {
    let mut found = batch(ctx, vec![KvOp::set_if_absent(key, value, ttl_seconds)]).await?;
    Ok(found.pop().flatten().is_none())
}

pub(crate) async fn list<H: Host>(
    ctx: &Context<'_, H>,
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<KvPage, ApiError> {
    counted(ctx, ctx.host.kv_list(prefix, cursor, limit).await)
}
