//! The Graph management surface: typed calls for what an operator (and the
//! live campaign) does besides sending messages: WABA and phone-number
//! reads, templates, Flows, media, read receipts and typing, calling.
//!
//! A call is plain data ([`GraphCall`]) built from checked inputs, so it
//! runs inside the component (through [`crate::graph::GraphClient::run`])
//! and natively (any HTTP client: [`GraphCall::to_request`] and
//! [`crate::graph::parse_reply`]). Every id is checked before it becomes a
//! path segment, so no input can reach another Graph endpoint.

pub mod assets;
pub mod media;
pub mod messaging;
pub mod routes;

use crate::graph::EndpointFamily;
use crate::host::OutgoingRequest;
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

/// What a call carries, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub enum CallBody {
    None,
    /// Serialized JSON.
    Json(Vec<u8>),
    /// `multipart/form-data`, already encoded.
    Multipart(Multipart),
}

impl CallBody {
    pub fn json(value: &Value) -> CallBody {
        CallBody::Json(serde_json::to_vec(value).unwrap_or_default())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Multipart {
    pub boundary: String,
    pub bytes: Vec<u8>,
}

impl Multipart {
    /// Encodes text fields and one file. The boundary is derived from the
    /// content, so the same upload always encodes the same way, and it is
    /// checked not to occur in the file.
    pub fn encode(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Multipart {
        use sha2::{Digest, Sha256};
        let (file_name, content_type, bytes) = file;
        let mut salt = 0u32;
        let boundary = loop {
            let digest = Sha256::new()
                .chain_update(bytes)
                .chain_update(salt.to_le_bytes())
                .finalize();
            let boundary = format!("wats-{}", hex::encode(&digest[..12]));
            if !contains(bytes, boundary.as_bytes()) {
                break boundary;
            }
            salt += 1;
        };
        let mut out = Vec::with_capacity(bytes.len() + 512);
        for (name, value) in fields {
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Multipart {
            boundary,
            bytes: out,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// How risky a call is, as the live campaign classifies it: the harness
/// gates each class differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    ReadOnly,
    SideEffect,
    Destructive,
}

/// One Graph call: method, path below the API version (with its query),
/// body, and the labels it is counted and logged under.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphCall {
    pub method: &'static str,
    pub path: String,
    pub body: CallBody,
    pub family: EndpointFamily,
    pub risk: Risk,
}

impl GraphCall {
    /// The risk follows the method (GET reads, DELETE destroys, the rest
    /// has side effects); [`GraphCall::destructive`] marks the exceptions.
    pub(crate) fn new(
        method: &'static str,
        family: EndpointFamily,
        path: String,
        body: CallBody,
    ) -> GraphCall {
        let risk = match method {
            "GET" => Risk::ReadOnly,
            "DELETE" => Risk::Destructive,
            _ => Risk::SideEffect,
        };
        GraphCall {
            method,
            path,
            body,
            family,
            risk,
        }
    }

    pub(crate) fn get(family: EndpointFamily, path: String) -> GraphCall {
        GraphCall::new("GET", family, path, CallBody::None)
    }

    pub(crate) fn post(family: EndpointFamily, path: String, body: &Value) -> GraphCall {
        GraphCall::new("POST", family, path, CallBody::json(body))
    }

    pub(crate) fn delete(family: EndpointFamily, path: String) -> GraphCall {
        GraphCall::new("DELETE", family, path, CallBody::None)
    }

    pub(crate) fn destructive(mut self) -> GraphCall {
        self.risk = Risk::Destructive;
        self
    }

    /// The HTTP request, with the access token (never the service token).
    /// It takes the call, so an upload's bytes are moved, not copied.
    pub fn into_request(
        self,
        base_url: &str,
        version: &str,
        access_token: &str,
    ) -> OutgoingRequest {
        let mut headers = vec![
            ("authorization".into(), format!("Bearer {access_token}")),
            ("accept".into(), "application/json".into()),
        ];
        let body = match self.body {
            CallBody::None => Vec::new(),
            CallBody::Json(bytes) => {
                headers.push(("content-type".into(), "application/json".into()));
                bytes
            }
            CallBody::Multipart(form) => {
                headers.push((
                    "content-type".into(),
                    format!("multipart/form-data; boundary={}", form.boundary),
                ));
                form.bytes
            }
        };
        OutgoingRequest {
            method: self.method.into(),
            url: format!("{base_url}/{version}/{}", self.path),
            headers,
            body,
        }
    }

    /// The JSON body, for tests.
    #[cfg(test)]
    pub(crate) fn body_json(&self) -> Value {
        match &self.body {
            CallBody::Json(bytes) => serde_json::from_slice(bytes).unwrap_or_default(),
            _ => Value::Null,
        }
    }
}

/// A Graph object id: WABA, phone number, template, Flow and media ids are
/// all decimal.
pub fn graph_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str, ManageError> {
    if crate::config::is_numeric_id(id) {
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
    reply["id"]
        .as_str()
        .filter(|id| crate::config::is_numeric_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_frame_the_file_and_pick_a_boundary_not_in_it() {
        let form = Multipart::encode(
            &[("messaging_product", "whatsapp")],
            ("a.txt", "text/plain", b"hi"),
        );
        let text = String::from_utf8(form.bytes.clone()).unwrap();
        assert!(text.starts_with(&format!("--{}\r\n", form.boundary)));
        assert!(text.contains("name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"));
        assert!(text.contains("filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"));
        assert!(text.ends_with(&format!("--{}--\r\n", form.boundary)));
        // The same upload always encodes the same way.
        let again = Multipart::encode(
            &[("messaging_product", "whatsapp")],
            ("a.txt", "text/plain", b"hi"),
        );
        assert_eq!(again, form);
    }

    #[test]
    fn requests_carry_the_access_token_and_the_content_type() {
        let call = GraphCall::post(
            EndpointFamily::Messages,
            "1/messages".into(),
            &serde_json::json!({"a": 1}),
        );
        assert_eq!(call.risk, Risk::SideEffect);
        let request = call.into_request("http://127.0.0.1:1", "v25.0", "token-canary");
        assert_eq!(request.url, "http://127.0.0.1:1/v25.0/1/messages");
        assert!(request
            .headers
            .contains(&("authorization".into(), "Bearer token-canary".into())));
        assert!(request
            .headers
            .contains(&("content-type".into(), "application/json".into())));
    }

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
