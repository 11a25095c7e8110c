//! wats: a WhatsApp Cloud API webhook and messaging service.
//!
//! All behaviour lives in this crate and runs over the [`Host`] trait, so
//! the same code serves as a WebAssembly component (feature `export`), a
//! Worker and a native library. [`handle`] is the one entry point.

pub mod auth;
pub mod compose;
pub mod config;
pub mod error;
pub mod graph;
pub mod groups;
pub mod host;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod manage;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod outbox;
pub mod projections;
pub mod routes;
pub mod schemas;
pub mod store;
pub mod webhook;

#[cfg(feature = "export")]
mod component;
/// The in-memory host of the unit tests, also for the fuzz targets
/// (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// Runs a future to completion by polling it. For hosts whose imports are
/// synchronous (the component's, Spin's, the test host's): every future of
/// the service then completes on its first poll; looping keeps this correct
/// should an import ever yield.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

pub use host::{
    forward_update, log_line, Host, KvError, KvPage, Level, OutboundError, OutgoingRequest,
    Request, Response, Sample, Update, FORWARD_URL_KEY,
};

use auth::{secrets_equal, signature_valid};
use config::{Config, ConfigError, Paths};
use error::ApiError;
use metrics::Recorder;
use routes::{Auth, Handler, Operation, ParamStyle, Resolution};
use std::cell::OnceCell;

/// What a request's handlers share: the host, the configuration (loaded on
/// first use: `/healthz` needs none of it) and the request's metric samples.
pub struct Context<'a, H: Host> {
    pub host: &'a H,
    config: OnceCell<Result<Config, ConfigError>>,
    pub recorder: Recorder,
}

impl<'a, H: Host> Context<'a, H> {
    pub fn new(host: &'a H) -> Self {
        Context {
            host,
            config: OnceCell::new(),
            recorder: Recorder::default(),
        }
    }

    /// The configuration, or the `invalid_config` error naming the bad key.
    pub fn config(&self) -> Result<&Config, ApiError> {
        let loaded = self.config.get_or_init(|| Config::load(self.host));
        loaded
            .as_ref()
            .map_err(|error| ApiError::InvalidConfig(error.clone()))
    }
}

/// Route label for requests that match no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Handles one HTTP request. Never panics on any input.
pub async fn handle<H: Host>(host: &H, request: Request) -> Response {
    let started = host.monotonic_nanos();
    let ctx = Context::new(host);
    // Routing needs only the paths. With invalid path settings it uses the
    // defaults, so that /healthz answers while /readyz and the service
    // routes report the bad key (through `ctx.config()`).
    let paths = Paths::load(host).unwrap_or_default();
    let (route_label, result) = match limits::check_request(&request) {
        // Refused before routing: the target or headers are over a limit.
        Err(error) => (UNMATCHED_ROUTE.to_owned(), Err(error)),
        Ok(()) => match routes::resolve(&paths, &request.method, request.path()) {
            Resolution::Found {
                route,
                operation,
                params,
            } => (
                route.template(&paths, ParamStyle::Colon),
                run(&ctx, operation, &params, &request).await,
            ),
            Resolution::MethodNotAllowed { route } => (
                route.template(&paths, ParamStyle::Colon),
                Err(ApiError::MethodNotAllowed {
                    allow: route.allow_header(),
                }),
            ),
            Resolution::NotFound => (UNMATCHED_ROUTE.to_owned(), Err(ApiError::NotFound)),
        },
    };
    let response = result.unwrap_or_else(|error| {
        ctx.recorder.error(error.code());
        error.into_response()
    });
    let seconds = host.monotonic_nanos().saturating_sub(started) as f64 / 1e9;
    ctx.recorder
        .http_request(&route_label, &request.method, response.status, seconds);
    ctx.recorder.flush(host);
    response
}

async fn run<H: Host>(
    ctx: &Context<'_, H>,
    operation: &Operation,
    params: &[(&str, String)],
    request: &Request,
) -> Result<Response, ApiError> {
    check_body_size(operation, request)?;
    // Authorized first: an unauthenticated caller learns nothing about the
    // body it sent, not even that it nests too deep.
    authorize(ctx, operation, request)?;
    if operation.request_body.is_some() && !operation.raw_body {
        limits::check_json_depth(&request.body)?;
    }
    match operation.handler {
        Handler::Healthz => Ok(operator::healthz()),
        Handler::Readyz => operator::readyz(ctx),
        Handler::Status => operator::status(ctx).await,
        Handler::Metrics => operator::metrics(ctx),
        Handler::Diagnostics => operator::diagnostics(ctx).await,
        Handler::OpenApi => Ok(http::json_response(
            200,
            &openapi::document(&ctx.config()?.paths),
        )),
        Handler::WebhookVerify => webhook::verify(ctx, request),
        Handler::WebhookReceive => webhook::receive(ctx, request).await,
        Handler::SendText => {
            let send = messages::send_text_route(ctx, request);
            idempotent(ctx, operation, request, send).await
        }
        Handler::SendMessage => {
            let send = messages::send_message_route(ctx, request);
            idempotent(ctx, operation, request, send).await
        }
        Handler::MarkRead => {
            messages::mark_read_route(ctx, request, param(params, "messageId")).await
        }
        Handler::ListMessages => projections::list_route(ctx, request).await,
        Handler::GetMessage => projections::get_route(ctx, param(params, "messageId")).await,
        Handler::GetOutboxItem => outbox::get_route(ctx, param(params, "outboxId")).await,
        Handler::Group(action) => groups::route(ctx, action, request, params).await,
        Handler::Manage(action) => {
            let id = params.first().map_or("", |(_, id)| id.as_str());
            manage::routes::route(ctx, action, request, id).await
        }
    }
}

/// A path parameter by name (routing guarantees it is there).
fn param<'a>(params: &'a [(&str, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_default()
}

/// Sends the outbox's due items: the entry point a host calls on a
/// schedule (a timer in `wats serve`, a cron trigger on Workers).
pub async fn drain<H: Host>(host: &H, limit: u32) -> outbox::DrainReport {
    let ctx = Context::new(host);
    let report = match ctx.config() {
        Ok(_) => outbox::drain(&ctx, limit).await,
        Err(error) => Err(error),
    };
    let report = report.unwrap_or_else(|error| {
        // Stable code only: the next scheduled drain tries again.
        host.log(
            Level::Warn,
            "wats.outbox.drain_failed",
            &[("code", error.code().into())],
        );
        outbox::DrainReport::default()
    });
    if report.claimed > 0 {
        host.log(Level::Info, "wats.outbox.drained", &report.log_fields());
    }
    ctx.recorder.flush(host);
    report
}

/// Runs a send under the request's `Idempotency-Key`, if it has one.
async fn idempotent<H: Host>(
    ctx: &Context<'_, H>,
    operation: &Operation,
    request: &Request,
    send: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    match idempotency::begin(ctx, operation.operation_id, request).await? {
        idempotency::Begin::NotRequested => send.await,
        idempotency::Begin::Replay(response) => Ok(response),
        idempotency::Begin::Claimed(claim) => {
            let response = send.await.unwrap_or_else(|error| {
                ctx.recorder.error(error.code());
                error.into_response()
            });
            idempotency::finish(ctx, claim, &response).await;
            Ok(response)
        }
    }
}

fn check_body_size(operation: &Operation, request: &Request) -> Result<(), ApiError> {
    let limit = operation.max_body_bytes;
    if operation.request_body.is_none() {
        return Ok(()); // bodies of GET requests are ignored
    }
    let declared = request
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if request.body.len() > limit || declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// Bearer checks happen here; webhook credentials are checked by the webhook
/// handlers, which need the query and the raw body.
fn authorize<H: Host>(
    ctx: &Context<'_, H>,
    operation: &Operation,
    request: &Request,
) -> Result<(), ApiError> {
    let failure = match operation.auth {
        // The challenge is checked by its handler, which answers it.
        Auth::None | Auth::VerifyToken => return Ok(()),
        Auth::Signature => {
            let secret = ctx.config()?.app_secret.expose();
            let header = request.header("x-hub-signature-256");
            return if signature_valid(secret, header, &request.body) {
                Ok(())
            } else {
                Err(ApiError::InvalidSignature)
            };
        }
        Auth::Bearer => ApiError::Unauthorized,
        Auth::Operator => ApiError::NotFound,
    };
    let expected = ctx.config()?.service_bearer_token.expose();
    match request.bearer_token() {
        Some(token) if secrets_equal(token, expected) => Ok(()),
        _ => Err(failure),
    }
}
