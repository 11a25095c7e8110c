//! Turns a webhook delivery into typed updates: every entry, every change,
//! every message, status, call and echo in it. Strings are borrowed from the
//! body where they hold no escapes; each update keeps the raw JSON of the
//! item (or change) it came from, so fields Meta adds later are not lost.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Every update kind; metrics use these and nothing else.
pub const UPDATE_KINDS: &[&str] = &[
    "message",
    "status",
    "message_error",
    "call",
    "call_status",
    "message_echo",
    "history",
    "user_preferences",
    "flows",
    "template_status",
    "template_quality",
    "template_category",
    "account_update",
    "phone_number_quality",
    "phone_number_name",
    "business_capability",
    "account_alerts",
    "security",
    "group_lifecycle",
    "group_participants",
    "group_settings",
    "group_status",
    "unknown",
];

/// The kind of update a change field holds when it has no per-item list.
fn kind_of_field(field: &str) -> &'static str {
    match field {
        "history" => "history",
        "flows" => "flows",
        "message_template_status_update" => "template_status",
        "message_template_quality_update" => "template_quality",
        "template_category_update" => "template_category",
        "account_update" => "account_update",
        "phone_number_quality_update" => "phone_number_quality",
        "phone_number_name_update" => "phone_number_name",
        "business_capability_update" => "business_capability",
        "account_alerts" => "account_alerts",
        "security" => "security",
        "group_lifecycle_update" => "group_lifecycle",
        "group_participants_update" => "group_participants",
        "group_settings_update" => "group_settings",
        "group_status_update" => "group_status",
        _ => "unknown",
    }
}

/// Message types Meta documents; anything else is `unknown` in log details.
pub fn message_type_label(kind: &str) -> &'static str {
    const TYPES: &[&str] = &[
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "interactive",
        "button",
        "order",
        "system",
        "request_welcome",
        "edit",
        "revoke",
        "unsupported",
    ];
    TYPES
        .iter()
        .find(|known| **known == kind)
        .copied()
        .unwrap_or("unknown")
}

/// Delivery statuses and call events Meta documents, for log details.
pub fn status_label(status: &str) -> &'static str {
    const STATUSES: &[&str] = &[
        "sent",
        "delivered",
        "read",
        "failed",
        "deleted",
        "warning",
        "played",
        "connect",
        "terminate",
        "ringing",
        "accepted",
        "rejected",
    ];
    let lower = status.to_ascii_lowercase();
    STATUSES
        .iter()
        .find(|known| **known == lower)
        .copied()
        .unwrap_or("unknown")
}

#[derive(Debug)]
pub struct InvalidDelivery;

/// A JSON string borrowed from the body unless it holds escapes. (serde
/// does not borrow through `Option<Cow<str>>`: it would allocate every one.)
#[derive(Debug, PartialEq)]
struct JsonStr<'a>(Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> serde::de::Visitor<'de> for StrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// One normalized update and the key that identifies it across redeliveries.
pub struct NormalizedUpdate {
    pub kind: &'static str,
    pub id: Option<String>,
    pub status: Option<String>,
    /// Detail safe to log: a clamped message type or status, never content.
    pub log_detail: &'static str,
    pub dedupe_key: String,
    pub json: String,
    /// For the echo-reply demo: the sender and text of an inbound text.
    pub inbound_text: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    field: JsonStr<'a>,
    #[serde(borrow)]
    value: &'a RawValue,
}

#[derive(Deserialize, Default)]
struct ItemLists<'a> {
    #[serde(default, borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(default, borrow)]
    contacts: Vec<Contact<'a>>,
    #[serde(default, borrow)]
    messages: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    statuses: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    errors: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    calls: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    message_echoes: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    user_preferences: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(default, borrow)]
    display_phone_number: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    phone_number_id: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct Contact<'a> {
    #[serde(default, borrow)]
    wa_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    profile: Option<Profile<'a>>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(default, borrow)]
    name: Option<JsonStr<'a>>,
}

/// The fields of a message, status, call or echo that normalization reads.
#[derive(Deserialize, Default)]
struct Item<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    from: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    to: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    status: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    event: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    context: Option<Context<'a>>,
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    reaction: Option<Reaction<'a>>,
    #[serde(default, borrow)]
    interactive: Option<Interactive<'a>>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    code: Option<i64>,
}

#[derive(Deserialize)]
struct Context<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct Text<'a> {
    #[serde(default, borrow)]
    body: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct Reaction<'a> {
    #[serde(default, borrow)]
    message_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    emoji: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct Interactive<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    button_reply: Option<Reply<'a>>,
    #[serde(default, borrow)]
    list_reply: Option<Reply<'a>>,
    #[serde(default, borrow)]
    nfm_reply: Option<FlowReply<'a>>,
    #[serde(default, borrow)]
    call_permission_reply: Option<PermissionReply<'a>>,
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    title: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct FlowReply<'a> {
    #[serde(default, borrow)]
    response_json: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct PermissionReply<'a> {
    #[serde(default, borrow)]
    response: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: Option<i64>,
}

/// The JSON handed to the application for one update.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateJson<'a> {
    kind: &'a str,
    field: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    waba_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reacted_message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction_removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interactive_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_response: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_codes: Vec<i64>,
    raw: &'a RawValue,
}

/// Where an update came from: the entry and change around it.
struct Origin<'a> {
    waba_id: Option<&'a str>,
    field: &'a str,
    phone_number_id: Option<&'a str>,
    display_phone_number: Option<&'a str>,
}

pub fn normalize(body: &[u8]) -> Result<Vec<NormalizedUpdate>, InvalidDelivery> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|_| InvalidDelivery)?;
    let mut updates = Vec::new();
    for entry in &envelope.entry {
        for change in &entry.changes {
            normalize_change(entry.id.as_deref(), change, &mut updates);
        }
    }
    Ok(updates)
}

fn normalize_change<'a>(
    waba_id: Option<&'a str>,
    change: &'a Change<'a>,
    out: &mut Vec<NormalizedUpdate>,
) {
    let field: &str = &change.field;
    let lists: ItemLists = match field {
        "messages" | "calls" | "smb_message_echoes" | "user_preferences" => {
            serde_json::from_str(change.value.get()).unwrap_or_default()
        }
        _ => ItemLists::default(),
    };
    let origin = Origin {
        waba_id,
        field,
        phone_number_id: lists
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.as_deref()),
        display_phone_number: lists
            .metadata
            .as_ref()
            .and_then(|m| m.display_phone_number.as_deref()),
    };
    let before = out.len();
    match field {
        "messages" => {
            for raw in &lists.messages {
                out.push(message_update("message", &origin, &lists.contacts, raw));
            }
            for raw in &lists.statuses {
                out.push(status_update("status", &origin, raw));
            }
            for raw in &lists.errors {
                out.push(error_update(&origin, raw));
            }
        }
        "calls" => {
            for raw in &lists.calls {
                out.push(status_update("call", &origin, raw));
            }
            for raw in &lists.statuses {
                out.push(status_update("call_status", &origin, raw));
            }
        }
        "smb_message_echoes" => {
            for raw in &lists.message_echoes {
                out.push(message_update("message_echo", &origin, &[], raw));
            }
        }
        "user_preferences" => {
            for raw in &lists.user_preferences {
                out.push(whole_update("user_preferences", &origin, raw));
            }
        }
        _ => {}
    }
    if out.len() == before {
        // A field without items we know (or an empty list): keep the change.
        let kind = if field == "user_preferences" {
            "user_preferences"
        } else {
            kind_of_field(field)
        };
        out.push(whole_update(kind, &origin, change.value));
    }
}

fn base<'a>(kind: &'a str, origin: &Origin<'a>, raw: &'a RawValue) -> UpdateJson<'a> {
    UpdateJson {
        kind,
        field: origin.field,
        waba_id: origin.waba_id,
        phone_number_id: origin.phone_number_id,
        display_phone_number: origin.display_phone_number,
        ..UpdateJson::empty(raw)
    }
}

impl<'a> UpdateJson<'a> {
    fn empty(raw: &'a RawValue) -> Self {
        UpdateJson {
            kind: "",
            field: "",
            waba_id: None,
            phone_number_id: None,
            display_phone_number: None,
            id: None,
            timestamp: None,
            from: None,
            to: None,
            contact_name: None,
            message_type: None,
            text: None,
            reply_to: None,
            reacted_message_id: None,
            emoji: None,
            reaction_removed: None,
            interactive_type: None,
            reply_id: None,
            reply_title: None,
            flow_response: None,
            status: None,
            error_codes: Vec::new(),
            raw,
        }
    }
}

fn message_update(
    kind: &'static str,
    origin: &Origin,
    contacts: &[Contact],
    raw: &RawValue,
) -> NormalizedUpdate {
    let item: Item = serde_json::from_str(raw.get()).unwrap_or_default();
    let mut json = base(kind, origin, raw);
    json.id = item.id.as_deref();
    json.timestamp = item.timestamp.and_then(parse_timestamp);
    json.from = item.from.as_deref();
    json.to = item.to.as_deref();
    json.contact_name = contacts
        .iter()
        .find(|c| c.wa_id.is_some() && c.wa_id == item.from)
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        })
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.as_deref());
    json.message_type = item.kind.as_deref();
    json.text = item.text.as_ref().and_then(|t| t.body.as_deref());
    json.reply_to = item.context.as_ref().and_then(|c| c.id.as_deref());
    if let Some(reaction) = &item.reaction {
        json.reacted_message_id = reaction.message_id.as_deref();
        let emoji = reaction.emoji.as_deref().filter(|e| !e.is_empty());
        json.emoji = emoji;
        json.reaction_removed = Some(emoji.is_none());
    }
    if let Some(interactive) = &item.interactive {
        json.interactive_type = interactive.kind.as_deref();
        let reply = interactive
            .button_reply
            .as_ref()
            .or(interactive.list_reply.as_ref());
        json.reply_id = reply.and_then(|r| r.id.as_deref());
        json.reply_title = reply.and_then(|r| r.title.as_deref());
        json.flow_response = interactive
            .nfm_reply
            .as_ref()
            .and_then(|r| r.response_json.as_deref())
            .and_then(|text| serde_json::from_str::<Box<RawValue>>(text).ok());
        if let Some(permission) = &interactive.call_permission_reply {
            json.reply_id = permission.response.as_deref();
        }
    }
    json.error_codes = item.errors.iter().filter_map(|e| e.code).collect();
    let message_type = item
        .kind
        .as_deref()
        .map(message_type_label)
        .unwrap_or("unknown");
    let inbound_text = match (kind, message_type, json.from, json.text) {
        ("message", "text", Some(from), Some(text)) => Some((from.to_owned(), text.to_owned())),
        _ => None,
    };
    let dedupe_key = match json.id {
        Some(id) => format!("{kind}:{id}"),
        None => content_key(kind, origin.field, raw),
    };
    finish(json, dedupe_key, message_type, inbound_text)
}

fn status_update(kind: &'static str, origin: &Origin, raw: &RawValue) -> NormalizedUpdate {
    let item: Item = serde_json::from_str(raw.get()).unwrap_or_default();
    let mut json = base(kind, origin, raw);
    json.id = item.id.as_deref();
    json.timestamp = item.timestamp.and_then(parse_timestamp);
    json.from = item.from.as_deref();
    json.to = item.recipient_id.as_deref().or(item.to.as_deref());
    // A call's `event` (connect, terminate) is what happened; its `status`
    // only qualifies a terminate. Statuses carry just `status`.
    json.status = match kind {
        "call" => item.event.as_deref().or(item.status.as_deref()),
        _ => item.status.as_deref().or(item.event.as_deref()),
    };
    json.error_codes = item.errors.iter().filter_map(|e| e.code).collect();
    let detail = json.status.map(status_label).unwrap_or("unknown");
    let dedupe_key = match json.id {
        Some(id) => format!("{kind}:{id}:{}", json.status.unwrap_or("")),
        None => content_key(kind, origin.field, raw),
    };
    finish(json, dedupe_key, detail, None)
}

fn error_update(origin: &Origin, raw: &RawValue) -> NormalizedUpdate {
    let item: Item = serde_json::from_str(raw.get()).unwrap_or_default();
    let mut json = base("message_error", origin, raw);
    json.error_codes = item.code.into_iter().collect();
    let dedupe_key = content_key("message_error", origin.field, raw);
    finish(json, dedupe_key, "unknown", None)
}

fn whole_update(kind: &'static str, origin: &Origin, raw: &RawValue) -> NormalizedUpdate {
    let json = base(kind, origin, raw);
    let dedupe_key = content_key(kind, origin.field, raw);
    finish(json, dedupe_key, "unknown", None)
}

fn finish(
    json: UpdateJson,
    dedupe_key: String,
    log_detail: &'static str,
    inbound_text: Option<(String, String)>,
) -> NormalizedUpdate {
    let kind = UPDATE_KINDS
        .iter()
        .find(|k| **k == json.kind)
        .copied()
        .unwrap_or("unknown");
    NormalizedUpdate {
        kind,
        id: json.id.map(str::to_owned),
        status: json.status.map(str::to_owned),
        log_detail,
        dedupe_key,
        json: serde_json::to_string(&json).unwrap_or_default(),
        inbound_text,
    }
}

/// Identifies an update without an id by its content: a redelivery carries
/// the same change, so it hashes the same.
fn content_key(kind: &str, field: &str, raw: &RawValue) -> String {
    let mut hasher = Sha256::new();
    hasher.update(field.as_bytes());
    hasher.update([0]);
    hasher.update(raw.get().as_bytes());
    format!("{kind}:#{}", hex::encode(&hasher.finalize()[..16]))
}

/// Timestamps come as strings in messages and statuses, numbers elsewhere.
fn parse_timestamp(raw: &RawValue) -> Option<u64> {
    raw.get().trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn one(body: &str) -> Vec<NormalizedUpdate> {
        normalize(body.as_bytes()).expect("valid delivery")
    }

    #[test]
    fn timestamps_parse_from_strings_and_numbers() {
        let raw: Box<RawValue> = serde_json::from_str("\"1700000000\"").unwrap();
        assert_eq!(parse_timestamp(&raw), Some(1_700_000_000));
        let raw: Box<RawValue> = serde_json::from_str("1700000001").unwrap();
        assert_eq!(parse_timestamp(&raw), Some(1_700_000_001));
    }

    #[test]
    fn escaped_strings_and_unknown_fields_survive() {
        let updates = one(
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"2"},
             "messages":[{"from":"1555","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"a\/b \u00e9"},"brand_new":{"x":1}}]}},
            {"field":"brand_new_field","value":{"y":2}}]}]}"#,
        );
        assert_eq!(updates.len(), 2);
        let message: Value = serde_json::from_str(&updates[0].json).unwrap();
        assert_eq!(message["text"], "a/b é");
        assert_eq!(message["raw"]["brand_new"]["x"], 1);
        assert_eq!(updates[1].kind, "unknown");
        let unknown: Value = serde_json::from_str(&updates[1].json).unwrap();
        assert_eq!(unknown["field"], "brand_new_field");
    }

    #[test]
    fn reactions_without_emoji_are_removals() {
        let updates = one(
            r#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[
            {"from":"1","id":"wamid.R","timestamp":"1","type":"reaction","reaction":{"message_id":"wamid.P","emoji":""}}]}}]}]}"#,
        );
        let json: Value = serde_json::from_str(&updates[0].json).unwrap();
        assert_eq!(json["reactionRemoved"], true);
        assert_eq!(json["reactedMessageId"], "wamid.P");
    }

    #[test]
    fn dedupe_keys_separate_statuses_of_one_message() {
        let updates = one(
            r#"{"entry":[{"changes":[{"field":"messages","value":{"statuses":[
            {"id":"wamid.S","status":"delivered","timestamp":"2","recipient_id":"1"},
            {"id":"wamid.S","status":"read","timestamp":"3","recipient_id":"1"}]}}]}]}"#,
        );
        assert_eq!(updates.len(), 2);
        assert_ne!(updates[0].dedupe_key, updates[1].dedupe_key);
        assert_eq!(updates[1].status.as_deref(), Some("read"));
    }

    #[test]
    fn non_object_bodies_are_invalid() {
        assert!(normalize(b"[1,2]").is_err());
        assert!(normalize(b"{\"entry\":3}").is_err());
        assert!(normalize(b"not json").is_err());
        assert!(one("{}").is_empty());
    }
}
