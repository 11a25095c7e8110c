//! The transports behind `outbound-http`: real HTTP for `--live`, and a
//! no-network Graph for dry-run that answers sends with synthetic ids.

use crate::runtime::{OutboundError, OutgoingRequest, Response};
use crate::services::{BoxFuture, Outbound};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a Graph call may take before the service reports a timeout.
pub const GRAPH_TIMEOUT: Duration = Duration::from_secs(15);

pub struct LiveHttp {
    client: reqwest::Client,
}

impl LiveHttp {
    pub fn new() -> anyhow::Result<LiveHttp> {
        let client = reqwest::Client::builder()
            .timeout(GRAPH_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wats/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LiveHttp { client })
    }
}

impl Outbound for LiveHttp {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| OutboundError::Other("invalid method".into()))?;
            let mut builder = self.client.request(method, &request.url).body(request.body);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            // Error texts may quote the URL, which holds account ids: only
            // the class of failure crosses into the component.
            let response = builder.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect();
            let body = response.bytes().await.map_err(classify)?.to_vec();
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}

fn classify(error: reqwest::Error) -> OutboundError {
    if error.is_timeout() {
        OutboundError::Timeout
    } else if error.is_connect() {
        OutboundError::Unreachable("connect failed".into())
    } else {
        OutboundError::Other("request failed".into())
    }
}

/// Dry-run Graph: never touches the network. Sends get a 200 in Graph's
/// shape with a synthetic message id; anything else gets an empty object.
pub struct DryRunGraph {
    sent: AtomicU64,
    /// Part of every id, so that a restart over the same persistent store
    /// does not hand out the ids of the previous run's records again.
    started_millis: u64,
}

impl Default for DryRunGraph {
    fn default() -> Self {
        let started_millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        DryRunGraph {
            sent: AtomicU64::new(0),
            started_millis,
        }
    }
}

/// The one media object of dry-run: a 1×1 PNG, served by every media id.
const DRY_RUN_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];
const DRY_RUN_MEDIA_PATH: &str = "/dry-run-media/";

/// `scheme://host` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

impl DryRunGraph {
    /// Media reads: a numeric object id without a query is a media lookup
    /// (other object reads ask for `fields`), answered with a URL on the
    /// same origin, which then serves the PNG.
    fn media(request: &OutgoingRequest) -> Option<(String, serde_json::Value)> {
        use sha2::Digest;
        if request.method != "GET" {
            return None;
        }
        if request.url.contains(DRY_RUN_MEDIA_PATH) {
            return Some(("image/png".into(), serde_json::Value::Null));
        }
        let id = request.url.rsplit('/').next()?;
        if !wats::config::is_numeric_id(id) || request.url.contains('?') {
            return None;
        }
        let metadata = serde_json::json!({
            "messaging_product": "whatsapp",
            "id": id,
            "url": format!("{}{DRY_RUN_MEDIA_PATH}{id}", origin(&request.url)),
            "mime_type": "image/png",
            "sha256": hex::encode(sha2::Sha256::digest(DRY_RUN_PNG)),
            "file_size": DRY_RUN_PNG.len(),
        });
        Some(("application/json".into(), metadata))
    }
}

impl Outbound for DryRunGraph {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        if let Some((content_type, metadata)) = DryRunGraph::media(&request) {
            let body = match metadata {
                serde_json::Value::Null => DRY_RUN_PNG.to_vec(),
                metadata => metadata.to_string().into_bytes(),
            };
            let response = Response {
                status: 200,
                headers: vec![("content-type".into(), content_type)],
                body,
            };
            return Box::pin(async move { Ok(response) });
        }
        let body = if request.url.ends_with("/media") && request.method == "POST" {
            let number = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
            serde_json::json!({ "id": format!("{}{number:06}", self.started_millis) })
        } else if request.url.ends_with("/messages") && request.method == "POST" {
            let number = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
            let to = serde_json::from_slice::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|body| body.get("to").and_then(|to| to.as_str()).map(str::to_owned))
                .unwrap_or_default();
            serde_json::json!({
                "messaging_product": "whatsapp",
                "contacts": [{ "input": to, "wa_id": to.trim_start_matches('+') }],
                "messages": [{ "id": format!("wamid.DRYRUN{}-{number}", self.started_millis) }]
            })
        } else {
            serde_json::json!({})
        };
        let response = Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        };
        Box::pin(async move { Ok(response) })
    }
}
