//! The JSON an application receives for one update: the typed fields read
//! from the item and its change (sender, contact, identities, text,
//! reactions, interactive replies, statuses, error codes) beside the raw
//! item, built on demand from a classified update.

use super::{Delivery, JsonStr, NormalizedUpdate, Raw};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize, Default)]
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
    /// The business-scoped user id (BSUID), since April 2026.
    #[serde(default, borrow)]
    user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    parent_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    profile: Option<Profile<'a>>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(default, borrow)]
    name: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    username: Option<JsonStr<'a>>,
}

/// The fields of a message, status, call or echo that its update shows.
#[derive(Deserialize, Default)]
struct Item<'a> {
    #[serde(default, borrow)]
    from: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    from_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    from_parent_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    to: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    parent_recipient_user_id: Option<JsonStr<'a>>,
    /// A group message's status: the group is the recipient, and a
    /// delivered or read one names the participant.
    #[serde(default, borrow)]
    recipient_type: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_participant_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_participant_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    recipient_participant_parent_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
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
    /// Parsed only where used, and never at the cost of the fields above.
    #[serde(default, borrow)]
    pricing: Option<&'a RawValue>,
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    unsupported: Option<&'a RawValue>,
}

/// What v25 says of a message it cannot show (`type: unsupported`).
#[derive(Deserialize)]
struct Unsupported<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
}

/// A status's pricing (per-message pricing, since July 2025).
#[derive(Deserialize)]
struct Pricing<'a> {
    #[serde(default, borrow)]
    category: Option<JsonStr<'a>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
}

/// A `user_changed_user_id` system message: the sender's new ids.
#[derive(Deserialize)]
struct System<'a> {
    #[serde(default, borrow)]
    user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    parent_user_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    previous_user_id: Option<JsonStr<'a>>,
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
    /// The sender's business-scoped user id, and its parent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    /// A status's recipient by business-scoped user id, and its parent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_recipient_user_id: Option<&'a str>,
    /// A group message's status: `group`, and the participant it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_participant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_participant_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_participant_parent_user_id: Option<&'a str>,
    /// The kind of an `unsupported` message, as Meta names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    unsupported_type: Option<String>,
    /// A `user_id_change`: the sender's old and new business-scoped ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_parent_user_id: Option<&'a str>,
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
    flow_response: Option<Compact<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    /// A status's pricing category and type, as Meta sends them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing_category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_codes: Vec<i64>,
    raw: Compact<'a>,
}

/// Raw JSON written without the whitespace between its tokens: Meta may
/// pretty-print, and an update is one line (`--events-out` is JSON Lines,
/// an event body is compact JSON).
enum Compact<'a> {
    Borrowed(&'a RawValue),
    Owned(Box<RawValue>),
}

impl<'a> Compact<'a> {
    fn of(raw: &'a RawValue) -> Compact<'a> {
        match compact_json(raw.get()) {
            Some(text) => {
                RawValue::from_string(text).map_or(Compact::Borrowed(raw), Compact::Owned)
            }
            None => Compact::Borrowed(raw),
        }
    }

    fn parsed(text: &str) -> Option<Compact<'a>> {
        let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
        let compacted = compact_json(raw.get()).and_then(|text| RawValue::from_string(text).ok());
        Some(Compact::Owned(compacted.unwrap_or(raw)))
    }
}

impl Serialize for Compact<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Compact::Borrowed(raw) => raw.serialize(serializer),
            Compact::Owned(raw) => raw.serialize(serializer),
        }
    }
}

/// Valid JSON text without its insignificant whitespace; none if it has
/// none. Bytes inside strings are kept as they are (a multi-byte character
/// holds no quote, backslash or ASCII whitespace).
fn compact_json(text: &str) -> Option<String> {
    let mut compacted: Option<Vec<u8>> = None;
    let (mut in_string, mut escaped) = (false, false);
    for (at, byte) in text.bytes().enumerate() {
        let space = match byte {
            _ if escaped => {
                escaped = false;
                false
            }
            b'\\' if in_string => {
                escaped = true;
                false
            }
            b'"' => {
                in_string = !in_string;
                false
            }
            b' ' | b'\n' | b'\r' | b'\t' => !in_string,
            _ => false,
        };
        match (&mut compacted, space) {
            (Some(out), false) => out.push(byte),
            (None, true) => compacted = Some(text.as_bytes()[..at].to_vec()),
            _ => {}
        }
    }
    compacted.and_then(|bytes| String::from_utf8(bytes).ok())
}

impl Delivery<'_> {
    /// The update as the application receives it: typed fields and raw JSON.
    pub fn update_json(&self, update: &NormalizedUpdate) -> String {
        let source = &self.changes[update.change];
        let metadata: Metadata = parse_or_default(source.metadata);
        let contacts: Vec<Contact> = source
            .contacts
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();
        let item: Item = match &update.raw {
            Raw::Item(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
            Raw::Change(_) => Item::default(),
        };
        let mut json = UpdateJson {
            kind: update.kind,
            field: &source.field,
            waba_id: source.waba_id.as_deref(),
            phone_number_id: metadata.phone_number_id.as_deref(),
            display_phone_number: metadata.display_phone_number.as_deref(),
            id: update.id(),
            timestamp: item.timestamp.and_then(parse_timestamp),
            from: present(&item.from),
            to: present(&item.to),
            user_id: None,
            parent_user_id: None,
            username: None,
            recipient_user_id: None,
            parent_recipient_user_id: None,
            recipient_type: None,
            recipient_participant_id: None,
            recipient_participant_user_id: None,
            recipient_participant_parent_user_id: None,
            unsupported_type: None,
            previous_user_id: None,
            new_user_id: None,
            new_parent_user_id: None,
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
            status: update.status(),
            pricing_category: None,
            pricing_type: None,
            error_codes: item.errors.iter().filter_map(|e| e.code).collect(),
            raw: Compact::of(update.raw()),
        };
        let system: Option<System> = item
            .system
            .and_then(|raw| serde_json::from_str(raw.get()).ok());
        let unsupported: Option<Unsupported> = item
            .unsupported
            .and_then(|raw| serde_json::from_str(raw.get()).ok());
        json.unsupported_type = unsupported
            .and_then(|u| u.kind)
            .map(|kind| kind.to_string());
        match update.kind {
            "message" | "message_echo" => fill_message(&mut json, &item, &contacts),
            "user_id_change" => {
                fill_message(&mut json, &item, &contacts);
                let system = system.as_ref();
                json.previous_user_id = system
                    .and_then(|s| present(&s.previous_user_id))
                    .or(present(&item.from_user_id));
                json.new_user_id = system.and_then(|s| present(&s.user_id));
                json.new_parent_user_id = system.and_then(|s| present(&s.parent_user_id));
            }
            "status" | "call" | "call_status" => {
                json.to = present(&item.recipient_id).or(json.to);
                json.recipient_user_id = present(&item.recipient_user_id);
                json.parent_recipient_user_id = present(&item.parent_recipient_user_id);
                json.recipient_type = present(&item.recipient_type);
                json.recipient_participant_id = present(&item.recipient_participant_id);
                json.recipient_participant_user_id = present(&item.recipient_participant_user_id);
                json.recipient_participant_parent_user_id =
                    present(&item.recipient_participant_parent_user_id);
                let pricing: Option<Pricing> = item
                    .pricing
                    .and_then(|raw| serde_json::from_str(raw.get()).ok());
                if let Some(pricing) = pricing {
                    json.pricing_category = pricing.category.map(|c| c.to_string());
                    json.pricing_type = pricing.kind.map(|k| k.to_string());
                }
            }
            "message_error" => json.error_codes = item.code.into_iter().collect(),
            _ => {}
        }
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// The business number an update came to (its change's
    /// `metadata.phone_number_id`).
    pub fn phone_number_id(&self, update: &NormalizedUpdate) -> Option<String> {
        let metadata: Metadata = parse_or_default(self.changes[update.change].metadata);
        present(&metadata.phone_number_id).map(str::to_owned)
    }

    /// The sender and body of an inbound text message, for the echo demo.
    pub fn inbound_text(&self, update: &NormalizedUpdate) -> Option<(String, String)> {
        let Raw::Item(raw) = &update.raw else {
            return None;
        };
        if update.kind != "message" || update.log_detail != "text" {
            return None;
        }
        let item: Item = serde_json::from_str(raw.get()).ok()?;
        Some((
            present(&item.from)?.to_owned(),
            item.text?.body?.to_string(),
        ))
    }
}

impl std::fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

fn parse_or_default<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>) -> T {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default()
}

/// A text field, unless absent or empty (Meta sends `""` where a
/// username-only user has no phone number).
fn present<'a>(text: &'a Option<JsonStr<'a>>) -> Option<&'a str> {
    text.as_deref().filter(|text| !text.is_empty())
}

fn fill_message<'a>(json: &mut UpdateJson<'a>, item: &'a Item<'a>, contacts: &'a [Contact<'a>]) {
    let (from, from_user_id) = (present(&item.from), present(&item.from_user_id));
    // The sender's contact: by phone number, else by user id, else the only one.
    let contact = contacts
        .iter()
        .find(|c| from.is_some() && present(&c.wa_id) == from)
        .or_else(|| {
            contacts
                .iter()
                .find(|c| from_user_id.is_some() && present(&c.user_id) == from_user_id)
        })
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let profile = contact.and_then(|c| c.profile.as_ref());
    json.contact_name = profile.and_then(|p| present(&p.name));
    json.username = profile.and_then(|p| present(&p.username));
    json.user_id = from_user_id.or_else(|| contact.and_then(|c| present(&c.user_id)));
    json.parent_user_id = present(&item.from_parent_user_id)
        .or_else(|| contact.and_then(|c| present(&c.parent_user_id)));
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
            .and_then(Compact::parsed);
        if let Some(permission) = &interactive.call_permission_reply {
            json.reply_id = permission.response.as_deref();
        }
    }
}

/// Timestamps come as strings in messages and statuses, numbers elsewhere.
fn parse_timestamp(raw: &RawValue) -> Option<u64> {
    raw.get().trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_json_loses_the_whitespace_between_tokens_only() {
        let pretty =
            "{\n  \"text\": { \"body\": \"two  spaces\\\" \\n\\\\\" },\n\t\"n\": [1, 2]\r\n}";
        let compacted = compact_json(pretty).unwrap();
        assert_eq!(
            compacted,
            r#"{"text":{"body":"two  spaces\" \n\\"},"n":[1,2]}"#
        );
        let reparsed: serde_json::Value = serde_json::from_str(&compacted).unwrap();
        assert_eq!(
            reparsed,
            serde_json::from_str::<serde_json::Value>(pretty).unwrap()
        );
        assert_eq!(compact_json(&compacted), None, "compact already");
    }

    #[test]
    fn timestamps_parse_from_strings_and_numbers() {
        let raw: Box<RawValue> = serde_json::from_str("\"1700000000\"").unwrap();
        assert_eq!(parse_timestamp(&raw), Some(1_700_000_000));
        let raw: Box<RawValue> = serde_json::from_str("1700000001").unwrap();
        assert_eq!(parse_timestamp(&raw), Some(1_700_000_001));
    }
}
