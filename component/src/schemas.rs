//! JSON Schemas of request and response bodies, for the OpenAPI document.
//! Each lives beside nothing else so that `routes.rs` can name it.

use crate::compose::GROUP_BODY_TYPES;
use crate::config::Paths;
use serde_json::{json, Value};

pub fn health() -> Value {
    json!({
        "type": "object",
        "required": ["ok", "service"],
        "properties": { "ok": { "type": "boolean" }, "service": { "type": "string" } }
    })
}

pub fn text() -> Value {
    json!({ "type": "string" })
}

pub fn any_object() -> Value {
    json!({ "type": "object" })
}

pub fn error() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string" },
                    "message": { "type": "string" },
                    "metaCode": { "type": "integer" },
                    "metaSubcode": { "type": "integer" },
                    "metaType": { "type": "string" },
                    "fbtraceId": { "type": "string" }
                }
            }
        }
    })
}

fn route_inventory() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["method", "path", "auth"],
            "properties": {
                "method": { "type": "string" },
                "path": { "type": "string" },
                "auth": { "type": "string" }
            }
        }
    })
}

pub fn status() -> Value {
    json!({
        "type": "object",
        "required": ["service", "version", "uptimeSeconds", "graphApiVersion", "serviceMode", "routes", "featureFlags", "persistence"],
        "properties": {
            "service": { "type": "string" },
            "version": { "type": "string" },
            "uptimeSeconds": { "type": "integer", "minimum": 0 },
            "graphApiVersion": { "type": "string" },
            "serviceMode": { "type": "string" },
            "routes": route_inventory(),
            "featureFlags": { "type": "object" },
            "persistence": { "type": ["object", "null"] }
        }
    })
}

pub fn diagnostics() -> Value {
    json!({
        "type": "object",
        "required": ["service", "version", "graphApiVersion", "serviceMode", "runtime", "routes", "featureFlags", "metricFamilies", "recentErrors", "configShape"],
        "properties": {
            "service": { "type": "string" },
            "version": { "type": "string" },
            "graphApiVersion": { "type": "string" },
            "serviceMode": { "type": "string" },
            "runtime": { "type": "string" },
            "routes": route_inventory(),
            "featureFlags": { "type": "object" },
            "persistence": { "type": ["object", "null"] },
            "metricFamilies": { "type": "array", "items": { "type": "string" } },
            "recentErrors": { "type": "array", "items": {
                "type": "object",
                "properties": { "class": { "type": "string" }, "count": { "type": "integer" } }
            } },
            "configShape": { "type": "object", "additionalProperties": { "type": "string" } }
        }
    })
}

pub fn webhook_delivery(_: &Paths) -> Value {
    json!({
        "type": "object",
        "description": "A WhatsApp Business Account webhook delivery, verified over its raw bytes.",
        "properties": {
            "object": { "type": "string" },
            "entry": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "id": { "type": "string" },
                    "changes": { "type": "array", "items": {
                        "type": "object",
                        "required": ["field", "value"],
                        "properties": { "field": { "type": "string" }, "value": {} }
                    } }
                }
            } }
        }
    })
}

pub fn webhook_ack() -> Value {
    json!({
        "type": "object",
        "required": ["ok", "received", "dispatched", "duplicates"],
        "properties": {
            "ok": { "type": "boolean" },
            "received": { "type": "integer", "minimum": 0 },
            "dispatched": { "type": "integer", "minimum": 0 },
            "duplicates": { "type": "integer", "minimum": 0 }
        }
    })
}

pub fn send_text(_: &Paths) -> Value {
    json!({
        "type": "object",
        "required": ["to", "text"],
        "properties": {
            "to": {
                "type": "string",
                "pattern": "^\\+?[0-9]{5,31}$",
                "description": "Recipient phone number in international format, or WhatsApp id."
            },
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": 4096,
                "description": "At least one visible character; no control characters.",
                "allOf": [ { "pattern": "\\S" }, { "pattern": CONTROL_FREE } ]
            },
            "previewUrl": { "type": ["boolean", "null"] }
        }
    })
}

pub fn send_result() -> Value {
    json!({
        "type": "object",
        "description": "Graph's reply to the send, as Meta returned it.",
        "properties": {
            "messaging_product": { "type": "string" },
            "contacts": { "type": "array" },
            "messages": { "type": "array", "items": {
                "type": "object",
                "properties": { "id": { "type": "string" } }
            } }
        }
    })
}

pub fn message_record() -> Value {
    json!({
        "type": "object",
        "required": ["rowId", "waMessageId", "direction", "type", "status", "createdAt", "updatedAt", "statuses"],
        "properties": {
            "rowId": { "type": "string" },
            "waMessageId": { "type": "string" },
            "direction": { "type": "string", "enum": ["outbound", "inbound"] },
            "fromPhone": { "type": ["string", "null"] },
            "toPhone": { "type": ["string", "null"] },
            "type": { "type": "string" },
            "status": { "type": ["string", "null"], "enum": ["received", "sent", "delivered", "read", "failed", null] },
            "errorCode": { "type": ["integer", "null"] },
            "graphMessageId": { "type": ["string", "null"] },
            "createdAt": { "type": "string", "format": "date-time" },
            "updatedAt": { "type": "string", "format": "date-time" },
            "statuses": { "type": "array", "items": {
                "type": "object",
                "properties": { "status": { "type": "string" }, "at": { "type": "string", "format": "date-time" } }
            } }
        }
    })
}

pub fn message_page() -> Value {
    json!({
        "type": "object",
        "required": ["items", "nextCursor"],
        "properties": {
            "items": { "type": "array", "items": message_record() },
            "nextCursor": { "type": ["string", "null"] }
        }
    })
}

/// Text without C0, DEL or C1 control characters.
const CONTROL_FREE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

pub fn non_empty_string() -> Value {
    json!({ "type": "string", "minLength": 1 })
}

pub fn hub_mode() -> Value {
    json!({ "type": "string", "enum": ["subscribe"] })
}

pub fn hub_challenge() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" })
}

pub fn signature_header() -> Value {
    json!({ "type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$" })
}

pub fn idempotency_key() -> Value {
    json!({ "type": "string", "pattern": "^[!-~]{1,255}$" })
}

pub fn page_limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })
}

pub fn page_cursor() -> Value {
    json!({ "type": "string", "pattern": "^wats-msg-[0-9a-f]{24}$", "description": "The nextCursor of the previous page." })
}

pub fn wamid() -> Value {
    json!({ "type": "string", "pattern": "^wamid\\.[A-Za-z0-9._=+-]{1,194}$" })
}

/// `POST {prefix}/messages` bodies: one variant per body type, generated by
/// `component/schemas/generate.py`. Group variants only with group routes.
pub fn send_message(paths: &Paths) -> Value {
    let mut schema: Value =
        serde_json::from_str(include_str!("../schemas/send-message.json")).unwrap_or_default();
    if !paths.group_routes {
        if let Some(variants) = schema["oneOf"].as_array_mut() {
            variants.retain(|variant| {
                let title = variant["title"].as_str().unwrap_or_default();
                !GROUP_BODY_TYPES.contains(&title)
            });
        }
    }
    schema
}

pub fn mark_read(_: &Paths) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": { "typingIndicator": { "type": ["boolean", "null"] } }
    })
}

/// Graph's reply, passed through as Meta returned it.
pub fn graph_reply() -> Value {
    json!({ "type": "object", "description": "Graph's reply, as Meta returned it." })
}

pub fn prefer() -> Value {
    json!({ "type": "string", "description": "`respond-async` queues the send in the outbox and answers 202." })
}

pub fn queued() -> Value {
    json!({
        "type": "object",
        "required": ["outboxId", "state"],
        "properties": {
            "outboxId": outbox_id(),
            "state": { "const": "queued" }
        }
    })
}

pub fn outbox_id() -> Value {
    json!({ "type": "string", "pattern": "^wats-out-[0-9a-f]{28}$" })
}

pub fn outbox_item() -> Value {
    json!({
        "type": "object",
        "required": ["outboxId", "state", "type", "attempts", "createdAt", "updatedAt", "nextAttemptAt", "waMessageId", "lastError"],
        "properties": {
            "outboxId": outbox_id(),
            "state": { "enum": ["queued", "sent", "failed"] },
            "type": { "type": "string" },
            "attempts": { "type": "integer", "minimum": 0 },
            "createdAt": { "type": "string", "format": "date-time" },
            "updatedAt": { "type": "string", "format": "date-time" },
            "nextAttemptAt": { "type": ["string", "null"], "format": "date-time" },
            "waMessageId": { "type": ["string", "null"] },
            "lastError": { "type": ["object", "null"], "properties": {
                "code": { "type": "string" },
                "metaCode": { "type": "integer" }
            } }
        }
    })
}

pub fn group_id() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9_=-]{1,200}$" })
}

pub fn graph_cursor() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9_=-]{1,200}$", "description": "A paging cursor from Graph's previous reply." })
}

pub fn graph_page_limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000 })
}

fn group_settings(required: &[&str]) -> Value {
    let line =
        |max: u32| json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": LINE });
    json!({
        "type": "object",
        "required": required,
        "minProperties": 1,
        "additionalProperties": false,
        "properties": {
            "subject": line(100),
            "description": { "type": "string", "minLength": 1, "maxLength": 2048, "pattern": LINES },
            "joinApprovalMode": { "enum": ["auto_approve", "approval_required"] }
        }
    })
}

pub fn group_create(_: &Paths) -> Value {
    group_settings(&["subject"])
}

pub fn group_update(_: &Paths) -> Value {
    group_settings(&[])
}

pub fn group_participants(_: &Paths) -> Value {
    json!({
        "type": "object",
        "required": ["waIds"],
        "additionalProperties": false,
        "properties": { "waIds": {
            "type": "array", "minItems": 1, "maxItems": crate::groups::MAX_REMOVED_PARTICIPANTS,
            "items": { "type": "string", "pattern": "^[0-9]{5,32}$" }
        } }
    })
}

pub fn group_join_requests(_: &Paths) -> Value {
    json!({
        "type": "object",
        "required": ["joinRequestIds"],
        "additionalProperties": false,
        "properties": { "joinRequestIds": {
            "type": "array", "minItems": 1, "maxItems": 100,
            "items": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": LINE }
        } }
    })
}

/// One line of text: a visible character, no control characters.
const LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// As LINE, with line breaks.
const LINES: &str = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$";
