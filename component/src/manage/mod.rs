//! The Graph management surface: typed calls for what an operator (and the
//! live campaign) does besides sending messages: WABA and phone-number
//! reads, templates, Flows, media, read receipts and typing, calling.
//!
//! Each builder returns a [`GraphCall`](crate::GraphCall): plain data built
//! from checked inputs, run by the component's Graph client or natively by
//! the live campaign. Every id is checked before it becomes a path segment,
//! so no input can reach another Graph endpoint.

pub mod assets;
pub mod media;
pub mod messaging;

use crate::core::ids::is_numeric_id;
use serde_json::Value;
use std::fmt;

/// An input the management client refuses; names the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManageError {
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

impl fmt::Display for ManageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManageError::Invalid { field, expected } => write!(f, "{field} must be {expected}."),
        }
    }
}

pub(crate) fn invalid(field: &'static str, expected: &'static str) -> ManageError {
    ManageError::Invalid { field, expected }
}

/// A Graph object id: WABA, phone number, template, Flow and media ids are
/// all decimal.
pub fn graph_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str, ManageError> {
    if is_numeric_id(id) {
        Ok(id)
    } else {
        Err(invalid(field, "a numeric Graph id"))
    }
}

/// Query values are percent-encoded except for unreserved characters.
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Graph's cursor paging: `data` and `paging.cursors.after` when more exist.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub data: Vec<Value>,
    pub after: Option<String>,
}

impl Page {
    pub fn from_reply(reply: &Value) -> Page {
        Page {
            data: reply["data"].as_array().cloned().unwrap_or_default(),
            after: reply["paging"]["next"]
                .as_str()
                .and(reply["paging"]["cursors"]["after"].as_str())
                .map(Into::into),
        }
    }
}

/// The id Graph returns for what a call created (`{"id": …}`), checked.
pub fn created_id(reply: &Value) -> Option<&str> {
    reply["id"].as_str().filter(|id| is_numeric_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_query_values_cannot_escape_their_segment() {
        assert!(graph_id("mediaId", "123").is_ok());
        for bad in ["", "12/34", "../me", "1?x=2", "１２"] {
            let error = graph_id("mediaId", bad).unwrap_err().to_string();
            assert_eq!(error, "mediaId must be a numeric Graph id.");
        }
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn pages_follow_the_after_cursor_only_when_a_next_page_exists() {
        let more = serde_json::json!({"data": [{"id": "1"}], "paging": {"cursors": {"after": "QVFI"}, "next": "https://x"}});
        assert_eq!(Page::from_reply(&more).after.as_deref(), Some("QVFI"));
        let last = serde_json::json!({"data": [], "paging": {"cursors": {"after": "QVFI"}}});
        assert_eq!(Page::from_reply(&last).after, None);
    }
}
