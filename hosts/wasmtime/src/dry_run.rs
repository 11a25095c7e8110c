//! The Graph of dry-run mode: never touches the network, and answers as
//! Graph would in shape, so that every route works locally: sends get
//! synthetic message ids, uploads synthetic media ids, every media id is a
//! 1×1 PNG (served from the same origin, with its real digest), and the
//! phone number and templates have plausible values. Only Graph's origin
//! is stood in for: the application's endpoints (`WATS_EVENTS_ENDPOINTS`),
//! which a local run means to reach, get real HTTP (`DryRun`).

use crate::outbound::LiveHttp;
use crate::runtime::{OutboundError, OutgoingRequest, Response};
use crate::services::{BoxFuture, Outbound};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use wats::manage::media::TINY_PNG;

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

const MEDIA_PATH: &str = "/dry-run-media/";
const TEMPLATE_ID: &str = "300000000000001";

/// `scheme://host` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn template() -> Value {
    json!({
        "id": TEMPLATE_ID, "name": "hello_world", "language": "en_US", "status": "APPROVED",
        "category": "UTILITY", "components": [{ "type": "BODY", "text": "Hello World" }],
    })
}

impl DryRunGraph {
    fn next(&self) -> u64 {
        self.sent.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Graph's answer: a content type and a body.
    fn reply(&self, request: &OutgoingRequest) -> (&'static str, Vec<u8>) {
        use sha2::Digest;
        let url = request.url.as_str();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let last = path.rsplit('/').next().unwrap_or_default();
        let numeric = wats::config::is_numeric_id(last);
        let body = match request.method.as_str() {
            "GET" if path.contains(MEDIA_PATH) => return ("image/png", TINY_PNG.to_vec()),
            "GET" if numeric && query.is_empty() => json!({
                "messaging_product": "whatsapp",
                "id": last,
                "url": format!("{}{MEDIA_PATH}{last}", origin(url)),
                "mime_type": "image/png",
                "sha256": hex::encode(sha2::Sha256::digest(TINY_PNG)),
                "file_size": TINY_PNG.len(),
            }),
            "GET" if numeric && query.contains("components") => template(),
            "GET" if numeric && query.contains("quality_rating") => json!({
                "id": last, "verified_name": "wats dry run", "quality_rating": "GREEN",
                "name_status": "APPROVED", "code_verification_status": "VERIFIED",
                "platform_type": "CLOUD_API", "throughput": { "level": "STANDARD" },
            }),
            "GET" if path.ends_with("/message_templates") => {
                json!({ "data": [template()], "paging": { "cursors": { "after": "RFJZLVJVTg" } } })
            }
            "POST" if path.ends_with("/media") => {
                json!({ "id": format!("{}{:06}", self.started_millis, self.next()) })
            }
            "POST" if path.ends_with("/messages") => {
                let to = serde_json::from_slice::<Value>(&request.body)
                    .ok()
                    .and_then(|body| body["to"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{ "input": to, "wa_id": to.trim_start_matches('+') }],
                    "messages": [{ "id": format!("wamid.DRYRUN{}-{}", self.started_millis, self.next()) }]
                })
            }
            _ => json!({}),
        };
        ("application/json", body.to_string().into_bytes())
    }
}

impl Outbound for DryRunGraph {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        let (content_type, body) = self.reply(&request);
        let response = Response {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body,
        };
        Box::pin(async move { Ok(response) })
    }
}

/// Dry-run's transport: the stand-in for requests to Graph's base URL,
/// real HTTP for any other (the application's endpoints).
pub struct DryRun {
    graph: DryRunGraph,
    graph_base_url: String,
    network: LiveHttp,
}

impl DryRun {
    pub fn new(graph_base_url: &str) -> anyhow::Result<DryRun> {
        Ok(DryRun {
            graph: DryRunGraph::default(),
            graph_base_url: graph_base_url.trim_end_matches('/').to_owned(),
            network: LiveHttp::new()?,
        })
    }
}

impl Outbound for DryRun {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        if request.url.starts_with(&self.graph_base_url) {
            self.graph.send(request)
        } else {
            self.network.send(request)
        }
    }
}
