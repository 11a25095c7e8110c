//! The Graph client: every call goes through the host's outbound HTTP with
//! the access token (never the service bearer token), and is counted and,
//! on failure, logged with Meta's structured identifiers only.

use super::call::{parse_reply, CallBody, EndpointFamily, GraphCall};
use crate::core::config::Config;
use crate::core::host::{Host, Level, OutboundError, OutgoingRequest, Response};
use crate::core::metrics::Recorder;
use crate::core::upstream::GraphError;
use serde_json::Value;

pub(crate) struct GraphClient<'a, H: Host> {
    pub host: &'a H,
    pub config: &'a Config,
    pub recorder: &'a Recorder,
}

impl<'a, H: Host> GraphClient<'a, H> {
    pub(crate) fn new(host: &'a H, config: &'a Config, recorder: &'a Recorder) -> Self {
        GraphClient {
            host,
            config,
            recorder,
        }
    }

    /// POSTs a JSON body to `/{version}/{path}` and returns the parsed reply.
    pub(crate) async fn post_json(
        &self,
        family: EndpointFamily,
        path: &str,
        body: &Value,
    ) -> Result<Value, GraphError> {
        self.call(family, "POST", path, Some(body)).await
    }

    /// Calls `/{version}/{path}` (which may carry a query) with an optional
    /// JSON body and returns the parsed reply.
    pub(crate) async fn call(
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
    pub(crate) async fn run(&self, call: GraphCall) -> Result<Value, GraphError> {
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
            Ok(_) => self.record_success(family, response.status),
            Err(error) => self.record_failure(family, error),
        }
        reply
    }

    /// Sends a request and returns Graph's response of any status.
    pub(crate) async fn fetch(
        &self,
        family: EndpointFamily,
        request: OutgoingRequest,
    ) -> Result<Response, GraphError> {
        match self.host.send(request).await {
            Ok(response) => Ok(response),
            Err(error) => {
                let error = match error {
                    OutboundError::Timeout => GraphError::Timeout,
                    OutboundError::Unreachable(_)
                    | OutboundError::Denied(_)
                    | OutboundError::Other(_) => GraphError::Unreachable,
                };
                self.record_failure(family, &error);
                Err(error)
            }
        }
    }

    pub(crate) fn record_success(&self, family: EndpointFamily, status: u16) {
        self.recorder
            .graph_operation(family.label(), Some(status), "success");
    }

    /// Counts and logs a failure.
    pub(crate) fn record_failure(&self, family: EndpointFamily, error: &GraphError) {
        self.recorder
            .graph_operation(family.label(), error.status(), error.outcome());
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
