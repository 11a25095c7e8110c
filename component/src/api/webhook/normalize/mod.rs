//! Turns a webhook delivery into updates: every entry, every change, every
//! message, status, call and echo in it.
//!
//! Normalizing is one pass over the body that keeps each item's raw JSON
//! (borrowed, not copied) plus a small parse of each item's id, status and
//! type: enough to classify it and to key its dedupe. The full typed view
//! and the update's JSON are built only when an update is dispatched, so a
//! redelivered duplicate costs no more than that. Each update's JSON keeps
//! the raw item (or change) it came from, so fields Meta adds later are not
//! lost.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

mod update_json;

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
        // Meta's Business Agent: messages that reached the number while the
        // agent held the conversation, and control passing between them.
        "standby" => "standby",
        "messaging_handovers" => "messaging_handover",
        _ => "unknown",
    }
}

/// Message types Meta documents; anything else is `unknown` in log details.
pub(crate) fn message_type_label(kind: &str) -> &'static str {
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
pub(crate) fn status_label(status: &str) -> &'static str {
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
#[derive(Clone, Debug, PartialEq)]
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

/// A parsed delivery: its updates, and the changes they came from.
pub struct Delivery<'a> {
    changes: Vec<ChangeSource<'a>>,
    pub updates: Vec<NormalizedUpdate<'a>>,
}

struct ChangeSource<'a> {
    waba_id: Option<JsonStr<'a>>,
    field: JsonStr<'a>,
    metadata: Option<&'a RawValue>,
    contacts: Option<&'a RawValue>,
}

/// One update, classified and keyed; its JSON is built on demand.
pub struct NormalizedUpdate<'a> {
    pub kind: &'static str,
    change: usize,
    raw: Raw<'a>,
    id: Option<JsonStr<'a>>,
    from: Option<JsonStr<'a>>,
    /// The other party's business-scoped user id: a message's sender, a
    /// status's recipient.
    user_id: Option<JsonStr<'a>>,
    status: Option<JsonStr<'a>>,
    /// Detail safe to log: a clamped message type or status, never content.
    pub log_detail: &'static str,
    /// A status's pricing as metric labels (category, type), clamped.
    pub pricing: Option<(&'static str, &'static str)>,
    /// Identifies the update across redeliveries and re-batching.
    pub dedupe_key: String,
}

enum Raw<'a> {
    /// An item of a list (a message, a status, a call), as Meta sent it.
    Item(&'a RawValue),
    /// A whole change value, written back from its members.
    Change(Box<RawValue>),
}

impl NormalizedUpdate<'_> {
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The sender of a message (or call), when it has one.
    pub fn from(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// A message's sender, or a status's recipient, by business-scoped
    /// user id (as the item itself says).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    fn raw(&self) -> &RawValue {
        match &self.raw {
            Raw::Item(raw) => raw,
            Raw::Change(raw) => raw,
        }
    }
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
    value: ChangeValue<'a>,
}

/// The list members whose items become updates of their own.
const ITEM_LISTS: &[&str] = &[
    "messages",
    "statuses",
    "errors",
    "calls",
    "message_echoes",
    "user_preferences",
];

enum Member<'a> {
    /// An array under one of ITEM_LISTS, item by item.
    Items(Vec<&'a RawValue>),
    Raw(&'a RawValue),
}

/// A change's value: an object's members (lists split into items), or
/// anything else written back as JSON.
enum ChangeValue<'a> {
    Object(Vec<(JsonStr<'a>, Member<'a>)>),
    Other(Box<RawValue>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ChangeValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = ChangeValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a change value")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<JsonStr<'de>>()? {
                    let member = if ITEM_LISTS.contains(&&*key) {
                        Member::Items(map.next_value::<Items<'de>>()?.0)
                    } else {
                        Member::Raw(map.next_value()?)
                    };
                    members.push((key, member));
                }
                Ok(ChangeValue::Object(members))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Self::Value, S::Error> {
                let mut items: Vec<&RawValue> = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ChangeValue::Other(array_json(&items)))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&value)))
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&value)))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&value)))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&value)))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&value)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(ChangeValue::Other(to_raw(&())))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The items of a list member; a member that is not an array (Meta never
/// sends one) counts as an empty list rather than failing the delivery.
struct Items<'a>(Vec<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> serde::de::Visitor<'de> for ItemsVisitor {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Self::Value, S::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Items(items))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Items(Vec::new()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Items(Vec::new()))
            }
        }
        deserializer.deserialize_any(ItemsVisitor)
    }
}

#[allow(
    clippy::expect_used,
    reason = "`null` is JSON, and these values (strings, raw JSON) always serialize"
)]
fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

fn array_json(items: &[&RawValue]) -> Box<RawValue> {
    to_raw(items)
}

/// Writes a change value's members back as one JSON object.
fn object_json(members: &[(JsonStr, Member)]) -> Box<RawValue> {
    let mut out = String::from("{");
    for (index, (key, member)) in members.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(&**key).unwrap_or_default());
        out.push(':');
        match member {
            Member::Raw(raw) => out.push_str(raw.get()),
            Member::Items(items) => out.push_str(array_json(items).get()),
        }
    }
    out.push('}');
    RawValue::from_string(out).unwrap_or_else(|_| to_raw(&()))
}

/// What classification reads of each item.
#[derive(Deserialize, Default)]
struct ItemHead<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    from: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    from_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    status: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    event: Option<JsonStr<'a>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    /// Read only when present, and never at the cost of the fields above:
    /// any JSON value is accepted here.
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pricing: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SystemHead<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct PricingHead<'a> {
    #[serde(default, borrow)]
    category: Option<JsonStr<'a>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
}

/// The pricing categories and types Meta documents for per-message
/// pricing, as metric labels; anything else is `other`.
fn pricing_labels(raw: &RawValue) -> Option<(&'static str, &'static str)> {
    const CATEGORIES: &[&str] = &[
        "marketing",
        "marketing_lite",
        "utility",
        "authentication",
        "authentication_international",
        "service",
        "referral_conversion",
    ];
    const TYPES: &[&str] = &["regular", "free_customer_service", "free_entry_point"];
    let pricing: PricingHead = serde_json::from_str(raw.get()).ok()?;
    let clamp = |value: Option<JsonStr>, known: &[&'static str]| {
        let value = value?;
        Some(
            known
                .iter()
                .find(|k| **k == &*value)
                .copied()
                .unwrap_or("other"),
        )
    };
    let category = clamp(pricing.category, CATEGORIES);
    let kind = clamp(pricing.kind, TYPES);
    (category.is_some() || kind.is_some())
        .then(|| (category.unwrap_or("other"), kind.unwrap_or("other")))
}

/// Whether a message is Meta's notice that its sender's business-scoped
/// user id changed (`system.type` = `user_changed_user_id`).
fn is_user_id_change(head: &ItemHead) -> bool {
    head.kind.as_deref() == Some("system")
        && head
            .system
            .and_then(|raw| serde_json::from_str::<SystemHead>(raw.get()).ok())
            .and_then(|system| system.kind)
            .is_some_and(|kind| &*kind == "user_changed_user_id")
}

pub fn normalize(body: &[u8]) -> Result<Delivery<'_>, InvalidDelivery> {
    // One UTF-8 check for the whole body; parsing from a str skips the
    // per-value checks that parsing from bytes would make.
    let text = std::str::from_utf8(body).map_err(|_| InvalidDelivery)?;
    let envelope: Envelope = serde_json::from_str(text).map_err(|_| InvalidDelivery)?;
    let mut delivery = Delivery {
        changes: Vec::new(),
        updates: Vec::new(),
    };
    for entry in envelope.entry {
        for change in entry.changes {
            let index = delivery.changes.len();
            let mut source = ChangeSource {
                waba_id: entry.id.clone(),
                field: change.field,
                metadata: None,
                contacts: None,
            };
            let before = delivery.updates.len();
            let members = match change.value {
                ChangeValue::Object(members) => members,
                ChangeValue::Other(raw) => {
                    delivery
                        .updates
                        .push(change_update(index, &source.field, raw));
                    delivery.changes.push(source);
                    continue;
                }
            };
            for (key, member) in &members {
                match (&**key, member) {
                    ("metadata", Member::Raw(raw)) => source.metadata = Some(raw),
                    ("contacts", Member::Raw(raw)) => source.contacts = Some(raw),
                    _ => {}
                }
            }
            for (list, kind) in lists_of(&source.field) {
                for (_, member) in members.iter().filter(|(key, _)| &**key == *list) {
                    if let Member::Items(items) = member {
                        for raw in items {
                            delivery
                                .updates
                                .push(item_update(kind, index, &source.field, raw));
                        }
                    }
                }
            }
            if delivery.updates.len() == before {
                // No items: the change itself is the update.
                delivery
                    .updates
                    .push(change_update(index, &source.field, object_json(&members)));
            }
            delivery.changes.push(source);
        }
    }
    Ok(delivery)
}

fn change_update<'a>(change: usize, field: &str, whole: Box<RawValue>) -> NormalizedUpdate<'a> {
    let kind = kind_of_field(field);
    let dedupe_key = content_key(kind, field, &whole);
    NormalizedUpdate {
        kind,
        change,
        raw: Raw::Change(whole),
        id: None,
        from: None,
        user_id: None,
        status: None,
        log_detail: "unknown",
        pricing: None,
        dedupe_key,
    }
}

/// Which lists of a change hold updates, in dispatch order, and their kind.
fn lists_of(field: &str) -> &'static [(&'static str, &'static str)] {
    match field {
        "messages" => &[
            ("messages", "message"),
            ("statuses", "status"),
            ("errors", "message_error"),
        ],
        "calls" => &[("calls", "call"), ("statuses", "call_status")],
        "smb_message_echoes" => &[("message_echoes", "message_echo")],
        "user_preferences" => &[("user_preferences", "user_preferences")],
        _ => &[],
    }
}

fn item_update<'a>(
    kind: &'static str,
    change: usize,
    field: &str,
    raw: &'a RawValue,
) -> NormalizedUpdate<'a> {
    let head: ItemHead = serde_json::from_str(raw.get()).unwrap_or_default();
    let kind = match kind {
        "message" if is_user_id_change(&head) => "user_id_change",
        _ => kind,
    };
    // A call's `event` (connect, terminate) is what happened; its `status`
    // only qualifies a terminate. Statuses carry just `status`.
    let status = match kind {
        "call" => head.event.or(head.status),
        "status" | "call_status" => head.status.or(head.event),
        _ => None,
    };
    let log_detail = match kind {
        "message" | "message_echo" | "user_id_change" => head
            .kind
            .as_deref()
            .map(message_type_label)
            .unwrap_or("unknown"),
        "status" | "call" | "call_status" => {
            status.as_deref().map(status_label).unwrap_or("unknown")
        }
        _ => "unknown",
    };
    let dedupe_key = match &head.id {
        Some(id) => match &status {
            Some(status) => join_key(&[kind, id, status]),
            None => join_key(&[kind, id]),
        },
        None => content_key(kind, field, raw),
    };
    NormalizedUpdate {
        kind,
        change,
        raw: Raw::Item(raw),
        id: head.id,
        // A username-only user's message may carry `"from": ""`.
        from: head.from.filter(|from| !from.is_empty()),
        user_id: head
            .from_user_id
            .or(head.recipient_user_id)
            .filter(|id| !id.is_empty()),
        status,
        log_detail,
        pricing: match kind {
            "status" => head.pricing.and_then(pricing_labels),
            _ => None,
        },
        dedupe_key,
    }
}

/// `a:b:c` in one allocation (this runs for every update of every delivery).
fn join_key(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(':');
        }
        key.push_str(part);
    }
    key
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_kind_produced_is_a_known_kind() {
        let fields = [
            "messages",
            "calls",
            "smb_message_echoes",
            "user_preferences",
            "history",
            "flows",
            "message_template_status_update",
            "message_template_quality_update",
            "template_category_update",
            "account_update",
            "phone_number_quality_update",
            "phone_number_name_update",
            "business_capability_update",
            "account_alerts",
            "security",
            "group_lifecycle_update",
            "group_participants_update",
            "group_settings_update",
            "group_status_update",
            "something_new",
        ];
        for field in fields {
            let kinds = lists_of(field).iter().map(|(_, kind)| *kind);
            for kind in kinds.chain([kind_of_field(field)]) {
                assert!(crate::core::host::UPDATE_KINDS.contains(&kind), "{kind}");
            }
        }
    }

    /// Each update's JSON with its dedupe key and kind.
    fn updates(body: &str) -> Vec<(Value, String, &'static str)> {
        let delivery = normalize(body.as_bytes()).expect("valid delivery");
        delivery
            .updates
            .iter()
            .map(|u| {
                (
                    serde_json::from_str(&delivery.update_json(u)).unwrap(),
                    u.dedupe_key.clone(),
                    u.kind,
                )
            })
            .collect()
    }

    #[test]
    fn escaped_strings_and_unknown_fields_survive() {
        let all = updates(
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"2"},
             "messages":[{"from":"1555","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"a\/b \u00e9"},"brand_new":{"x":1}}]}},
            {"value":{"y":2,"statuses":"odd"},"field":"brand_new_field"}]}]}"#,
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0["text"], "a/b é");
        assert_eq!(all[0].0["phoneNumberId"], "2");
        assert_eq!(all[0].0["raw"]["brand_new"]["x"], 1);
        assert_eq!(all[1].2, "unknown");
        assert_eq!(all[1].0["field"], "brand_new_field");
        assert_eq!(all[1].0["raw"]["y"], 2);
    }

    #[test]
    fn change_values_of_any_json_type_are_kept() {
        for value in ["[1,{\"a\":2}]", "\"text\"", "12.5", "true", "null"] {
            let body = format!(r#"{{"entry":[{{"changes":[{{"field":"f","value":{value}}}]}}]}}"#);
            let all = updates(&body);
            let expected: Value = serde_json::from_str(value).unwrap();
            assert_eq!(all[0].0["raw"], expected, "{value}");
        }
    }

    #[test]
    fn reactions_without_emoji_are_removals() {
        let all = updates(
            r#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[
            {"from":"1","id":"wamid.R","timestamp":"1","type":"reaction","reaction":{"message_id":"wamid.P","emoji":""}}]}}]}]}"#,
        );
        assert_eq!(all[0].0["reactionRemoved"], true);
        assert_eq!(all[0].0["reactedMessageId"], "wamid.P");
    }

    #[test]
    fn dedupe_keys_separate_statuses_of_one_message() {
        let all = updates(
            r#"{"entry":[{"changes":[{"field":"messages","value":{"statuses":[
            {"id":"wamid.S","status":"delivered","timestamp":"2","recipient_id":"1"},
            {"id":"wamid.S","status":"read","timestamp":"3","recipient_id":"1"}]}}]}]}"#,
        );
        assert_eq!(all.len(), 2);
        assert_ne!(all[0].1, all[1].1);
        assert_eq!(all[1].0["status"], "read");
        assert_eq!(all[1].0["to"], "1");
    }

    #[test]
    fn non_object_bodies_are_invalid() {
        assert!(normalize(b"[1,2]").is_err());
        assert!(normalize(b"{\"entry\":3}").is_err());
        assert!(normalize(b"not json").is_err());
        assert!(updates("{}").is_empty());
    }
}
