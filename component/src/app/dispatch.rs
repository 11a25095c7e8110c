//! The dispatcher: the one path every request takes. It resolves the
//! route, applies the declaration's policies (body limit, auth, JSON depth,
//! idempotency) and hands the operation to its surface in `api`; it also
//! runs the outbox drain a host schedules.

use super::openapi;
use super::routes::{self, Auth, Handler, Operation, ParamStyle, Resolution};
use crate::api::{console, events, groups, history, manage, messages, operator, webhook};
use crate::context::Context;
use crate::core::auth::{secrets_equal, signature_valid};
use crate::core::config::{ConfigError, Paths};
use crate::core::error::ApiError;
use crate::core::host::{Host, Level, Request, Response};
use crate::core::http::{json_response, Params};
use crate::core::limits;
use crate::state::{self, idempotency, outbox};

/// Route label for requests that match no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The context of a request or a drain, with the route table's path check.
fn context<H: Host>(host: &H) -> Context<'_, H> {
    Context::new(host, routes::colliding_setting)
}

/// Handles one HTTP request. Never panics on any input.
pub async fn handle<H: Host>(host: &H, request: Request) -> Response {
    let started = host.monotonic_nanos();
    let ctx = context(host);
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
    let response = respond(&ctx, result);
    let seconds = host.monotonic_nanos().saturating_sub(started) as f64 / 1e9;
    ctx.recorder
        .http_request(&route_label, &request.method, response.status, seconds);
    ctx.recorder.flush(host);
    response
}

async fn run<H: Host>(
    ctx: &Context<'_, H>,
    operation: &Operation,
    params: &Params,
    request: &Request,
) -> Result<Response, ApiError> {
    check_body_size(operation, request)?;
    // Authorized first: an unauthenticated caller learns nothing about the
    // body it sent, not even that it nests too deep.
    authorize(ctx, operation, request)?;
    if operation.request_body.is_some() && !operation.raw_body {
        limits::check_json_depth(&request.body)?;
    }
    if !operation.idempotent {
        return call(ctx, operation.handler, params, request).await;
    }
    match idempotency::begin(ctx, operation.operation_id, request).await? {
        idempotency::Begin::NotRequested => call(ctx, operation.handler, params, request).await,
        idempotency::Begin::Replay(response) => Ok(response),
        idempotency::Begin::Claimed(claim) => {
            let result = call(ctx, operation.handler, params, request).await;
            // What the claim stores (or releases) is the answer as sent.
            let response = respond(ctx, result);
            idempotency::finish(ctx, claim, &response).await;
            Ok(response)
        }
    }
}

/// The answer to a result: an error is counted and becomes its envelope.
fn respond<H: Host>(ctx: &Context<'_, H>, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| {
        ctx.recorder.error(error.code(), ctx.host.now_millis());
        error.into_response()
    })
}

/// Hands the operation to its surface.
async fn call<H: Host>(
    ctx: &Context<'_, H>,
    handler: Handler,
    params: &Params,
    request: &Request,
) -> Result<Response, ApiError> {
    match handler {
        Handler::Operator(op) => operator::run(ctx, op, routes::inventory).await,
        Handler::Console(op) => console::run(ctx, op),
        Handler::OpenApi => Ok(json_response(200, &openapi::document(&ctx.config()?.paths))),
        Handler::Webhook(op) => webhook::run(ctx, op, request).await,
        Handler::Events(op) => events::run(ctx, op, request, params).await,
        Handler::Messages(op) => messages::run(ctx, op, request, params).await,
        Handler::History(op) => history::run(ctx, op, request, params).await,
        Handler::Groups(op) => groups::run(ctx, op, request, params).await,
        Handler::Manage(op) => manage::run(ctx, op, request, params).await,
    }
}

/// Sends the outbox's due items and the events due to the application's
/// endpoints: the entry point a host calls on a schedule (a timer in `wats
/// serve`, the Durable Object's alarm, `drain()` in the JS package).
pub async fn drain<H: Host>(host: &H, limit: u32) -> outbox::DrainReport {
    let ctx = context(host);
    let report = state::drain(&ctx, limit).await.unwrap_or_else(|error| {
        // Stable code only: the next scheduled drain tries again.
        host.log(
            Level::Warn,
            "wats.outbox.drain_failed",
            &[("code", error.code().into())],
        );
        outbox::DrainReport::default()
    });
    if report.handled_any() {
        host.log(Level::Info, "wats.outbox.drained", &report.log_fields());
    }
    ctx.recorder.flush(host);
    report
}

/// The settings' first fault, as an embedder that can refuse to start
/// reports it (the JS constructors' `WatsServiceError`); none when a
/// request would find the configuration usable.
pub fn check_config<H: Host>(host: &H) -> Option<ConfigError> {
    context(host).config_fault()
}

/// The OpenAPI document of the routes these settings give: the document
/// `GET /openapi.json` serves, without a request.
pub fn openapi_json<H: Host>(host: &H) -> Result<String, ConfigError> {
    let paths = Paths::load(host)?;
    Ok(openapi::document(&paths).to_string())
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

/// The declaration's credential, checked: bearer tokens, and the webhook
/// signature over the raw body. The verify token is checked by its
/// operation, which answers the challenge.
fn authorize<H: Host>(
    ctx: &Context<'_, H>,
    operation: &Operation,
    request: &Request,
) -> Result<(), ApiError> {
    let failure = match operation.auth {
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
