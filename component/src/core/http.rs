//! Small helpers over the host's request and response records.

use super::error::ApiError;
use super::host::{find_header, Request, Response};
use serde::Serialize;

pub(crate) const JSON: &str = "application/json";
/// The page sizes of the paged routes (`?limit=`, `PageLimit` in OpenAPI).
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;

/// `?limit=`: 1 to 100, 50 when absent.
pub(crate) fn page_limit(request: &Request) -> Result<u32, ApiError> {
    limit_within(request, DEFAULT_PAGE, MAX_PAGE)
}

/// `?limit=`: 1 to `max`, `default` when absent.
pub(crate) fn limit_within(request: &Request, default: u32, max: u32) -> Result<u32, ApiError> {
    match request.query("limit") {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!("`limit` must be an integer from 1 to {max}."))
            }),
    }
}

pub(crate) fn json_response<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response {
        status,
        headers: vec![("content-type".into(), JSON.into())],
        body,
    }
}

pub(crate) fn text_response(status: u16, content_type: &str, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into_bytes(),
    }
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn path(&self) -> &str {
        let end = self
            .path_with_query
            .find(['?', '#'])
            .unwrap_or(self.path_with_query.len());
        &self.path_with_query[..end]
    }

    /// The decoded value of the first query parameter with this name.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path_with_query.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or("");
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key)? == name)
                .then(|| percent_decode(value))
                .flatten()
        })
    }

    /// The bearer token of the Authorization header, if it has that form.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// A route's path parameters by name, as routing matched them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl Params {
    pub(crate) fn new(pairs: Vec<(&'static str, String)>) -> Params {
        Params(pairs)
    }

    /// The decoded value of the parameter `name`. Routing guarantees the
    /// route's own parameters; any other name is empty, which no id check
    /// accepts.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(found, _)| *found == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// Decodes a query component: `%XX` escapes and `+` as a space.
pub fn percent_decode(input: &str) -> Option<String> {
    decode(input, true)
}

/// Decodes a path segment: `%XX` escapes only (a `+` stays a `+`).
pub(crate) fn decode_segment(input: &str) -> Option<String> {
    decode(input, false)
}

/// None for malformed escapes or bytes that are not UTF-8.
fn decode(input: &str, plus_is_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path_with_query: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let req = request("/webhook?hub.mode=subscribe&hub.challenge=a%20b+c&x");
        assert_eq!(req.path(), "/webhook");
        assert_eq!(req.query("hub.challenge").as_deref(), Some("a b c"));
        assert_eq!(req.query("x").as_deref(), Some(""));
        assert_eq!(req.query("missing"), None);
        assert_eq!(request("/w?a=%zz").query("a"), None);
    }

    #[test]
    fn bearer_token_needs_the_scheme() {
        let mut req = request("/");
        req.headers
            .push(("Authorization".into(), "Bearer  abc ".into()));
        assert_eq!(req.bearer_token(), Some("abc"));
        req.headers[0].1 = "Basic abc".into();
        assert_eq!(req.bearer_token(), None);
        req.headers[0].1 = "Bearer ".into();
        assert_eq!(req.bearer_token(), None);
    }
}
