//! The Graph API client: every call goes through the host's outbound HTTP
//! with the access token (never the service bearer token). Failures keep
//! only Meta's structured identifiers; Meta's free-form message may quote
//! account data and is dropped.

use crate::config::Config;
use crate::error::ApiError;
use crate::host::{Host, Level, OutboundError, OutgoingRequest, Response};
use crate::manage::{CallBody, GraphCall};
use crate::metrics::Recorder;
use crate::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Meta error codes that mean "slow down" (besides HTTP 429).
const RATE_LIMIT_CODES: &[i64] = &[4, 80007, 130429, 131048, 131056];

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

/// Meta's structured error details, safe to return and log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaError {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub kind: Option<String>,
    pub fbtrace_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GraphError {
    /// Graph answered with a non-2xx status.
    Rejected {
        status: u16,
        meta: Option<MetaError>,
        retry_after: Option<String>,
    },
    /// Graph answered 2xx with a body that is not the JSON we expect.
    BadReply {
        status: u16,
    },
    Timeout,
    Unreachable,
}

impl GraphError {
    pub fn is_rate_limit(&self) -> bool {
        match self {
            GraphError::Rejected { status, meta, .. } => {
                *status == 429
                    || meta
                        .as_ref()
                        .and_then(|meta| meta.code)
                        .is_some_and(|code| RATE_LIMIT_CODES.contains(&code))
            }
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<&str> {
        match self {
            GraphError::Rejected { retry_after, .. } if self.is_rate_limit() => {
                retry_after.as_deref()
            }
            _ => None,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            GraphError::Timeout => "Graph request timed out.",
            GraphError::Unreachable => "Graph API unreachable.",
            GraphError::Rejected { .. } if self.is_rate_limit() => "Graph request rate limited.",
            _ => "Graph request failed.",
        }
    }

    pub fn meta(&self) -> Option<&MetaError> {
        match self {
            GraphError::Rejected { meta, .. } => meta.as_ref(),
            _ => None,
        }
    }

    /// Adds metaCode, metaSubcode, metaType and fbtraceId to an error body.
    pub fn add_meta_fields(&self, error: &mut Value) {
        let (Some(meta), Some(body)) = (self.meta(), error.as_object_mut()) else {
            return;
        };
        insert_opt(body, "metaCode", meta.code.map(Value::from));
        insert_opt(body, "metaSubcode", meta.subcode.map(Value::from));
        insert_opt(body, "metaType", meta.kind.clone().map(Value::from));
        insert_opt(body, "fbtraceId", meta.fbtrace_id.clone().map(Value::from));
    }

    fn status_class(&self) -> &'static str {
        match self {
            GraphError::Rejected { status, .. } | GraphError::BadReply { status } => {
                crate::metrics::status_class(*status)
            }
            GraphError::Timeout | GraphError::Unreachable => "none",
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            GraphError::Rejected { .. } if self.is_rate_limit() => "rate_limited",
            GraphError::Rejected { .. } => "rejected",
            GraphError::BadReply { .. } => "bad_reply",
            GraphError::Timeout => "timeout",
            GraphError::Unreachable => "unreachable",
        }
    }
}

fn insert_opt(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        body.insert(key.into(), value);
    }
}

pub struct GraphClient<'a, H: Host> {
    pub host: &'a H,
    pub config: &'a Config,
    pub recorder: &'a Recorder,
}

impl<'a, H: Host> GraphClient<'a, H> {
    /// The client for this request: its host, settings and metrics.
    pub fn for_request(ctx: &'a Context<'_, H>) -> Result<Self, ApiError> {
        Ok(GraphClient {
            host: ctx.host,
            config: ctx.config()?,
            recorder: &ctx.recorder,
        })
    }

    /// POSTs a JSON body to `/{version}/{path}` and returns the parsed reply.
    pub async fn post_json(
        &self,
        family: EndpointFamily,
        path: &str,
        body: &Value,
    ) -> Result<Value, GraphError> {
        self.call(family, "POST", path, Some(body)).await
    }

    /// Calls `/{version}/{path}` (which may carry a query) with an optional
    /// JSON body and returns the parsed reply.
    pub async fn call(
        &self,
        family: EndpointFamily,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let body = body.map_or(CallBody::None, CallBody::json);
        self.run(GraphCall::new(method, family, path.into(), body))
            .await
    }

    /// Runs a management call and returns the parsed reply.
    pub async fn run(&self, call: GraphCall) -> Result<Value, GraphError> {
        let family = call.family;
        let request = call.into_request(
            &self.config.graph_base_url,
            &self.config.graph_api_version,
            self.config.access_token.expose(),
        );
        // A transport failure is recorded by `fetch`.
        let response = self.fetch(family, request).await?;
        let reply = parse_reply(&response);
        match &reply {
            Ok(_) => self.record_success(family),
            Err(error) => self.record_failure(family, error),
        }
        reply
    }

    /// Sends a request and returns Graph's response of any status.
    pub async fn fetch(
        &self,
        family: EndpointFamily,
        request: OutgoingRequest,
    ) -> Result<Response, GraphError> {
        match self.host.send(request).await {
            Ok(response) => Ok(response),
            Err(error) => {
                let error = match error {
                    OutboundError::Timeout => GraphError::Timeout,
                    _ => GraphError::Unreachable,
                };
                self.record_failure(family, &error);
                Err(error)
            }
        }
    }

    pub fn record_success(&self, family: EndpointFamily) {
        self.recorder
            .graph_operation(family.label(), "2xx", "success");
    }

    /// Counts and logs a failure.
    pub fn record_failure(&self, family: EndpointFamily, error: &GraphError) {
        self.recorder
            .graph_operation(family.label(), error.status_class(), error.outcome());
        self.log_failure(error);
    }

    fn log_failure(&self, error: &GraphError) {
        let meta = error.meta().cloned().unwrap_or_default();
        let text = |value: Option<String>| value.unwrap_or_else(|| "null".into());
        self.host.log(
            Level::Warn,
            "wats.graph.failure",
            &[
                ("outcome", error.outcome().into()),
                ("metaCode", text(meta.code.map(|c| c.to_string()))),
                ("metaSubcode", text(meta.subcode.map(|c| c.to_string()))),
                ("metaType", text(meta.kind)),
                ("fbtraceId", text(meta.fbtrace_id)),
                ("at", self.host.now_millis().to_string()),
            ],
        );
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

/// Graph's base64url-like tokens: Group ids and paging cursors.
pub fn is_opaque_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b))
}

/// Meta's prefixed ids (`wamid.…`, `wacid.…`): the prefix, then base64.
pub fn is_prefixed_id(prefix: &str, text: &str) -> bool {
    text.len() > prefix.len()
        && text.len() <= 200
        && text.starts_with(prefix)
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-=+".contains(&b))
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
    fn tokens_and_ids_cannot_leave_their_path_segment() {
        assert!(is_opaque_token(
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
        ));
        assert!(!is_opaque_token("../x"));
        assert!(!is_opaque_token(""));
        assert!(is_prefixed_id("wacid.", "wacid.ABC="));
        assert!(!is_prefixed_id("wacid.", "wacid."));
        assert!(!is_prefixed_id("wacid.", "wamid.ABC"));
        assert!(!is_prefixed_id("wacid.", "wacid.a/b"));
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
}
