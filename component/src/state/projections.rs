//! Message projections: a local record of each message the service sent or
//! received, advanced by status webhooks, read by `api::history`.
//!
//! kv has no compare-and-swap, so nothing here is read-modify-write: the
//! record is written once, each status is a key of its own, and a record's
//! status is the highest-ranked status present when it is read. Concurrent
//! or out-of-order status webhooks therefore never move it backwards.
//! Key schema: docs/kv-schema.md.

use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp};
use crate::core::time::iso8601;
use crate::state::store;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

const RECORD_PREFIX: &str = "msg:rec:";
const ROW_PREFIX: &str = "msg:row:";
const STATUS_PREFIX: &str = "msg:st:";
const ROW_ID_PREFIX: &str = "wats-msg-";
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
    /// The sender's business-scoped user id beside the number (records
    /// made before it read as null), and the recipient's of a send to one;
    /// else the recipient's comes from statuses.
    #[serde(default)]
    from_user_id: Option<String>,
    #[serde(default)]
    to_user_id: Option<String>,
    /// Which of the deployment's numbers sent or received it (shown as its
    /// place in `WATS_PHONE_NUMBER_ID`, never as the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<String>,
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
    /// Who received it, by business-scoped user id, as the status said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient_user_id: Option<String>,
}

/// A message to record.
pub(crate) struct NewMessage<'a> {
    pub wamid: &'a str,
    pub outbound: bool,
    pub from_phone: Option<&'a str>,
    pub to_phone: Option<&'a str>,
    pub from_user_id: Option<&'a str>,
    pub to_user_id: Option<&'a str>,
    pub phone_number_id: Option<&'a str>,
    pub kind: &'a str,
    /// Orders records made in the same millisecond (a batch's items).
    pub sequence: u16,
}

/// The writes that record a message: its record, written if absent, and
/// its row in the listing. The record is also its first status (`sent`
/// or `received`, at `createdAt`), so that recording a message writes no
/// status key: one key fewer, on a page of its own, per message.
pub(crate) struct NewRecord {
    /// Set-if-absent: a redelivered message keeps its first record.
    pub record: KvOp,
    /// The row the record names; see `row_op`.
    pub row_id: String,
}

pub(crate) fn new_record<H: Host>(ctx: &Context<'_, H>, message: &NewMessage<'_>) -> NewRecord {
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
        from_user_id: message.from_user_id.map(str::to_owned),
        to_user_id: message.to_user_id.map(str::to_owned),
        phone_number_id: message.phone_number_id.map(str::to_owned),
        kind: message.kind.to_owned(),
        graph_message_id: message.outbound.then(|| message.wamid.to_owned()),
        created_at: iso8601(now),
    };
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    NewRecord {
        record: KvOp::set_if_absent(format!("{RECORD_PREFIX}{hash}"), value, None),
        row_id,
    }
}

/// The row that lists a message under the row id its record names. Setting
/// it again is harmless (same key, same value), so a delivery that finds
/// the record written by an earlier try writes the row again, in case that
/// try failed between the two.
pub(crate) fn row_op(row_id: &str, wamid: &str) -> KvOp {
    KvOp::set(format!("{ROW_PREFIX}{row_id}"), wamid, None)
}

/// The row id a stored record names (none if it cannot be read).
pub(crate) fn row_id_of(stored: &[u8]) -> Option<String> {
    serde_json::from_slice::<StoredRecord>(stored)
        .ok()
        .map(|record| record.row_id)
}

/// Records a message this service has just sent, in one batch: its WAMID
/// is new, so there is no record to look for first. The row goes first:
/// on a host whose batches are not atomic, a failure between the two
/// leaves a row whose record names another (or none), which listing skips.
/// The other order could leave a record that no row lists.
pub(crate) async fn record<H: Host>(
    ctx: &Context<'_, H>,
    message: NewMessage<'_>,
) -> Result<(), ApiError> {
    let NewRecord { record, row_id } = new_record(ctx, &message);
    store::write(ctx, vec![row_op(&row_id, message.wamid), record]).await
}

/// The write that adds a status to a message. Unknown statuses are
/// ignored (none); so, when read, are statuses of messages this service
/// never recorded. First write wins: a redelivered status keeps its
/// first time.
pub(crate) fn status_op<H: Host>(
    ctx: &Context<'_, H>,
    wamid: &str,
    status: &str,
    error_code: Option<i64>,
    recipient_user_id: Option<&str>,
) -> Option<KvOp> {
    rank(status)?;
    let stored = StoredStatus {
        at: iso8601(ctx.host.now_millis()),
        error_code,
        recipient_user_id: recipient_user_id.map(str::to_owned),
    };
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    let key = format!("{STATUS_PREFIX}{}:{status}", message_hash(wamid));
    Some(KvOp::set_if_absent(key, value, None))
}

/// The microseconds that invert timestamps into newest-first key order
/// (about the year 4253; far beyond any clock this runs on).
const MAX_MICROS: u64 = 0xff_ffff_ffff_ffff;

/// A message's record with its status history, if it has one.
pub(crate) async fn load<H: Host>(
    ctx: &Context<'_, H>,
    wamid: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let mut records = load_many(ctx, &[wamid.to_owned()]).await?;
    Ok(records.pop().flatten())
}

/// The records of several messages with their statuses, in one batch.
async fn load_many<H: Host>(
    ctx: &Context<'_, H>,
    wamids: &[String],
) -> Result<Vec<Option<serde_json::Value>>, ApiError> {
    let keys_per_message = 1 + STATUS_RANKS.len();
    let mut ops = Vec::with_capacity(wamids.len() * keys_per_message);
    for wamid in wamids {
        let hash = message_hash(wamid);
        ops.push(KvOp::Get(format!("{RECORD_PREFIX}{hash}")));
        for status in STATUS_RANKS {
            ops.push(KvOp::Get(format!("{STATUS_PREFIX}{hash}:{status}")));
        }
    }
    let found = store::batch(ctx, ops).await?;
    let numbers = ctx
        .config()
        .map(|config| config.phone_number_ids.as_slice());
    let numbers = numbers.unwrap_or_default();
    Ok(found
        .chunks(keys_per_message)
        .map(|values| assemble(values, numbers))
        .collect())
}

/// A record as read: its stored value, then each status's in rank order;
/// `numbers` are the configured phone number ids.
fn assemble(values: &[Option<Vec<u8>>], numbers: &[String]) -> Option<serde_json::Value> {
    let (record, statuses) = values.split_first()?;
    let stored = serde_json::from_slice::<StoredRecord>(record.as_deref()?).ok()?;
    // The record stands for its direction's first status; a key of that
    // status (from earlier builds, or a late webhook) is ignored, as
    // set-if-absent kept the first of them before too.
    let first = if stored.direction == "outbound" {
        "sent"
    } else {
        "received"
    };
    let statuses: Vec<(&str, StoredStatus)> = STATUS_RANKS
        .iter()
        .zip(statuses)
        .filter_map(|(status, value)| {
            if *status == first {
                let at = stored.created_at.clone();
                return Some((
                    *status,
                    StoredStatus {
                        at,
                        error_code: None,
                        recipient_user_id: None,
                    },
                ));
            }
            let entry = serde_json::from_slice::<StoredStatus>(value.as_deref()?).ok()?;
            Some((*status, entry))
        })
        .collect();
    let current = statuses.last();
    let mut record = serde_json::to_value(&stored).unwrap_or_default();
    if let Some(fields) = record.as_object_mut() {
        fields.remove("phoneNumberId");
    }
    // Records made before numbers were recorded were the default's.
    record["numberIndex"] = json!(match &stored.phone_number_id {
        Some(id) => numbers.iter().position(|number| number == id),
        None => (!numbers.is_empty()).then_some(0),
    });
    record["status"] = json!(current.map(|(status, _)| *status));
    record["updatedAt"] = json!(current
        .map(|(_, entry)| entry.at.clone())
        .unwrap_or(stored.created_at.clone()));
    if let Some((_, entry)) = statuses.iter().find(|(status, _)| *status == "failed") {
        record["errorCode"] = json!(entry.error_code);
    }
    // A send's recipient by user id, as its latest status names it (or
    // the send itself, when it went to one).
    record["toUserId"] = json!(statuses
        .iter()
        .rev()
        .find_map(|(_, entry)| entry.recipient_user_id.as_deref())
        .or(stored.to_user_id.as_deref()));
    record["statuses"] = statuses
        .iter()
        .map(|(status, entry)| json!({ "status": status, "at": entry.at }))
        .collect();
    Some(record)
}

/// A page of records, newest first, and the cursor of the next page.
pub(crate) struct Page {
    pub(crate) items: Vec<serde_json::Value>,
    pub(crate) next_cursor: Option<String>,
}

/// Up to `limit` records after `cursor` (a row id this service issued).
pub(crate) async fn list<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page, ApiError> {
    let cursor = match cursor {
        None => None,
        Some(cursor) if is_row_id(cursor) => Some(format!("{ROW_PREFIX}{cursor}")),
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
        let page = store::list(ctx, ROW_PREFIX, after.as_deref(), wanted).await?;
        items.extend(listed_records(ctx, &page.keys).await?);
        more = page.cursor.is_some();
        after = page.keys.last().cloned().or(after);
        if !more || items.len() as u32 == limit {
            break;
        }
    }
    let next_cursor = after
        .filter(|_| more)
        .and_then(|key| key.strip_prefix(ROW_PREFIX).map(str::to_owned));
    Ok(Page { items, next_cursor })
}

/// The records rows list, less those whose record names another row: two
/// batches, the rows' WAMIDs and then their records.
async fn listed_records<H: Host>(
    ctx: &Context<'_, H>,
    row_keys: &[String],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let ops = row_keys.iter().map(|key| KvOp::Get(key.clone())).collect();
    let wamids = store::batch(ctx, ops).await?;
    let listed: Vec<(&str, String)> = row_keys
        .iter()
        .zip(wamids)
        .filter_map(|(key, wamid)| {
            let row_id = key.strip_prefix(ROW_PREFIX).unwrap_or_default();
            Some((row_id, String::from_utf8_lossy(&wamid?).into_owned()))
        })
        .collect();
    let wamids: Vec<String> = listed.iter().map(|(_, wamid)| wamid.clone()).collect();
    let records = load_many(ctx, &wamids).await?;
    Ok(listed
        .iter()
        .zip(records)
        .filter_map(|((row_id, _), record)| record.filter(|record| record["rowId"] == *row_id))
        .collect())
}

fn is_row_id(text: &str) -> bool {
    text.strip_prefix(ROW_ID_PREFIX)
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_cursors_are_checked() {
        assert!(is_row_id("wats-msg-00000000000000000000abcd"));
        assert!(!is_row_id("wats-msg-zz"));
    }

    #[test]
    fn a_page_fills_itself_past_orphan_rows() {
        use crate::testing::{block_on, TestHost};
        let host = TestHost::configured();
        let ctx = Context::new(&host, |_| None);
        for sequence in 0..3 {
            let wamid = format!("wamid.IN{sequence}");
            let message = NewMessage {
                wamid: &wamid,
                outbound: false,
                from_phone: Some("15551230000"),
                to_phone: None,
                from_user_id: None,
                to_user_id: None,
                phone_number_id: None,
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
        let ids = |page: &Page| -> Vec<String> {
            page.items
                .iter()
                .map(|item| item["waMessageId"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = block_on(list(&ctx, 2, None)).unwrap();
        assert_eq!(ids(&first), ["wamid.IN2", "wamid.IN1"]);
        let cursor = first.next_cursor.expect("more follow");
        let second = block_on(list(&ctx, 2, Some(&cursor))).unwrap();
        assert_eq!(ids(&second), ["wamid.IN0"]);
        assert!(second.next_cursor.is_none());
    }

    #[test]
    fn statuses_rank_forward_only() {
        assert!(rank("read") > rank("delivered"));
        assert!(rank("failed") > rank("read"));
        assert_eq!(rank("deleted"), None);
    }
}
