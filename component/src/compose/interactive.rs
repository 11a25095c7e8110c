//! Interactive bodies: reply buttons, lists, CTA URL, products, catalog,
//! location request and call permission request. Limits are Graph's.

use super::fields::{invalid, Fields, Limit};
use super::{envelope, message_id, recipient, Composed};
use crate::core::error::ApiError;
use serde_json::{json, Value};

const HEADER: Limit = Limit::line(60);
const FOOTER: Limit = Limit::line(60);
const BODY: Limit = Limit::lines(1024);
const LIST_BODY: Limit = Limit::lines(4096);
const BUTTON_TITLE: Limit = Limit::line(20);
const SECTION_TITLE: Limit = Limit::line(24);
const ID: Limit = Limit::line(256);

/// The fields every interactive body may have besides its own.
const COMMON: &[&str] = &["type", "to", "replyToMessageId"];

struct Spec {
    graph_type: &'static str,
    fields: &'static [&'static str],
    body: Option<(Limit, bool)>,
    header: bool,
    footer: bool,
    action: fn(&Fields) -> Result<Value, ApiError>,
}

fn spec(kind: &str) -> Option<Spec> {
    let spec = |graph_type, fields, body, header, footer, action| Spec {
        graph_type,
        fields,
        body,
        header,
        footer,
        action,
    };
    Some(match kind {
        "interactiveButtons" => spec(
            "button",
            &["buttons"],
            Some((BODY, true)),
            true,
            true,
            buttons,
        ),
        "interactiveList" => spec(
            "list",
            &["buttonText", "sections"],
            Some((LIST_BODY, true)),
            true,
            true,
            list,
        ),
        "interactiveCtaUrl" => spec(
            "cta_url",
            &["displayText", "url"],
            Some((BODY, true)),
            true,
            true,
            cta_url,
        ),
        "interactiveProduct" => spec(
            "product",
            &["catalogId", "productRetailerId"],
            Some((BODY, false)),
            false,
            true,
            product,
        ),
        "interactiveProducts" => spec(
            "product_list",
            &["catalogId", "sections"],
            Some((BODY, true)),
            true,
            true,
            products,
        ),
        "interactiveCatalog" => spec(
            "catalog_message",
            &["thumbnailProductRetailerId"],
            Some((BODY, true)),
            false,
            true,
            catalog,
        ),
        "interactiveLocationRequest" => spec(
            "location_request_message",
            &[],
            Some((BODY, true)),
            false,
            false,
            |_| Ok(json!({ "name": "send_location" })),
        ),
        "callPermissionRequest" => spec(
            "call_permission_request",
            &[],
            Some((BODY, true)),
            false,
            true,
            |_| Ok(json!({ "name": "call_permission_request" })),
        ),
        _ => return None,
    })
}

/// `None` when `kind` is not an interactive type.
pub(super) fn compose(fields: &Fields, kind: &str) -> Option<Result<Composed, ApiError>> {
    let spec = spec(kind)?;
    Some(build(fields, kind, &spec))
}

fn build(fields: &Fields, kind: &str, spec: &Spec) -> Result<Composed, ApiError> {
    let mut accepted = COMMON.to_vec();
    accepted.extend_from_slice(spec.fields);
    for (present, name) in [
        (spec.body.is_some(), "bodyText"),
        (spec.header, "headerText"),
        (spec.footer, "footerText"),
    ] {
        if present {
            accepted.push(name);
        }
    }
    fields.only(&accepted, &format!("type `{kind}`"))?;
    let to = recipient(fields)?;
    let mut object = json!({ "type": spec.graph_type });
    if let Some((limit, required)) = spec.body {
        let body = if required {
            Some(fields.required_text("bodyText", limit)?)
        } else {
            fields.text("bodyText", limit)?
        };
        if let Some(text) = body {
            object["body"] = json!({ "text": text });
        }
    }
    if spec.header {
        // A product list must have a header; elsewhere it is optional.
        let header = if spec.graph_type == "product_list" {
            Some(fields.required_text("headerText", HEADER)?)
        } else {
            fields.text("headerText", HEADER)?
        };
        if let Some(text) = header {
            object["header"] = json!({ "type": "text", "text": text });
        }
    }
    if spec.footer {
        if let Some(text) = fields.text("footerText", FOOTER)? {
            object["footer"] = json!({ "text": text });
        }
    }
    object["action"] = (spec.action)(fields)?;
    let reply_to = message_id(fields, "replyToMessageId")?;
    Ok(envelope(to, "interactive", object, reply_to))
}

/// Refuses a repeated id (or title), naming the field of the second one.
fn unique<'a>(seen: &mut Vec<&'a str>, value: &'a str, path: &str) -> Result<(), ApiError> {
    if seen.contains(&value) {
        return Err(invalid(path, "must be unique"));
    }
    seen.push(value);
    Ok(())
}

fn buttons(fields: &Fields) -> Result<Value, ApiError> {
    let (mut ids, mut titles) = (Vec::new(), Vec::new());
    let mut buttons = Vec::new();
    for button in fields.objects("buttons", 1, 3)? {
        button.only(&["id", "title"], "a reply button")?;
        let id = button.required_text("id", ID)?;
        let title = button.required_text("title", BUTTON_TITLE)?;
        unique(&mut ids, id, &button.path("id"))?;
        unique(&mut titles, title, &button.path("title"))?;
        buttons.push(json!({ "type": "reply", "reply": { "id": id, "title": title } }));
    }
    Ok(json!({ "buttons": buttons }))
}

fn list(fields: &Fields) -> Result<Value, ApiError> {
    let button = fields.required_text("buttonText", BUTTON_TITLE)?;
    let sections = fields.objects("sections", 1, 10)?;
    let (mut ids, mut total) = (Vec::new(), 0);
    let mut out = Vec::new();
    for section in &sections {
        section.only(&["title", "rows"], "a list section")?;
        // With several sections each needs a title.
        let title = if sections.len() > 1 {
            Some(section.required_text("title", SECTION_TITLE)?)
        } else {
            section.text("title", SECTION_TITLE)?
        };
        let mut rows = Vec::new();
        for row in section.objects("rows", 1, 10)? {
            row.only(&["id", "title", "description"], "a list row")?;
            let id = row.required_text("id", Limit::line(200))?;
            unique(&mut ids, id, &row.path("id"))?;
            let mut value =
                json!({ "id": id, "title": row.required_text("title", SECTION_TITLE)? });
            if let Some(description) = row.text("description", Limit::line(72))? {
                value["description"] = description.into();
            }
            rows.push(value);
        }
        total += rows.len();
        let mut value = json!({ "rows": rows });
        if let Some(title) = title {
            value["title"] = title.into();
        }
        out.push(value);
    }
    if total > 10 {
        return Err(invalid("sections", "must have at most 10 rows in all"));
    }
    Ok(json!({ "button": button, "sections": out }))
}

fn cta_url(fields: &Fields) -> Result<Value, ApiError> {
    let display = fields.required_text("displayText", BUTTON_TITLE)?;
    let url = fields.required_text("url", Limit::line(2000))?;
    if !url.starts_with("https://") && !url.starts_with("http://")
        || url.contains(char::is_whitespace)
    {
        return Err(invalid("url", "must be an http(s) URL"));
    }
    Ok(json!({ "name": "cta_url", "parameters": { "display_text": display, "url": url } }))
}

fn catalog_id<'a>(fields: &Fields<'a>) -> Result<&'a str, ApiError> {
    fields.required_text("catalogId", Limit::line(64))
}

fn product(fields: &Fields) -> Result<Value, ApiError> {
    Ok(json!({
        "catalog_id": catalog_id(fields)?,
        "product_retailer_id": fields.required_text("productRetailerId", ID)?,
    }))
}

fn products(fields: &Fields) -> Result<Value, ApiError> {
    let catalog = catalog_id(fields)?;
    let mut total = 0;
    let mut sections = Vec::new();
    for section in fields.objects("sections", 1, 10)? {
        section.only(&["title", "productRetailerIds"], "a product section")?;
        let title = section.required_text("title", SECTION_TITLE)?;
        let items: Vec<Value> = section
            .texts("productRetailerIds", 1, 30, ID)?
            .into_iter()
            .map(|id| json!({ "product_retailer_id": id }))
            .collect();
        total += items.len();
        sections.push(json!({ "title": title, "product_items": items }));
    }
    if total > 30 {
        return Err(invalid("sections", "must have at most 30 products in all"));
    }
    Ok(json!({ "catalog_id": catalog, "sections": sections }))
}

fn catalog(fields: &Fields) -> Result<Value, ApiError> {
    let mut action = json!({ "name": "catalog_message" });
    if let Some(id) = fields.text("thumbnailProductRetailerId", ID)? {
        action["parameters"] = json!({ "thumbnail_product_retailer_id": id });
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{composed, rule};
    use serde_json::json;

    #[test]
    fn buttons_map_to_reply_buttons() {
        let sent = composed(json!({ "type": "interactiveButtons", "to": "15551230000", "bodyText": "Pick one",
            "headerText": "Menu", "buttons": [ { "id": "a", "title": "Yes 👍🏽" }, { "id": "b", "title": "No" } ] })).unwrap();
        assert_eq!(sent.kind, "interactive");
        assert_eq!(
            sent.payload["interactive"],
            json!({
            "type": "button", "header": { "type": "text", "text": "Menu" }, "body": { "text": "Pick one" },
            "action": { "buttons": [ { "type": "reply", "reply": { "id": "a", "title": "Yes 👍🏽" } },
                                     { "type": "reply", "reply": { "id": "b", "title": "No" } } ] } })
        );
    }

    #[test]
    fn button_limits() {
        let four = json!([ { "id": "a", "title": "A" }, { "id": "b", "title": "B" }, { "id": "c", "title": "C" }, { "id": "d", "title": "D" } ]);
        assert!(rule(json!({ "type": "interactiveButtons", "to": "15551230000", "bodyText": "x", "buttons": four })).contains("`buttons` must have 1 to 3 items"));
        assert!(rule(json!({ "type": "interactiveButtons", "to": "15551230000", "bodyText": "x", "buttons": [ { "id": "a", "title": "123456789012345678901" } ] })).contains("`buttons[0].title` must be at most 20"));
        assert!(rule(json!({ "type": "interactiveButtons", "to": "15551230000", "bodyText": "x", "buttons": [ { "id": "a", "title": "A" }, { "id": "a", "title": "B" } ] })).contains("`buttons[1].id` must be unique"));
    }

    #[test]
    fn lists_count_rows_across_sections() {
        let rows = |prefix: &str, n: usize| {
            (0..n)
                .map(|i| json!({ "id": format!("{prefix}{i}"), "title": "Row" }))
                .collect::<Vec<_>>()
        };
        let ok = composed(json!({ "type": "interactiveList", "to": "15551230000", "bodyText": "x", "buttonText": "Open",
            "sections": [ { "title": "A", "rows": rows("a", 5) }, { "title": "B", "rows": rows("b", 5) } ] })).unwrap();
        assert_eq!(
            ok.payload["interactive"]["action"]["sections"][1]["rows"][4]["id"],
            "b4"
        );
        assert!(rule(json!({ "type": "interactiveList", "to": "15551230000", "bodyText": "x", "buttonText": "Open",
            "sections": [ { "title": "A", "rows": rows("a", 6) }, { "title": "B", "rows": rows("b", 5) } ] })).contains("at most 10 rows"));
        assert!(rule(json!({ "type": "interactiveList", "to": "15551230000", "bodyText": "x", "buttonText": "Open",
            "sections": [ { "rows": rows("a", 1) }, { "title": "B", "rows": rows("b", 1) } ] })).contains("`sections[0].title` is required"));
    }

    #[test]
    fn call_permission_request_names_its_action() {
        let sent = composed(json!({ "type": "callPermissionRequest", "to": "15551230000", "bodyText": "May we call you?" })).unwrap();
        assert_eq!(
            sent.payload["interactive"],
            json!({ "type": "call_permission_request",
            "body": { "text": "May we call you?" }, "action": { "name": "call_permission_request" } })
        );
    }

    #[test]
    fn product_lists_need_a_header_and_at_most_30_products() {
        let ids: Vec<String> = (0..30).map(|i| format!("sku-{i}")).collect();
        assert!(rule(json!({ "type": "interactiveProducts", "to": "15551230000", "bodyText": "x", "catalogId": "c1",
            "sections": [ { "title": "A", "productRetailerIds": ids } ] })).contains("`headerText` is required"));
        let too_many = composed(
            json!({ "type": "interactiveProducts", "to": "15551230000", "bodyText": "x", "headerText": "h", "catalogId": "c1",
            "sections": [ { "title": "A", "productRetailerIds": ids }, { "title": "B", "productRetailerIds": ["one-more"] } ] }),
        );
        assert!(too_many.is_err());
    }
}
