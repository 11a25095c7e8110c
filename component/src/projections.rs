//! Message projections: a local record of each message the service sent or
//! received, advanced by status webhooks, read through
//! `GET {prefix}/messages` and `GET {prefix}/messages/{id}`.
//!
//! kv has no compare-and-swap, so nothing here is read-modify-write: the
//! record is written once, each status is a key of its own, and a record's
//! status is the highest-ranked status present when it is read. Concurrent
//! or out-of-order status webhooks therefore never move it backwards.
//! Key schema: docs/kv-schema.md.

use crate::error::ApiError;
use crate::host::{Host, Request, Response};
use crate::http::json_response;
use crate::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

const RECORD_PREFIX: &str = "msg:rec:";
const ROW_PREFIX: &str = "msg:row:";
const STATUS_PREFIX: &str = "msg:st:";
const ROW_ID_PREFIX: &str = "wats-msg-";
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;

/// Statuses in the order a message moves through them; `failed` ends it.
const STATUS_RANKS: &[&str] = &["received", "sent", "delivered", "read", "failed"];

fn rank(status: &str) -> Option<usize> {
    STATUS_RANKS.iter().position(|known| *known == status)
}

/// Hashed so that keys hold no WAMIDs and stay short.
fn message_hash(wamid: &str) -> String {
    hex::encode(&Sha256::digest(wamid.as_bytes())[..12])
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct StoredRecord {
    row_id: String,
    wa_message_id: String,
    direction: String,
    from_phone: Option<String>,
    to_phone: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    graph_message_id: Option<String>,
    created_at: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct StoredStatus {
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<i64>,
}

/// A message to record.
pub struct NewMessage<'a> {
    pub wamid: &'a str,
    pub outbound: bool,
    pub from_phone: Option<&'a str>,
    pub to_phone: Option<&'a str>,
    pub kind: &'a str,
    /// Orders records made in the same millisecond (a batch's items).
    pub sequence: u16,
}

/// Records a message with its first status (`sent` or `received`). A
/// message recorded before keeps its record (redeliveries do not duplicate).
pub async fn record<H: Host>(
    ctx: &Context<'_, H>,
    message: NewMessage<'_>,
) -> Result<(), ApiError> {
    let now = ctx.host.now_millis();
    let hash = message_hash(message.wamid);
    // Newest first in key order: inverted microseconds on one timeline (the
    // host's start plus its monotonic clock, so records keep their order even
    // within a millisecond), then the position in the delivery, then the
    // hash against ties.
    let micros = ctx.host.started_millis() * 1000 + ctx.host.monotonic_nanos() / 1000;
    let row_id = format!(
        "{ROW_ID_PREFIX}{:014x}{:04x}{}",
        MAX_MICROS.saturating_sub(micros),
        u16::MAX - message.sequence,
        &hash[..6]
    );
    let stored = StoredRecord {
        row_id: row_id.clone(),
        wa_message_id: message.wamid.to_owned(),
        direction: if message.outbound {
            "outbound"
        } else {
            "inbound"
        }
        .into(),
        from_phone: message.from_phone.map(str::to_owned),
        to_phone: message.to_phone.map(str::to_owned),
        kind: message.kind.to_owned(),
        graph_message_id: message.outbound.then(|| message.wamid.to_owned()),
        created_at: iso8601(now),
    };
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    // The row first, then the record naming it: a failure between the two
    // leaves a row whose record names another (or none), which listing
    // skips, and a retry writes both again. The other order could leave a
    // record that no row lists.
    let record_key = format!("{RECORD_PREFIX}{hash}");
    if kv(ctx, ctx.host.kv_get(&record_key).await)?.is_none() {
        let row_key = format!("{ROW_PREFIX}{row_id}");
        kv(
            ctx,
            ctx.host
                .kv_set(&row_key, message.wamid.as_bytes(), None)
                .await,
        )?;
        kv(
            ctx,
            ctx.host.kv_set_if_absent(&record_key, &value, None).await,
        )?;
    }
    let first = if message.outbound { "sent" } else { "received" };
    add_status(ctx, message.wamid, first, None).await
}

/// Adds a status to a recorded message. Unknown statuses are ignored, and
/// so are statuses of messages this service never recorded.
pub async fn add_status<H: Host>(
    ctx: &Context<'_, H>,
    wamid: &str,
    status: &str,
    error_code: Option<i64>,
) -> Result<(), ApiError> {
    if rank(status).is_none() {
        return Ok(());
    }
    let hash = message_hash(wamid);
    let stored = StoredStatus {
        at: iso8601(ctx.host.now_millis()),
        error_code,
    };
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    // First write wins: a redelivered status keeps its first time.
    kv(
        ctx,
        ctx.host
            .kv_set_if_absent(&format!("{STATUS_PREFIX}{hash}:{status}"), &value, None)
            .await,
    )?;
    Ok(())
}

use crate::store::counted as kv;

/// The microseconds that invert timestamps into newest-first key order
/// (about the year 4253; far beyond any clock this runs on).
const MAX_MICROS: u64 = 0xff_ffff_ffff_ffff;

async fn load<H: Host>(
    ctx: &Context<'_, H>,
    wamid: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let hash = message_hash(wamid);
    let Some(bytes) = kv(
        ctx,
        ctx.host.kv_get(&format!("{RECORD_PREFIX}{hash}")).await,
    )?
    else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<StoredRecord>(&bytes) else {
        return Ok(None);
    };
    let mut statuses = Vec::new();
    for status in STATUS_RANKS {
        let key = format!("{STATUS_PREFIX}{hash}:{status}");
        if let Some(bytes) = kv(ctx, ctx.host.kv_get(&key).await)? {
            if let Ok(entry) = serde_json::from_slice::<StoredStatus>(&bytes) {
                statuses.push((*status, entry));
            }
        }
    }
    let current = statuses.last();
    let mut record = serde_json::to_value(&stored).unwrap_or_default();
    record["status"] = json!(current.map(|(status, _)| *status));
    record["updatedAt"] = json!(current
        .map(|(_, entry)| entry.at.clone())
        .unwrap_or(stored.created_at.clone()));
    if let Some((_, entry)) = statuses.iter().find(|(status, _)| *status == "failed") {
        record["errorCode"] = json!(entry.error_code);
    }
    record["statuses"] = statuses
        .iter()
        .map(|(status, entry)| json!({ "status": status, "at": entry.at }))
        .collect();
    Ok(Some(record))
}

/// `GET {prefix}/messages/{messageId}`.
pub async fn get_route<H: Host>(
    ctx: &Context<'_, H>,
    message_id: &str,
) -> Result<Response, ApiError> {
    if !is_safe_wamid(message_id) {
        return Err(ApiError::InvalidRequest(
            "The message id must be a WhatsApp message id (wamid.…).".into(),
        ));
    }
    match load(ctx, message_id).await? {
        Some(record) => Ok(json_response(200, &record)),
        None => Err(ApiError::NotFound),
    }
}

/// `GET {prefix}/messages?limit=&cursor=`: newest first.
pub async fn list_route<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let limit = match request.query("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "`limit` must be an integer from 1 to {MAX_PAGE}."
                ))
            })?,
    };
    let cursor = match request.query("cursor") {
        None => None,
        Some(cursor) if is_row_id(&cursor) => Some(format!("{ROW_PREFIX}{cursor}")),
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "`cursor` is not a cursor this service issued.".into(),
            ))
        }
    };
    let page = kv(
        ctx,
        ctx.host.kv_list(ROW_PREFIX, cursor.as_deref(), limit).await,
    )?;
    let mut items = Vec::with_capacity(page.keys.len());
    for key in &page.keys {
        let Some(wamid) = kv(ctx, ctx.host.kv_get(key).await)? else {
            continue;
        };
        // A row whose record names another (an interrupted write) is
        // skipped: the record is listed under its own row.
        let row_id = key.strip_prefix(ROW_PREFIX).unwrap_or_default();
        let record = load(ctx, &String::from_utf8_lossy(&wamid)).await?;
        if let Some(record) = record.filter(|record| record["rowId"] == row_id) {
            items.push(record);
        }
    }
    let next_cursor = page
        .cursor
        .and_then(|_| page.keys.last())
        .and_then(|key| key.strip_prefix(ROW_PREFIX))
        .map(str::to_owned);
    Ok(json_response(
        200,
        &json!({ "items": items, "nextCursor": next_cursor }),
    ))
}

fn is_row_id(text: &str) -> bool {
    text.strip_prefix(ROW_ID_PREFIX)
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// WAMIDs are `wamid.` and base64; nothing else may reach a kv lookup.
pub fn is_safe_wamid(text: &str) -> bool {
    crate::graph::is_prefixed_id("wamid.", text)
}

/// `2026-06-21T00:00:00.000Z` from milliseconds since the epoch.
pub fn iso8601(millis: u64) -> String {
    let seconds = millis / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_782_000_000_123), "2026-06-21T00:00:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ids_and_cursors_are_checked() {
        assert!(is_safe_wamid(
            "wamid.HBgLMTU1NTEyMzAwMDAVAgASGBQzQTFBQTAwMDAwMDAwMDAwMDAwMQA="
        ));
        assert!(!is_safe_wamid("wamid."));
        assert!(!is_safe_wamid("wamid.a/../b"));
        assert!(!is_safe_wamid("other.123"));
        assert!(is_row_id("wats-msg-00000000000000000000abcd"));
        assert!(!is_row_id("wats-msg-zz"));
    }

    #[test]
    fn statuses_rank_forward_only() {
        assert!(rank("read") > rank("delivered"));
        assert!(rank("failed") > rank("read"));
        assert_eq!(rank("deleted"), None);
    }
}
