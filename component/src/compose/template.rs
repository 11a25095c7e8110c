//! Template messages: an approved template by name and language, with the
//! parameters of its header, body and buttons.

use super::fields::{invalid, Fields, Limit};
use super::{envelope, media, message_id, put, recipient, Composed};
use crate::core::error::ApiError;
use serde_json::{json, Value};

const COMPONENT_TYPES: &[&str] = &["header", "body", "button"];
const BUTTON_SUB_TYPES: &[&str] = &["quick_reply", "url", "copy_code", "flow", "catalog"];

fn is_template_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `en`, `pt_BR`, `zh_HK`: Graph's template language codes.
fn is_language_code(code: &str) -> bool {
    let (language, region) = code.split_once('_').unwrap_or((code, "AA"));
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && (2..=4).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parameter(fields: &Fields) -> Result<Value, ApiError> {
    let kind = fields.required_text("type", Limit::line(16))?;
    let mut accepted = vec!["type", "parameterName"];
    let mut value = match kind {
        "text" => {
            accepted.push("text");
            json!({ "type": "text", "text": fields.required_text("text", Limit::lines(1024))? })
        }
        "payload" => {
            accepted.push("payload");
            json!({ "type": "payload", "payload": fields.required_text("payload", Limit::line(1000))? })
        }
        "coupon_code" => {
            accepted.push("couponCode");
            json!({ "type": "coupon_code", "coupon_code": fields.required_text("couponCode", Limit::line(15))? })
        }
        "currency" => {
            accepted.extend(["fallbackValue", "code", "amount1000"]);
            let code = fields.required_text("code", Limit::line(3))?;
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(&fields.path("code"), "must be an ISO 4217 code"));
            }
            let amount = fields
                .integer("amount1000", i64::MIN, i64::MAX)?
                .ok_or_else(|| invalid(&fields.path("amount1000"), "is required"))?;
            json!({ "type": "currency", "currency": {
                "fallback_value": fields.required_text("fallbackValue", Limit::line(100))?,
                "code": code, "amount_1000": amount } })
        }
        "date_time" => {
            accepted.push("fallbackValue");
            json!({ "type": "date_time", "date_time": {
                "fallback_value": fields.required_text("fallbackValue", Limit::line(100))? } })
        }
        "image" | "video" | "document" => {
            accepted.extend(["mediaId", "link"]);
            let mut object = media::reference(fields)?;
            if kind == "document" {
                accepted.push("filename");
                put(&mut object, "filename", fields.text("filename", Limit::line(240))?);
            }
            let mut value = json!({ "type": kind });
            value[kind] = object;
            value
        }
        _ => {
            return Err(invalid(
                &fields.path("type"),
                "must be one of: text, payload, coupon_code, currency, date_time, image, video, document",
            ))
        }
    };
    fields.only(&accepted, &format!("a `{kind}` parameter"))?;
    put(
        &mut value,
        "parameter_name",
        fields.text("parameterName", Limit::line(64))?,
    );
    Ok(value)
}

fn component(fields: &Fields) -> Result<Value, ApiError> {
    fields.only(
        &["type", "subType", "index", "parameters"],
        "a template component",
    )?;
    let kind = fields.required_text("type", Limit::line(16))?;
    if !COMPONENT_TYPES.contains(&kind) {
        return Err(invalid(
            &fields.path("type"),
            "must be header, body or button",
        ));
    }
    let parameters = fields
        .objects("parameters", 0, 100)?
        .iter()
        .map(parameter)
        .collect::<Result<Vec<_>, _>>()?;
    let mut value = json!({ "type": kind, "parameters": parameters });
    if kind == "button" {
        let sub_type = fields.required_text("subType", Limit::line(16))?;
        if !BUTTON_SUB_TYPES.contains(&sub_type) {
            return Err(invalid(
                &fields.path("subType"),
                &format!("must be one of: {}", BUTTON_SUB_TYPES.join(", ")),
            ));
        }
        let index = fields
            .integer("index", 0, 9)?
            .ok_or_else(|| invalid(&fields.path("index"), "is required for a button"))?;
        value["sub_type"] = sub_type.into();
        value["index"] = index.to_string().into();
    } else if fields.has("subType") || fields.has("index") {
        return Err(invalid(
            &fields.path("subType"),
            "and `index` are only for buttons",
        ));
    }
    Ok(value)
}

pub(super) fn compose(fields: &Fields) -> Result<Composed, ApiError> {
    fields.only(
        &[
            "type",
            "to",
            "name",
            "language",
            "components",
            "replyToMessageId",
        ],
        "type `template`",
    )?;
    let to = recipient(fields)?;
    let name = fields.required_text("name", Limit::line(512))?;
    if !is_template_name(name) {
        return Err(invalid(
            "name",
            "must be a template name (lowercase letters, digits, _)",
        ));
    }
    let language = fields.required_text("language", Limit::line(8))?;
    if !is_language_code(language) {
        return Err(invalid(
            "language",
            "must be a language code such as en or pt_BR",
        ));
    }
    let mut object = json!({ "name": name, "language": { "code": language } });
    let components = fields
        .objects("components", 0, 20)?
        .iter()
        .map(component)
        .collect::<Result<Vec<_>, _>>()?;
    if !components.is_empty() {
        object["components"] = components.into();
    }
    let reply_to = message_id(fields, "replyToMessageId")?;
    Ok(envelope(to, "template", object, reply_to))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{composed, rule};
    use serde_json::json;

    #[test]
    fn templates_map_components_and_parameters() {
        let sent = composed(json!({ "type": "template", "to": "15551230000", "name": "order_update", "language": "pt_BR",
            "components": [
                { "type": "header", "parameters": [ { "type": "image", "link": "https://example.test/h.png" } ] },
                { "type": "body", "parameters": [ { "type": "text", "text": "Ada", "parameterName": "customer" },
                    { "type": "currency", "fallbackValue": "$10.99", "code": "USD", "amount1000": 10990 } ] },
                { "type": "button", "subType": "quick_reply", "index": 0, "parameters": [ { "type": "payload", "payload": "STOP" } ] }
            ] })).unwrap();
        assert_eq!(
            sent.payload["template"],
            json!({ "name": "order_update", "language": { "code": "pt_BR" }, "components": [
            { "type": "header", "parameters": [ { "type": "image", "image": { "link": "https://example.test/h.png" } } ] },
            { "type": "body", "parameters": [ { "type": "text", "text": "Ada", "parameter_name": "customer" },
                { "type": "currency", "currency": { "fallback_value": "$10.99", "code": "USD", "amount_1000": 10990 } } ] },
            { "type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [ { "type": "payload", "payload": "STOP" } ] }
        ] })
        );
    }

    #[test]
    fn template_rules() {
        assert!(rule(json!({ "type": "template", "to": "15551230000", "name": "Order Update", "language": "en" })).contains("`name`"));
        assert!(rule(
            json!({ "type": "template", "to": "15551230000", "name": "a", "language": "english" })
        )
        .contains("`language`"));
        assert!(rule(
            json!({ "type": "template", "to": "15551230000", "name": "a", "language": "en",
            "components": [ { "type": "button", "parameters": [] } ] })
        )
        .contains("`components[0].subType`"));
        assert!(rule(
            json!({ "type": "template", "to": "15551230000", "name": "a", "language": "en",
            "components": [ { "type": "body", "parameters": [ { "type": "text" } ] } ] })
        )
        .contains("`components[0].parameters[0].text` is required"));
    }
}
