//! Turns a `POST {prefix}/messages` body into the Graph message payload.
//! Inputs are camelCase; Graph's snake_case appears only in the payloads
//! built here. Limits are Graph's documented ones, so a body Graph would
//! refuse is refused here with 400 naming the field, before any call.

mod contacts;
pub mod fields;
mod interactive;
mod media;
mod template;

use crate::core::error::ApiError;
use crate::core::ids::{is_bsuid, is_opaque_token, is_phone_number, is_safe_wamid};
use fields::{invalid, Fields, Limit};
use serde_json::{json, Map, Value};

/// Graph's limit for a text message body.
pub const MAX_TEXT_CHARS: usize = 4096;
const WAMID: Limit = Limit::line(200);

/// A message ready for Graph.
#[derive(Debug, PartialEq)]
pub struct Composed {
    /// The recipient: a phone number, or a group id for group bodies.
    pub to: String,
    /// Graph's message type (`text`, `image`, `interactive`…).
    pub kind: &'static str,
    pub payload: Value,
    /// The phone number id it is sent from, when not the default one
    /// (a send body's `from`).
    pub sender: Option<String>,
}

/// Every `type` a body may have; group bodies only with group routes on.
pub const BODY_TYPES: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "reaction",
    "removeReaction",
    "contacts",
    "interactiveButtons",
    "interactiveList",
    "interactiveCtaUrl",
    "interactiveProduct",
    "interactiveProducts",
    "interactiveCatalog",
    "interactiveLocationRequest",
    "callPermissionRequest",
    "template",
];
pub const GROUP_BODY_TYPES: &[&str] = &["groupText", "groupPin"];

/// Graph's message types: a queued item stores its type as text and gets
/// the static name back from here.
const GRAPH_KINDS: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "reaction",
    "contacts",
    "interactive",
    "template",
    "pin",
];

pub fn graph_kind(name: &str) -> &'static str {
    GRAPH_KINDS
        .iter()
        .find(|kind| **kind == name)
        .copied()
        .unwrap_or("unknown")
}

pub fn compose(body: &Map<String, Value>, groups_enabled: bool) -> Result<Composed, ApiError> {
    let fields = Fields::root(body);
    if fields.has("messaging_product") {
        return graph_native_text(&fields);
    }
    let kind = fields.required_text("type", Limit::line(64))?;
    match kind {
        "text" => text(&fields),
        "image" | "video" | "audio" | "document" | "sticker" => media::compose(&fields, kind),
        "location" => location(&fields),
        "reaction" | "removeReaction" => reaction(&fields, kind == "removeReaction"),
        "contacts" => contacts::compose(&fields),
        "template" => template::compose(&fields),
        "groupText" | "groupPin" if groups_enabled => group(&fields, kind == "groupPin"),
        "groupText" | "groupPin" => Err(ApiError::InvalidRequest(
            "Group message bodies need WATS_ENABLE_GROUP_ROUTES.".into(),
        )),
        _ => match interactive::compose(&fields, kind) {
            Some(composed) => composed,
            None => Err(invalid(
                "type",
                &format!("must be one of: {}", BODY_TYPES.join(", ")),
            )),
        },
    }
}

/// A recipient: a phone number in international format (or a WhatsApp id,
/// which has the same shape), or a business-scoped user id (or its
/// parent's), for a user who shows Meta a username instead of a number.
pub fn recipient<'a>(fields: &Fields<'a>) -> Result<&'a str, ApiError> {
    let to = fields.required_text("to", Limit::line(136))?;
    if !is_phone_number(to) && !is_bsuid(to) {
        return Err(invalid(
            "to",
            "must be a phone number in international format (digits, optional leading +) or a business-scoped user id (CC.…)",
        ));
    }
    Ok(to)
}

/// A WhatsApp message id (`wamid.…`).
pub fn message_id<'a>(fields: &Fields<'a>, name: &str) -> Result<Option<&'a str>, ApiError> {
    let Some(id) = fields.text(name, WAMID)? else {
        return Ok(None);
    };
    if !is_safe_wamid(id) {
        return Err(invalid(
            &fields.path(name),
            "must be a WhatsApp message id (wamid.…)",
        ));
    }
    Ok(Some(id))
}

fn required_message_id<'a>(fields: &Fields<'a>, name: &str) -> Result<&'a str, ApiError> {
    message_id(fields, name)?.ok_or_else(|| invalid(&fields.path(name), "is required"))
}

/// The Graph envelope around a message object of type `kind`. A phone
/// number goes in `to`; a business-scoped user id in `recipient`, the
/// field Meta's Messages API takes it in (`to` would win over it).
pub fn envelope(to: &str, kind: &'static str, object: Value, reply_to: Option<&str>) -> Composed {
    let field = if is_bsuid(to) { "recipient" } else { "to" };
    let mut payload = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        field: to,
        "type": kind,
    });
    payload[kind] = object;
    if let Some(parent) = reply_to {
        payload["context"] = json!({ "message_id": parent });
    }
    Composed {
        to: to.to_owned(),
        kind,
        payload,
        sender: None,
    }
}

/// Adds `key: value` to a JSON object when the value is present.
pub fn put(object: &mut Value, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        object[key] = value.into();
    }
}

/// Graph's own text body: `{messaging_product, to, type: "text", text: {body}}`.
fn graph_native_text(fields: &Fields) -> Result<Composed, ApiError> {
    if fields.required_text("messaging_product", Limit::line(16))? != "whatsapp" {
        return Err(invalid("messaging_product", "must be \"whatsapp\""));
    }
    if fields.required_text("type", Limit::line(16))? != "text" {
        return Err(invalid(
            "type",
            "must be \"text\" in a Graph-native body (other types use the composer bodies)",
        ));
    }
    fields.only(
        &[
            "messaging_product",
            "recipient_type",
            "to",
            "type",
            "text",
            "context",
        ],
        "a Graph-native text body",
    )?;
    if let Some(kind) = fields.text("recipient_type", Limit::line(16))? {
        if kind != "individual" {
            return Err(invalid("recipient_type", "must be \"individual\""));
        }
    }
    let to = recipient(fields)?;
    let text = fields.required_object("text")?;
    text.only(&["body", "preview_url"], "`text`")?;
    let body = text.required_text("body", Limit::lines(MAX_TEXT_CHARS))?;
    let preview_url = text.bool("preview_url")?.unwrap_or(false);
    let reply_to = match fields.object("context")? {
        Some(context) => {
            context.only(&["message_id"], "`context`")?;
            Some(required_message_id(&context, "message_id")?)
        }
        None => None,
    };
    let object = json!({ "body": body, "preview_url": preview_url });
    Ok(envelope(to, "text", object, reply_to))
}

/// `{type: "text", to, text, previewUrl?, replyToMessageId?}`.
fn text(fields: &Fields) -> Result<Composed, ApiError> {
    fields.only(
        &["type", "to", "text", "previewUrl", "replyToMessageId"],
        "type `text`",
    )?;
    let to = recipient(fields)?;
    let body = fields.required_text("text", Limit::lines(MAX_TEXT_CHARS))?;
    let preview_url = fields.bool("previewUrl")?.unwrap_or(false);
    let reply_to = message_id(fields, "replyToMessageId")?;
    let object = json!({ "body": body, "preview_url": preview_url });
    Ok(envelope(to, "text", object, reply_to))
}

fn location(fields: &Fields) -> Result<Composed, ApiError> {
    fields.only(
        &[
            "type",
            "to",
            "latitude",
            "longitude",
            "name",
            "address",
            "replyToMessageId",
        ],
        "type `location`",
    )?;
    let to = recipient(fields)?;
    let required = |name: &str, bound: i32| {
        fields
            .number(name, -bound, bound)?
            .ok_or_else(|| invalid(name, "is required"))
    };
    let mut object = json!({
        "latitude": required("latitude", 90)?,
        "longitude": required("longitude", 180)?,
    });
    put(&mut object, "name", fields.text("name", Limit::line(1000))?);
    put(
        &mut object,
        "address",
        fields.text("address", Limit::line(1000))?,
    );
    let reply_to = message_id(fields, "replyToMessageId")?;
    Ok(envelope(to, "location", object, reply_to))
}

/// A reaction is one emoji on one message; removing sends an empty emoji.
fn reaction(fields: &Fields, remove: bool) -> Result<Composed, ApiError> {
    let to = recipient(fields)?;
    let parent = required_message_id(fields, "messageId")?;
    let emoji = if remove {
        fields.only(&["type", "to", "messageId"], "type `removeReaction`")?;
        ""
    } else {
        fields.only(&["type", "to", "messageId", "emoji"], "type `reaction`")?;
        let emoji = fields.required_text("emoji", Limit::line(1))?;
        if emoji.is_ascii() {
            return Err(invalid("emoji", "must be a single emoji"));
        }
        emoji
    };
    let object = json!({ "message_id": parent, "emoji": emoji });
    Ok(envelope(to, "reaction", object, None))
}

/// A group id as the Groups API returns it (base64url-like).
fn group_id<'a>(fields: &Fields<'a>) -> Result<&'a str, ApiError> {
    let id = fields.required_text("groupId", Limit::line(200))?;
    if !is_opaque_token(id) {
        return Err(invalid("groupId", "must be a group id from the Groups API"));
    }
    Ok(id)
}

/// Group text (`recipient_type: group`) and pin/unpin of a group message.
fn group(fields: &Fields, pin: bool) -> Result<Composed, ApiError> {
    let to = group_id(fields)?;
    let mut composed = if pin {
        fields.only(
            &["type", "groupId", "messageId", "action", "expirationDays"],
            "type `groupPin`",
        )?;
        let parent = required_message_id(fields, "messageId")?;
        let action = fields.required_text("action", Limit::line(8))?;
        let mut object = json!({ "type": action, "message_id": parent });
        match action {
            "pin" => {
                let days = fields
                    .integer("expirationDays", 1, 30)?
                    .ok_or_else(|| invalid("expirationDays", "is required to pin"))?;
                object["expiration_days"] = days.into();
            }
            "unpin" if !fields.has("expirationDays") => {}
            "unpin" => return Err(invalid("expirationDays", "is only accepted to pin")),
            _ => return Err(invalid("action", "must be \"pin\" or \"unpin\"")),
        }
        envelope(to, "pin", object, None)
    } else {
        fields.only(
            &["type", "groupId", "text", "previewUrl", "replyToMessageId"],
            "type `groupText`",
        )?;
        let body = fields.required_text("text", Limit::lines(MAX_TEXT_CHARS))?;
        let preview_url = fields.bool("previewUrl")?.unwrap_or(false);
        let reply_to = message_id(fields, "replyToMessageId")?;
        let object = json!({ "body": body, "preview_url": preview_url });
        envelope(to, "text", object, reply_to)
    };
    composed.payload["recipient_type"] = "group".into();
    Ok(composed)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn composed(body: Value) -> Result<Composed, ApiError> {
        compose(body.as_object().unwrap(), true)
    }

    pub(super) fn rule(body: Value) -> String {
        match composed(body) {
            Err(ApiError::InvalidRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn graph_native_and_composer_text_build_the_same_payload() {
        let native = composed(json!({
            "messaging_product": "whatsapp", "to": "15551230000", "type": "text",
            "text": { "body": "hello" }
        }))
        .unwrap();
        let composer =
            composed(json!({ "type": "text", "to": "15551230000", "text": "hello" })).unwrap();
        assert_eq!(native, composer);
        assert_eq!(
            native.payload["text"],
            json!({ "body": "hello", "preview_url": false })
        );
    }

    #[test]
    fn location_ranges_are_graphs() {
        let ok = composed(
            json!({ "type": "location", "to": "15551230000", "latitude": -90, "longitude": 180.0 }),
        );
        assert_eq!(ok.unwrap().payload["location"]["latitude"], json!(-90.0));
        assert!(rule(
            json!({ "type": "location", "to": "15551230000", "latitude": 90.5, "longitude": 0 })
        )
        .contains("`latitude`"));
        assert!(
            rule(json!({ "type": "location", "to": "15551230000", "latitude": 0 }))
                .contains("`longitude` is required")
        );
    }

    #[test]
    fn a_reaction_is_one_emoji() {
        let ok = composed(json!({ "type": "reaction", "to": "15551230000", "messageId": "wamid.A1", "emoji": "👍🏽" })).unwrap();
        assert_eq!(
            ok.payload["reaction"],
            json!({ "message_id": "wamid.A1", "emoji": "👍🏽" })
        );
        assert!(rule(json!({ "type": "reaction", "to": "15551230000", "messageId": "wamid.A1", "emoji": "👍👍" })).contains("`emoji`"));
        assert!(rule(json!({ "type": "reaction", "to": "15551230000", "messageId": "wamid.A1", "emoji": "x" })).contains("`emoji`"));
        let removed = composed(
            json!({ "type": "removeReaction", "to": "15551230000", "messageId": "wamid.A1" }),
        )
        .unwrap();
        assert_eq!(removed.payload["reaction"]["emoji"], "");
    }

    #[test]
    fn group_bodies_need_the_flag_and_map_to_group_recipients() {
        let body = json!({ "type": "groupText", "groupId": "Y2FwaV9ncm91cDox", "text": "hi" });
        assert!(compose(body.as_object().unwrap(), false).is_err());
        let sent = composed(body).unwrap();
        assert_eq!(sent.payload["recipient_type"], "group");
        assert_eq!(sent.payload["to"], "Y2FwaV9ncm91cDox");
        let pin = composed(json!({ "type": "groupPin", "groupId": "Y2FwaV9ncm91cDox", "messageId": "wamid.P", "action": "pin", "expirationDays": 7 })).unwrap();
        assert_eq!(
            pin.payload["pin"],
            json!({ "type": "pin", "message_id": "wamid.P", "expiration_days": 7 })
        );
        assert!(rule(json!({ "type": "groupPin", "groupId": "Y2FwaV9ncm91cDox", "messageId": "wamid.P", "action": "pin" })).contains("`expirationDays`"));
    }

    #[test]
    fn unknown_types_and_fields_are_refused_without_echo() {
        assert!(
            rule(json!({ "type": "CANARY-TYPE", "to": "15551230000" })).contains("must be one of")
        );
        let message = rule(
            json!({ "type": "image", "to": "15551230000", "mediaId": "1", "captoin-CANARY": "x" }),
        );
        assert!(message.contains("accepted:") && !message.contains("CANARY"));
    }
}
