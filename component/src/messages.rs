//! The message send routes. Bodies are validated before anything reaches
//! Graph; a rejected body gets 400 naming the field, never echoing it.

use crate::error::ApiError;
use crate::graph::{EndpointFamily, GraphClient};
use crate::host::{Host, Request, Response};
use crate::http::{has_control_chars, json_response};
use crate::projections::{self, NewMessage};
use crate::Context;
use serde_json::{json, Map, Value};

/// Graph's limit for a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Parses a request body that must be a JSON object.
pub fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidRequest(
            "Request body must be a JSON object.".into(),
        )),
    }
}

fn invalid(field: &str, rule: &str) -> ApiError {
    ApiError::InvalidRequest(format!("Field `{field}` {rule}."))
}

/// A required non-empty string without control characters.
fn required_text<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<&'a str, ApiError> {
    let rule = "must be a non-empty string without control characters";
    let text = body
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(field, rule))?;
    if text.trim().is_empty() || has_control_chars(text) {
        return Err(invalid(field, rule));
    }
    if text.chars().count() > max_chars {
        return Err(invalid(
            field,
            &format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(text)
}

/// A recipient: a phone number in international format or a WhatsApp id.
fn recipient(body: &Map<String, Value>) -> Result<&str, ApiError> {
    let to = required_text(body, "to", 32)?;
    let digits = to.strip_prefix('+').unwrap_or(to);
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "to",
            "must be a phone number in international format (digits, optional leading +)",
        ));
    }
    Ok(to)
}

fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(invalid(field, "must be a boolean")),
    }
}

/// `POST {prefix}/messages/text`.
pub async fn send_text_route<H: Host>(
    ctx: &Context<'_, H>,
    request: &Request,
) -> Result<Response, ApiError> {
    let body = json_object(request)?;
    let to = recipient(&body)?;
    let text = required_text(&body, "text", MAX_TEXT_CHARS)?;
    let preview_url = optional_bool(&body, "previewUrl")?.unwrap_or(false);
    let reply = send_text(ctx, to, text, preview_url).await?;
    Ok(json_response(200, &reply))
}

/// Sends a text message through Graph and counts the outcome.
pub async fn send_text<H: Host>(
    ctx: &Context<'_, H>,
    to: &str,
    text: &str,
    preview_url: bool,
) -> Result<Value, ApiError> {
    let config = ctx.config()?;
    let payload = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": { "body": text, "preview_url": preview_url },
    });
    let graph = GraphClient {
        host: ctx.host,
        config,
        recorder: &ctx.recorder,
    };
    let path = format!("{}/messages", config.phone_number_id);
    let result = graph
        .post_json(EndpointFamily::Messages, &path, &payload)
        .await;
    let outcome = match &result {
        Ok(_) => "sent",
        Err(error) if error.is_rate_limit() => "rate_limited",
        Err(_) => "failed",
    };
    ctx.recorder
        .send_outcome(EndpointFamily::Messages.label(), outcome);
    let reply = result?;
    let sent_id = reply["messages"][0]["id"]
        .as_str()
        .filter(|id| projections::is_safe_wamid(id));
    if let Some(wamid) = sent_id {
        let message = NewMessage {
            wamid,
            outbound: true,
            from_phone: None,
            to_phone: Some(to),
            kind: "text",
            sequence: 0,
        };
        // The send stands whatever happens to its record (counted in metrics).
        let _ = projections::record(ctx, message).await;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn recipients_must_look_like_numbers() {
        assert!(recipient(&object(json!({ "to": "15551230000" }))).is_ok());
        assert!(recipient(&object(json!({ "to": "+15551230000" }))).is_ok());
        assert!(recipient(&object(json!({ "to": "abc" }))).is_err());
        assert!(recipient(&object(json!({ "to": 15551230000u64 }))).is_err());
    }

    #[test]
    fn text_rules_name_the_field_only() {
        let error =
            required_text(&object(json!({ "text": "a\u{0007}b-canary" })), "text", 10).unwrap_err();
        let ApiError::InvalidRequest(message) = error else {
            panic!()
        };
        assert!(message.contains("`text`") && !message.contains("canary"));
        let long = "é".repeat(5);
        assert!(required_text(&object(json!({ "text": long })), "text", 5).is_ok());
        assert!(required_text(&object(json!({ "text": "   " })), "text", 5).is_err());
    }
}
