//! Limits on what a request may be, checked before routing (the target and
//! headers) and before a body is parsed (JSON nesting). Each limit is far
//! above anything Meta or a well-behaved client sends, and each has its own
//! clear error.

use crate::core::error::ApiError;
use crate::core::host::Request;

/// The longest request target (path and query) accepted; the longest
/// legitimate one, a message list page with its cursor, is under 100 bytes.
pub(crate) const MAX_TARGET_BYTES: usize = 2048;
pub const MAX_HEADERS: usize = 100;
/// Names and values together; Workers allows 32 KiB, Meta sends under 2 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Meta's deepest payloads (interactive replies, templates) nest about 10.
pub(crate) const MAX_JSON_DEPTH: usize = 32;
/// Meta batches at most 1000 updates into one delivery.
pub(crate) const MAX_UPDATES_PER_DELIVERY: usize = 1000;
/// The refusal of a delivery over MAX_UPDATES_PER_DELIVERY, figure written
/// out (a test keeps the two equal).
pub(crate) const TOO_MANY_UPDATES: &str = "A delivery may hold at most 1000 updates.";

/// Bodies of Meta's webhook deliveries reach 3 MB; leave room above that.
pub(crate) const WEBHOOK_MAX_BODY: usize = 4 * 1024 * 1024;
pub(crate) const API_MAX_BODY: usize = 256 * 1024;
/// Uploads through the edge; Graph takes larger files directly.
pub(crate) const MEDIA_MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// The largest body any route accepts: a host may stop reading after this
/// many bytes plus one (the service then answers 413).
pub const MAX_BODY_BYTES: usize = WEBHOOK_MAX_BODY;

/// Checks the request line and headers.
pub(crate) fn check_request(request: &Request) -> Result<(), ApiError> {
    if request.path_with_query.len() > MAX_TARGET_BYTES {
        return Err(ApiError::UriTooLong);
    }
    let header_bytes: usize = request
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if request.headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge);
    }
    Ok(())
}

/// Refuses a body that nests arrays and objects deeper than the limit,
/// before a parser recurses into it. Brackets inside strings do not count.
pub(crate) fn check_json_depth(body: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ApiError::InvalidRequest(
                        "JSON may nest at most 32 levels deep.".into(),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn json_depth_is_counted_outside_strings_only() {
        assert!(check_json_depth(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
        assert!(check_json_depth(nested(MAX_JSON_DEPTH + 1).as_bytes()).is_err());
        let in_string = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(check_json_depth(in_string.as_bytes()).is_ok());
    }

    #[test]
    fn messages_state_the_limits() {
        let headers = ApiError::HeadersTooLarge.into_response();
        let text = String::from_utf8(headers.body).unwrap();
        assert!(text.contains(&format!("more than {MAX_HEADERS} headers")));
        assert!(text.contains(&format!("more than {MAX_HEADER_BYTES} bytes")));
        let Err(ApiError::InvalidRequest(depth)) = check_json_depth(&[b'['; 40]) else {
            panic!("too deep");
        };
        assert!(depth.contains(&format!("at most {MAX_JSON_DEPTH} levels")));
        let target = String::from_utf8(ApiError::UriTooLong.into_response().body).unwrap();
        assert!(target.contains(&format!("longer than {MAX_TARGET_BYTES} bytes")));
        let updates = TOO_MANY_UPDATES;
        assert!(updates.contains(&format!("at most {MAX_UPDATES_PER_DELIVERY} updates")));
    }

    #[test]
    fn long_targets_and_header_floods_are_refused() {
        let request = |path: String, headers: usize| Request {
            method: "GET".into(),
            path_with_query: path,
            headers: (0..headers)
                .map(|n| (format!("x-{n}"), "v".into()))
                .collect(),
            body: Vec::new(),
        };
        assert!(check_request(&request("/healthz".into(), MAX_HEADERS)).is_ok());
        assert_eq!(
            check_request(&request(format!("/{}", "a".repeat(MAX_TARGET_BYTES)), 0))
                .map_err(|e| e.status()),
            Err(414)
        );
        assert_eq!(
            check_request(&request("/healthz".into(), MAX_HEADERS + 1)).map_err(|e| e.status()),
            Err(431)
        );
    }
}
