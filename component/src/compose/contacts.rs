//! Contact cards. Inputs are camelCase; each maps to Graph's snake_case.

use super::fields::{invalid, Fields, Limit};
use super::{envelope, message_id, recipient, Composed};
use crate::core::error::ApiError;
use serde_json::{Map, Value};

const FIELD: Limit = Limit::line(256);

/// Reads the listed text fields of an object into Graph's names.
fn texts(fields: &Fields, names: &[(&str, &str)], what: &str) -> Result<Value, ApiError> {
    let allowed: Vec<&str> = names.iter().map(|(camel, _)| *camel).collect();
    fields.only(&allowed, what)?;
    let mut object = Map::new();
    for (camel, snake) in names {
        if let Some(text) = fields.text(camel, FIELD)? {
            object.insert((*snake).to_owned(), text.into());
        }
    }
    Ok(Value::Object(object))
}

/// An array of objects of text fields, up to 20 of them.
fn list(fields: &Fields, name: &str, names: &[(&str, &str)]) -> Result<Option<Value>, ApiError> {
    let items = fields.objects(name, 0, 20)?;
    if items.is_empty() {
        return Ok(None);
    }
    let what = format!("`{}` items", fields.path(name));
    let values = items
        .iter()
        .map(|item| texts(item, names, &what))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Value::Array(values)))
}

const NAME: &[(&str, &str)] = &[
    ("formattedName", "formatted_name"),
    ("firstName", "first_name"),
    ("lastName", "last_name"),
    ("middleName", "middle_name"),
    ("suffix", "suffix"),
    ("prefix", "prefix"),
];
const PHONE: &[(&str, &str)] = &[("phone", "phone"), ("type", "type"), ("waId", "wa_id")];
const EMAIL: &[(&str, &str)] = &[("email", "email"), ("type", "type")];
const URL: &[(&str, &str)] = &[("url", "url"), ("type", "type")];
const ADDRESS: &[(&str, &str)] = &[
    ("street", "street"),
    ("city", "city"),
    ("state", "state"),
    ("zip", "zip"),
    ("country", "country"),
    ("countryCode", "country_code"),
    ("type", "type"),
];
const ORG: &[(&str, &str)] = &[
    ("company", "company"),
    ("department", "department"),
    ("title", "title"),
];

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
}

fn contact(fields: &Fields) -> Result<Value, ApiError> {
    fields.only(
        &[
            "name",
            "phones",
            "emails",
            "urls",
            "addresses",
            "org",
            "birthday",
        ],
        "a contact",
    )?;
    let name_fields = fields.required_object("name")?;
    let name = texts(&name_fields, NAME, "`name`")?;
    if name.get("formatted_name").is_none() {
        return Err(invalid(&name_fields.path("formattedName"), "is required"));
    }
    // Graph wants one name part besides the formatted name.
    if name.as_object().is_some_and(|n| n.len() < 2) {
        return Err(invalid(
            &name_fields.path("firstName"),
            "or another name part (lastName, middleName, suffix, prefix) is required",
        ));
    }
    let mut card = Map::new();
    card.insert("name".into(), name);
    for (field, names) in [
        ("phones", PHONE),
        ("emails", EMAIL),
        ("urls", URL),
        ("addresses", ADDRESS),
    ] {
        if let Some(items) = list(fields, field, names)? {
            card.insert(field.into(), items);
        }
    }
    if let Some(org) = fields.object("org")? {
        card.insert("org".into(), texts(&org, ORG, "`org`")?);
    }
    if let Some(birthday) = fields.text("birthday", Limit::line(10))? {
        if !is_date(birthday) {
            return Err(invalid(
                &fields.path("birthday"),
                "must be a date as YYYY-MM-DD",
            ));
        }
        card.insert("birthday".into(), birthday.into());
    }
    Ok(Value::Object(card))
}

pub(super) fn compose(fields: &Fields) -> Result<Composed, ApiError> {
    fields.only(
        &["type", "to", "contacts", "replyToMessageId"],
        "type `contacts`",
    )?;
    let to = recipient(fields)?;
    let cards = fields
        .objects("contacts", 1, 20)?
        .iter()
        .map(contact)
        .collect::<Result<Vec<_>, _>>()?;
    let reply_to = message_id(fields, "replyToMessageId")?;
    Ok(envelope(to, "contacts", Value::Array(cards), reply_to))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{composed, rule};
    use serde_json::json;

    #[test]
    fn camel_case_in_snake_case_out() {
        let sent = composed(
            json!({ "type": "contacts", "to": "15551230000", "contacts": [ {
            "name": { "formattedName": "Ada Lovelace", "firstName": "Ada" },
            "phones": [ { "phone": "+15551230001", "type": "CELL", "waId": "15551230001" } ],
            "addresses": [ { "city": "London", "countryCode": "GB" } ],
            "org": { "company": "Analytical Engines" },
            "birthday": "1815-12-10"
        } ] }),
        )
        .unwrap();
        assert_eq!(
            sent.payload["contacts"],
            json!([ {
            "name": { "formatted_name": "Ada Lovelace", "first_name": "Ada" },
            "phones": [ { "phone": "+15551230001", "type": "CELL", "wa_id": "15551230001" } ],
            "addresses": [ { "city": "London", "country_code": "GB" } ],
            "org": { "company": "Analytical Engines" },
            "birthday": "1815-12-10"
        } ])
        );
    }

    #[test]
    fn cards_need_names_and_valid_dates() {
        assert!(
            rule(json!({ "type": "contacts", "to": "15551230000", "contacts": [] }))
                .contains("`contacts` must have 1 to 20 items")
        );
        assert!(rule(json!({ "type": "contacts", "to": "15551230000", "contacts": [ { "name": { "firstName": "A" } } ] })).contains("`contacts[0].name.formattedName` is required"));
        assert!(rule(json!({ "type": "contacts", "to": "15551230000", "contacts": [ { "name": { "formattedName": "A" } } ] })).contains("`contacts[0].name.firstName`"));
        assert!(rule(json!({ "type": "contacts", "to": "15551230000", "contacts": [ { "name": { "formattedName": "A", "firstName": "A" }, "birthday": "10/12/1815" } ] })).contains("`contacts[0].birthday`"));
    }
}
