//! The log of Meta's recent deliveries, for the operator console: when,
//! how many updates of which kinds, what became of them, and what Meta was
//! answered. Never an id, a number or a payload.
//!
//! Keys (docs/kv-schema.md): `wh:log:<inverted millis>:<8 hex>`, newest
//! first, kept 24 hours. The entry joins the delivery's last batch (its
//! done marks); about one delivery in 64 also trims the log to its newest
//! `MAX_ENTRIES`, so it stays bounded at any rate of deliveries.

use super::queue::unique_hex;
use super::store;
use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, KvOp};
use crate::core::time::iso8601;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PREFIX: &str = "wh:log:";
/// The most entries the log shows, and keeps (give or take a trim's worth).
pub(crate) const MAX_ENTRIES: u32 = 500;
const TTL_SECONDS: u32 = 24 * 60 * 60;
/// The milliseconds that invert times into newest-first key order.
const MAX_MILLIS: u64 = 9_999_999_999_999;
/// A delivery trims the log when the first byte of its key's hash is
/// below this: one in 64.
const TRIM_BELOW: u8 = 4;

/// One delivery, as the log keeps it.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub at: u64,
    pub updates: usize,
    /// Each kind once, in the order the delivery had them.
    pub kinds: Vec<String>,
    /// Handed to the application now.
    pub accepted: usize,
    /// Handed over before (Meta's redeliveries).
    pub duplicates: usize,
    /// Neither: Meta is asked to deliver them again.
    pub refused: usize,
    /// The status Meta was answered, and the error code if not 200.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The writes that log a delivery: its entry, and, for one delivery in 64,
/// a note that it should trim the log afterwards (`trim`). Which ones is
/// decided by the hash of the delivery's body, so the same delivery
/// always makes the same number of store calls (Meta's retry too).
pub(crate) fn log_ops<H: Host>(
    ctx: &Context<'_, H>,
    entry: &Entry,
    body: &[u8],
) -> (Vec<KvOp>, bool) {
    let suffix = unique_hex(ctx.host, &entry.at.to_be_bytes());
    let key = format!(
        "{PREFIX}{:013}:{}",
        MAX_MILLIS.saturating_sub(entry.at),
        &suffix[..8]
    );
    let trims = Sha256::digest(body)[0] < TRIM_BELOW;
    let value = serde_json::to_vec(entry).unwrap_or_default();
    (vec![KvOp::set(key, value, Some(TTL_SECONDS))], trims)
}

/// Removes the entries past the newest `MAX_ENTRIES`: two listings and one
/// batch, on one delivery in 64.
pub(crate) async fn trim<H: Host>(ctx: &Context<'_, H>) -> Result<(), ApiError> {
    let newest = store::list(ctx, PREFIX, None, MAX_ENTRIES).await?;
    let Some(after) = newest.cursor else {
        return Ok(());
    };
    let older = store::list(ctx, PREFIX, Some(&after), MAX_ENTRIES * 2).await?;
    store::write(ctx, older.keys.into_iter().map(KvOp::Remove).collect()).await
}

/// The newest `limit` entries, newest first: one listing and one batch.
pub(crate) async fn recent<H: Host>(
    ctx: &Context<'_, H>,
    limit: u32,
) -> Result<Vec<Value>, ApiError> {
    let page = store::list(ctx, PREFIX, None, limit.min(MAX_ENTRIES)).await?;
    let found = store::batch(ctx, page.keys.into_iter().map(KvOp::Get).collect()).await?;
    Ok(found
        .into_iter()
        .filter_map(|bytes| serde_json::from_slice::<Entry>(&bytes?).ok())
        .map(|entry| {
            json!({
                "at": iso8601(entry.at),
                "updates": entry.updates,
                "kinds": entry.kinds,
                "accepted": entry.accepted,
                "duplicates": entry.duplicates,
                "refused": entry.refused,
                "answer": entry.status,
                "code": entry.code,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::host::Request;
    use crate::testing::{block_on, TestHost};
    use crate::{handle, sign};

    const BODY: &str = include_str!("../../../tests/conformance/fixtures/batched-messages.json");

    fn request(host: &TestHost, method: &str, path: &str, body: &str) -> serde_json::Value {
        let signature = sign("test-app-secret", body.as_bytes());
        let token = host.config("WATS_SERVICE_BEARER_TOKEN").unwrap();
        let request = Request {
            method: method.into(),
            path_with_query: path.into(),
            headers: vec![
                ("x-hub-signature-256".into(), signature),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body: body.as_bytes().to_vec(),
        };
        let response = block_on(handle(host, request));
        serde_json::from_slice(&response.body).unwrap_or_default()
    }

    /// A delivery, then Meta's redelivery of it: newest first, kinds and
    /// counts, and nothing of the messages themselves.
    #[test]
    fn deliveries_are_logged_newest_first_without_ids() {
        let host = TestHost::configured();
        request(&host, "POST", "/webhooks/whatsapp", BODY);
        host.advance(1_000);
        request(&host, "POST", "/webhooks/whatsapp", BODY);
        let page = request(&host, "GET", "/api/webhooks/deliveries", "");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{page}");
        let (again, first) = (&items[0], &items[1]);
        assert_eq!(first["updates"], 6);
        assert_eq!(first["kinds"], serde_json::json!(["message", "status"]));
        assert_eq!(
            (first["accepted"].as_u64(), first["duplicates"].as_u64()),
            (Some(6), Some(0))
        );
        assert_eq!(
            (again["accepted"].as_u64(), again["duplicates"].as_u64()),
            (Some(0), Some(6))
        );
        assert_eq!(
            (again["answer"].as_u64(), &again["code"]),
            (Some(200), &serde_json::Value::Null)
        );
        let text = page.to_string();
        for private in ["wamid.", "16505551234", "CANARY-TEXT", "106540352242922"] {
            assert!(!text.contains(private), "{private}");
        }
    }

    /// The log keeps its newest 500 entries (and a trim's worth): one
    /// delivery in 64 trims what is past them.
    #[test]
    fn the_log_stays_bounded() {
        let host = TestHost::configured();
        let ctx = Context::new(&host, |_| None);
        let mut trims = 0;
        for _ in 0..1_500 {
            host.advance(7);
            let entry = Entry {
                at: host.now.get(),
                ..Entry::default()
            };
            let (ops, trim_now) = log_ops(&ctx, &entry, &entry.at.to_be_bytes());
            block_on(store::write(&ctx, ops)).unwrap();
            if trim_now {
                trims += 1;
                block_on(trim(&ctx)).unwrap();
            }
        }
        let kept = host
            .kv
            .borrow()
            .keys()
            .filter(|k| k.starts_with(PREFIX))
            .count();
        assert!(trims >= 5, "{trims} trims");
        assert!(kept <= 500 + 300, "{kept} kept");
        let newest = block_on(recent(&ctx, 500)).unwrap();
        assert_eq!(newest.len(), 500);
        assert!(newest[0]["at"].as_str() > newest[499]["at"].as_str());
    }
}
