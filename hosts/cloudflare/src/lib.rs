//! The wats service as a Cloudflare Worker. The Worker links the service
//! crate (`component/`) natively and implements its host interface over the
//! Workers runtime; it holds no service logic of its own.
//!
//! - Requests: the Worker forwards each one, in one hop, to the
//!   deployment's Durable Object (`store.rs`), and the service answers it there
//!   over the object's SQL storage. Without the binding the Worker answers
//!   itself, with no store.
//! - Outbound HTTP: `Fetch`.
//! - Configuration: Worker vars and secrets.
//! - Events: the service's queue for the application's endpoints (over
//!   `Fetch`, or a Cloudflare Queue binding for `queue:NAME`), drained by
//!   the object's alarm, armed right after each request that may have
//!   queued some; else a PII-free log line.
//! - Metrics: the totals of the isolate that serves (the object's).
//! - The outbox: drained by the object's alarm, set to when the next queued
//!   send is due.

mod host;
mod store;

pub use store::WatsState;

use host::{setting, WorkerHost, STATE_BINDING};
use worker::{event, Context, Env, Headers, Request, Response};

#[event(fetch)]
async fn fetch(request: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    // One Durable Object per deployment, named after its first (default)
    // number: it holds the state of every number the deployment serves and
    // serializes what touches it, so a delivery with changes for two
    // numbers is still one claim per update. (A one-number deployment
    // keeps the object it had before lists.)
    if let Ok(namespace) = env.durable_object(STATE_BINDING) {
        let numbers = setting(&env, "WATS_PHONE_NUMBER_ID").unwrap_or_default();
        let name = match numbers.split(',').next().map(str::trim) {
            Some(first) if !first.is_empty() => first.to_owned(),
            _ => "default".to_owned(),
        };
        let forwarded = match namespace.id_from_name(&name).and_then(|id| id.get_stub()) {
            Ok(stub) => stub.fetch_with_request(request).await,
            Err(error) => Err(error),
        };
        // Never the runtime's exception page: the service's envelope.
        return forwarded.or_else(|_| to_worker(wats::ApiError::StoreUnavailable.into_response()));
    }
    serve(&WorkerHost::new(env, None), request).await
}

/// Answers a request with the service, over `host`.
pub(crate) async fn serve(host: &WorkerHost, mut request: Request) -> worker::Result<Response> {
    // Never the runtime's exception page: a request the runtime cannot hand
    // over (or a response it cannot build) gets the service's envelope.
    let response = match to_wats(&mut request).await {
        Ok(request) => wats::handle(host, request).await,
        Err(_) => wats::ApiError::Internal.into_response(),
    };
    to_worker(response).or_else(|_| to_worker(wats::ApiError::Internal.into_response()))
}

async fn to_wats(request: &mut Request) -> worker::Result<wats::Request> {
    let url = request.url()?;
    let path_with_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // Bodies past the service's largest limit are refused by the service
    // (413) from their length: it needs no more than that plus one byte.
    let mut body = request.bytes().await.unwrap_or_default();
    body.truncate(wats::MAX_BODY_BYTES + 1);
    Ok(wats::Request {
        method: request.method().to_string(),
        path_with_query,
        headers: request.headers().entries().collect(),
        body,
    })
}

fn to_worker(response: wats::Response) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.append(name, value)?;
    }
    Ok(Response::from_bytes(response.body)?
        .with_status(response.status)
        .with_headers(headers))
}
