//! One Graph call as plain data ([`GraphCall`]), built from checked inputs,
//! and the reading of Graph's reply ([`parse_reply`]). Both are free of any
//! host, so a call runs inside the component (through
//! [`super::GraphClient::run`]) and natively with any HTTP client (the live
//! campaign: [`GraphCall::into_request`] and [`parse_reply`]).

use crate::core::host::{OutgoingRequest, Response};
use crate::core::upstream::{GraphError, MetaError};
use serde::Deserialize;
use serde_json::Value;

/// The endpoint families that label Graph metrics; anything else is `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointFamily {
    Messages,
    Groups,
    /// WABA, phone numbers, business profile, commerce settings.
    Account,
    Templates,
    Flows,
    Media,
    Calls,
}

impl EndpointFamily {
    pub fn label(self) -> &'static str {
        match self {
            EndpointFamily::Messages => "messages",
            EndpointFamily::Groups => "groups",
            EndpointFamily::Account => "account",
            EndpointFamily::Templates => "templates",
            EndpointFamily::Flows => "flows",
            EndpointFamily::Media => "media",
            EndpointFamily::Calls => "calls",
        }
    }
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

#[derive(Deserialize)]
struct ErrorReply {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    error_subcode: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    fbtrace_id: Option<String>,
}

/// Turns a Graph HTTP response into its JSON value or a sanitized error.
pub fn parse_reply(response: &Response) -> Result<Value, GraphError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<Value>(&response.body) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(GraphError::BadReply { status }),
        };
    }
    let meta = serde_json::from_slice::<ErrorReply>(&response.body)
        .ok()
        .map(|reply| MetaError {
            code: reply.error.code,
            subcode: reply.error.error_subcode,
            kind: reply.error.kind.filter(|kind| is_safe_token(kind)),
            fbtrace_id: reply.error.fbtrace_id.filter(|id| is_safe_token(id)),
        });
    let retry_after = response
        .header("retry-after")
        .map(str::trim)
        .filter(|v| is_retry_after(v))
        .map(Into::into);
    Err(GraphError::Rejected {
        status,
        meta,
        retry_after,
    })
}

/// Identifier-like text (Meta's error type, trace id): short, no spaces.
fn is_safe_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/+=".contains(&b))
}

/// Retry-After is echoed verbatim, so only its two legal forms pass:
/// delta-seconds or an HTTP date.
fn is_retry_after(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 40
        && (value.bytes().all(|b| b.is_ascii_digit())
            || value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" ,:".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rate_limits_are_recognised_by_code_or_status() {
        let error = parse_reply(&reply(
            400,
            r#"{"error":{"code":131056,"message":"pair rate limit 15551230000"}}"#,
            &[("Retry-After", "30")],
        ))
        .unwrap_err();
        assert!(error.is_rate_limit());
        assert_eq!(error.retry_after(), Some("30"));
        let error = parse_reply(&reply(429, "not json", &[])).unwrap_err();
        assert!(error.is_rate_limit());
        let error = parse_reply(&reply(
            401,
            r#"{"error":{"code":190,"type":"OAuthException"}}"#,
            &[("retry-after", "5")],
        ))
        .unwrap_err();
        assert!(!error.is_rate_limit());
        assert_eq!(error.retry_after(), None);
    }

    #[test]
    fn non_json_success_is_a_bad_reply() {
        assert_eq!(
            parse_reply(&reply(200, "<html>", &[])),
            Err(GraphError::BadReply { status: 200 })
        );
    }

    #[test]
    fn meta_free_text_is_dropped_and_odd_values_filtered() {
        let error = parse_reply(&reply(
            400,
            r#"{"error":{"code":100,"message":"secret +15551230000","type":"has space","fbtrace_id":"AbC123"}}"#,
            &[("retry-after", "1\r\nx: y")],
        ))
        .unwrap_err();
        let meta = error.meta().unwrap();
        assert_eq!(meta.kind, None);
        assert_eq!(meta.fbtrace_id.as_deref(), Some("AbC123"));
        let mut body = serde_json::json!({});
        error.add_meta_fields(&mut body);
        assert!(!body.to_string().contains("15551230000"));
    }

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
}
