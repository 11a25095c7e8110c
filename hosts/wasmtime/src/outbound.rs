//! The transport behind `outbound-http` for `--live`: real HTTP to Graph.
//! Dry-run's stand-in is `crate::dry_run`.

use crate::runtime::{OutboundError, OutgoingRequest, Response};
use crate::services::{BoxFuture, Outbound};
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
