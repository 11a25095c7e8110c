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
/// Listings one page may take to fill itself past orphan rows.
const LISTINGS_PER_PAGE: usize = 3;

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
    let mut items = Vec::with_capacity(limit as usize);
    let mut after = cursor;
    let mut more = false;
    // Rows whose record names another row (an interrupted write) are
    // skipped, and the page is filled from the rows after them, up to a
    // few listings: a page is short only where orphans crowd together.
    for _ in 0..LISTINGS_PER_PAGE {
        let wanted = limit - items.len() as u32;
        let page = kv(
            ctx,
            ctx.host.kv_list(ROW_PREFIX, after.as_deref(), wanted).await,
        )?;
        for key in &page.keys {
            if let Some(record) = listed_record(ctx, key).await? {
                items.push(record);
            }
        }
        more = page.cursor.is_some();
        after = page.keys.last().cloned().or(after);
        if !more || items.len() as u32 == limit {
            break;
        }
    }
    let next_cursor = after
        .filter(|_| more)
        .and_then(|key| key.strip_prefix(ROW_PREFIX).map(str::to_owned));
    Ok(json_response(
        200,
        &json!({ "items": items, "nextCursor": next_cursor }),
    ))
}

/// The record a row lists, unless the record names another row.
async fn listed_record<H: Host>(
    ctx: &Context<'_, H>,
    row_key: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(wamid) = kv(ctx, ctx.host.kv_get(row_key).await)? else {
        return Ok(None);
    };
    let row_id = row_key.strip_prefix(ROW_PREFIX).unwrap_or_default();
    let record = load(ctx, &String::from_utf8_lossy(&wamid)).await?;
    Ok(record.filter(|record| record["rowId"] == row_id))
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
    fn a_page_fills_itself_past_orphan_rows() {
        use crate::host::Request;
        use crate::testing::{block_on, TestHost};
        let host = TestHost::configured();
        let ctx = Context::new(&host);
        for sequence in 0..3 {
            let wamid = format!("wamid.IN{sequence}");
            let message = NewMessage {
                wamid: &wamid,
                outbound: false,
                from_phone: Some("15551230000"),
                to_phone: None,
                kind: "text",
                sequence,
            };
            block_on(record(&ctx, message)).unwrap();
        }
        // Newer than every record: rows whose records never landed.
        for n in 0..3 {
            let row = format!("{ROW_PREFIX}{ROW_ID_PREFIX}{n:024x}");
            host.kv
                .borrow_mut()
                .insert(row, (b"wamid.GONE".to_vec(), None));
        }
        let list = |query: &str| {
            let request = Request {
                method: "GET".into(),
                path_with_query: format!("/api/messages?{query}"),
                headers: Vec::new(),
                body: Vec::new(),
            };
            let response = block_on(list_route(&ctx, &request)).unwrap();
            serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()
        };
        let first = list("limit=2");
        let ids = |page: &serde_json::Value| -> Vec<String> {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["waMessageId"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&first), ["wamid.IN2", "wamid.IN1"]);
        let cursor = first["nextCursor"].as_str().expect("more follow");
        let second = list(&format!("limit=2&cursor={cursor}"));
        assert_eq!(ids(&second), ["wamid.IN0"]);
        assert!(second["nextCursor"].is_null());
    }

    #[test]
    fn statuses_rank_forward_only() {
        assert!(rank("read") > rank("delivered"));
        assert!(rank("failed") > rank("read"));
        assert_eq!(rank("deleted"), None);
    }
}
