//! How the service's modules call kv: each call is counted in
//! `persistence_operations_total`, and its failure becomes the one API error
//! that says what happened (`persistence_not_configured` when the host has
//! no store at all, `store_unavailable` otherwise).

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvError};

pub(crate) fn counted<T>(
    ctx: &Context<'_, impl Host>,
    result: Result<T, KvError>,
) -> Result<T, ApiError> {
    ctx.recorder.persistence(match &result {
        Ok(_) => "success",
        Err(KvError::NotConfigured) => "not_configured",
        Err(_) => "failure",
    });
    result.map_err(|error| match error {
        KvError::NotConfigured => ApiError::PersistenceNotConfigured,
        KvError::Unavailable(_) | KvError::TooLarge | KvError::Other(_) => {
            ApiError::StoreUnavailable
        }
    })
}
