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

impl Outbound for DryRunGraph {
    fn send(&self, request: OutgoingRequest) -> BoxFuture<'_, Result<Response, OutboundError>> {
        let body = if request.url.ends_with("/messages") && request.method == "POST" {
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
