//! WABA, phone numbers, business profile, commerce settings, message
//! templates and Flows.

use super::{graph_id, invalid, query_value, ManageError};
use crate::graph::EndpointFamily::{Account, Flows, Templates};
use crate::graph::{CallBody, GraphCall, Multipart};
use serde_json::{json, Map, Value};

pub fn waba_info(waba_id: &str) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    Ok(GraphCall::get(
        Account,
        format!("{waba}?fields=id,name,currency,timezone_id,message_template_namespace"),
    ))
}

pub fn subscribed_apps(waba_id: &str) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    Ok(GraphCall::get(Account, format!("{waba}/subscribed_apps")))
}

const PHONE_FIELDS: &str =
    "id,display_phone_number,verified_name,quality_rating,code_verification_status,name_status,platform_type,throughput";

pub fn phone_numbers(waba_id: &str) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    Ok(GraphCall::get(
        Account,
        format!("{waba}/phone_numbers?fields={PHONE_FIELDS}"),
    ))
}

pub fn phone_number(phone_number_id: &str) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    Ok(GraphCall::get(
        Account,
        format!("{phone}?fields={PHONE_FIELDS}"),
    ))
}

/// SIP credentials come back only when asked for explicitly; whoever asks
/// must not log the reply.
pub fn phone_number_settings(
    phone_number_id: &str,
    include_sip_credentials: bool,
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    let query = if include_sip_credentials {
        "?include_sip_credentials=true"
    } else {
        ""
    };
    Ok(GraphCall::get(Account, format!("{phone}/settings{query}")))
}

pub fn business_profile(phone_number_id: &str) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    Ok(GraphCall::get(
        Account,
        format!("{phone}/whatsapp_business_profile?fields=about,address,description,email,profile_picture_url,websites,vertical"),
    ))
}

pub fn commerce_settings(phone_number_id: &str) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    Ok(GraphCall::get(
        Account,
        format!("{phone}/whatsapp_commerce_settings"),
    ))
}

/// Filters and paging of a template listing.
#[derive(Clone, Debug, Default)]
pub struct TemplateQuery<'a> {
    pub name: Option<&'a str>,
    pub status: Option<&'a str>,
    pub limit: Option<u32>,
    pub after: Option<&'a str>,
}

const TEMPLATE_STATUSES: &[&str] = &[
    "APPROVED",
    "PENDING",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "PENDING_DELETION",
    "ARCHIVED",
    "LIMIT_EXCEEDED",
];
const TEMPLATE_CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];

pub fn templates(waba_id: &str, query: &TemplateQuery<'_>) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    let mut path = format!("{waba}/message_templates?fields=id,name,language,status,category");
    if let Some(name) = query.name {
        path.push_str(&format!("&name={}", query_value(template_name(name)?)));
    }
    if let Some(status) = query.status {
        if !TEMPLATE_STATUSES.contains(&status) {
            return Err(invalid("status", "a template status such as APPROVED"));
        }
        path.push_str(&format!("&status={status}"));
    }
    if let Some(limit) = query.limit {
        if !(1..=100).contains(&limit) {
            return Err(invalid("limit", "an integer from 1 to 100"));
        }
        path.push_str(&format!("&limit={limit}"));
    }
    if let Some(after) = query.after {
        path.push_str(&format!("&after={}", query_value(cursor(after)?)));
    }
    Ok(GraphCall::get(Templates, path))
}

pub fn template(template_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("templateId", template_id)?;
    Ok(GraphCall::get(
        Templates,
        format!("{id}?fields=id,name,language,status,category,components"),
    ))
}

/// A new template: Graph reviews it before it can be sent.
#[derive(Clone, Debug)]
pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub language: &'a str,
    pub category: &'a str,
    pub components: &'a Value,
}

pub fn create_template(waba_id: &str, new: &NewTemplate<'_>) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    let body = json!({
        "name": template_name(new.name)?,
        "language": language(new.language)?,
        "category": category(new.category)?,
        "components": components(new.components)?,
    });
    Ok(GraphCall::post(
        Templates,
        format!("{waba}/message_templates"),
        &body,
    ))
}

/// Changes a template's components and/or category (Graph limits how often).
pub fn update_template(
    template_id: &str,
    new_category: Option<&str>,
    new_components: Option<&Value>,
) -> Result<GraphCall, ManageError> {
    let id = graph_id("templateId", template_id)?;
    let mut body = Map::new();
    if let Some(value) = new_category {
        body.insert("category".into(), category(value)?.into());
    }
    if let Some(value) = new_components {
        body.insert("components".into(), components(value)?.clone());
    }
    if body.is_empty() {
        return Err(invalid("update", "a category or components"));
    }
    Ok(GraphCall::post(
        Templates,
        id.to_owned(),
        &Value::Object(body),
    ))
}

/// Deletes one template by name and id (the id keeps other languages of the
/// same name alive).
pub fn delete_template(
    waba_id: &str,
    name: &str,
    template_id: &str,
) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    let id = graph_id("templateId", template_id)?;
    let name = query_value(template_name(name)?);
    Ok(GraphCall::delete(
        Templates,
        format!("{waba}/message_templates?hsm_id={id}&name={name}"),
    ))
}

pub fn flows(waba_id: &str) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    Ok(GraphCall::get(
        Flows,
        format!("{waba}/flows?fields=id,name,status,categories"),
    ))
}

pub fn flow(flow_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    Ok(GraphCall::get(
        Flows,
        format!("{id}?fields=id,name,status,categories,validation_errors,json_version"),
    ))
}

pub fn flow_assets(flow_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    Ok(GraphCall::get(Flows, format!("{id}/assets")))
}

const FLOW_CATEGORIES: &[&str] = &[
    "SIGN_UP",
    "SIGN_IN",
    "APPOINTMENT_BOOKING",
    "LEAD_GENERATION",
    "CONTACT_US",
    "CUSTOMER_SUPPORT",
    "SURVEY",
    "OTHER",
];

/// Creates a draft Flow.
pub fn create_flow(
    waba_id: &str,
    name: &str,
    categories: &[&str],
) -> Result<GraphCall, ManageError> {
    let waba = graph_id("wabaId", waba_id)?;
    let body = json!({ "name": flow_name(name)?, "categories": flow_categories(categories)? });
    Ok(GraphCall::post(Flows, format!("{waba}/flows"), &body))
}

pub fn update_flow_metadata(
    flow_id: &str,
    name: Option<&str>,
    categories: Option<&[&str]>,
) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    let mut body = Map::new();
    if let Some(name) = name {
        body.insert("name".into(), flow_name(name)?.into());
    }
    if let Some(categories) = categories {
        body.insert("categories".into(), flow_categories(categories)?);
    }
    if body.is_empty() {
        return Err(invalid("update", "a name or categories"));
    }
    Ok(GraphCall::post(Flows, id.to_owned(), &Value::Object(body)))
}

/// Replaces a draft Flow's JSON (uploaded as the `flow.json` asset).
pub fn update_flow_json(flow_id: &str, flow_json: &[u8]) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    if !matches!(
        serde_json::from_slice::<Value>(flow_json),
        Ok(Value::Object(_))
    ) {
        return Err(invalid("flowJson", "a JSON object"));
    }
    let form = Multipart::encode(
        &[("name", "flow.json"), ("asset_type", "FLOW_JSON")],
        ("flow.json", "application/json", flow_json),
    );
    Ok(GraphCall::new(
        "POST",
        Flows,
        format!("{id}/assets"),
        CallBody::Multipart(form),
    ))
}

/// Publishing cannot be undone: a published Flow can only be deprecated.
pub fn publish_flow(flow_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    Ok(GraphCall::post(Flows, format!("{id}/publish"), &json!({})).destructive())
}

/// Deprecation is irreversible.
pub fn deprecate_flow(flow_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    Ok(GraphCall::post(Flows, format!("{id}/deprecate"), &json!({})).destructive())
}

/// Only drafts can be deleted.
pub fn delete_flow(flow_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("flowId", flow_id)?;
    Ok(GraphCall::delete(Flows, id.to_owned()))
}

/// Template names: lowercase letters, digits and underscores, up to 512.
fn template_name(name: &str) -> Result<&str, ManageError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then_some(name)
        .ok_or_else(|| invalid("name", "lowercase letters, digits and underscores"))
}

/// Language codes such as `en` or `en_US`.
fn language(code: &str) -> Result<&str, ManageError> {
    let ok =
        (2..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
    ok.then_some(code)
        .ok_or_else(|| invalid("language", "a language code such as en_US"))
}

fn category(value: &str) -> Result<&str, ManageError> {
    TEMPLATE_CATEGORIES
        .contains(&value)
        .then_some(value)
        .ok_or_else(|| invalid("category", "MARKETING, UTILITY or AUTHENTICATION"))
}

fn components(value: &Value) -> Result<&Value, ManageError> {
    match value.as_array() {
        Some(list) if !list.is_empty() && list.iter().all(Value::is_object) => Ok(value),
        _ => Err(invalid(
            "components",
            "a non-empty array of component objects",
        )),
    }
}

fn cursor(value: &str) -> Result<&str, ManageError> {
    crate::core::ids::is_opaque_token(value)
        .then_some(value)
        .ok_or_else(|| invalid("after", "a cursor from a previous page"))
}

fn flow_name(name: &str) -> Result<&str, ManageError> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 200
        && !name.chars().any(char::is_control);
    ok.then_some(name)
        .ok_or_else(|| invalid("name", "1 to 200 characters without control characters"))
}

fn flow_categories(categories: &[&str]) -> Result<Value, ManageError> {
    if categories.is_empty() || !categories.iter().all(|c| FLOW_CATEGORIES.contains(c)) {
        return Err(invalid(
            "categories",
            "one or more Flow categories such as OTHER",
        ));
    }
    Ok(json!(categories))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Risk;

    #[test]
    fn reads_are_gets_below_the_right_object() {
        let call = waba_info("200000000000001").unwrap();
        assert_eq!((call.method, call.risk), ("GET", Risk::ReadOnly));
        assert!(call.path.starts_with("200000000000001?fields="));
        assert_eq!(
            phone_number_settings("1", false).unwrap().path,
            "1/settings"
        );
        assert_eq!(
            phone_number_settings("1", true).unwrap().path,
            "1/settings?include_sip_credentials=true"
        );
        let query = TemplateQuery {
            name: Some("order_update"),
            status: Some("APPROVED"),
            limit: Some(5),
            after: Some("QVFIUk=="),
        };
        assert_eq!(
            templates("2", &query).unwrap().path,
            "2/message_templates?fields=id,name,language,status,category&name=order_update&status=APPROVED&limit=5&after=QVFIUk%3D%3D"
        );
    }

    #[test]
    fn template_mutations_check_their_inputs_and_name_the_field() {
        let components = json!([{"type": "BODY", "text": "Hi"}]);
        let new = NewTemplate {
            name: "wats_live_1",
            language: "en_US",
            category: "UTILITY",
            components: &components,
        };
        let call = create_template("2", &new).unwrap();
        assert_eq!(
            (call.method, call.path.as_str()),
            ("POST", "2/message_templates")
        );
        let bad = NewTemplate {
            name: "Bad Name",
            ..new.clone()
        };
        assert_eq!(
            create_template("2", &bad).unwrap_err().to_string(),
            "name must be lowercase letters, digits and underscores."
        );
        assert!(update_template("3", None, None).is_err());
        let call = delete_template("2", "wats_live_1", "3").unwrap();
        assert_eq!((call.method, call.risk), ("DELETE", Risk::Destructive));
        assert_eq!(call.path, "2/message_templates?hsm_id=3&name=wats_live_1");
    }

    #[test]
    fn flow_json_is_uploaded_as_an_asset_and_publishing_counts_as_destructive() {
        let call = update_flow_json("9", br#"{"version":"7.0","screens":[]}"#).unwrap();
        assert_eq!(call.path, "9/assets");
        let CallBody::Multipart(form) = &call.body else {
            panic!("not multipart")
        };
        assert!(String::from_utf8_lossy(&form.bytes).contains("FLOW_JSON"));
        assert!(update_flow_json("9", b"[1]").is_err());
        assert_eq!(publish_flow("9").unwrap().risk, Risk::Destructive);
        assert_eq!(
            create_flow("2", "wats-live-x", &["OTHER"]).unwrap().risk,
            Risk::SideEffect
        );
        assert!(create_flow("2", "x", &["NOPE"]).is_err());
    }
}
