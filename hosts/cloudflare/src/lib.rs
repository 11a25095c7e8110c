//! The wats service as a Cloudflare Worker. The Worker links the service
//! crate (`component/`) natively and implements its host interface over the
//! Workers runtime; it holds no service logic of its own.
//!
//! - HTTP: the Worker's `fetch` event, converted to the service's request.
//! - Outbound HTTP: `Fetch`.
//! - kv: a Durable Object with SQLite storage (`store.rs`), one per phone
//!   number id, so set-if-absent is atomic and listing is ordered.
//! - Configuration: Worker vars and secrets.
//! - Events: a PII-free log line, or POSTed to `WATS_EVENTS_FORWARD_URL`.
//! - Metrics: totals per isolate.
//! - The outbox: drained by the cron trigger (`scheduled` event), and once
//!   right after a request that queued a send.

mod host;
mod store;

pub use store::WatsState;

use host::WorkerHost;
use worker::{event, Context, Env, Headers, Request, Response, ScheduleContext, ScheduledEvent};

/// Outbox items one cron run sends at most.
const DRAIN_BATCH: u32 = 50;

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    // Never the runtime's exception page: a request the runtime cannot hand
    // over (or a response it cannot build) gets the service's envelope.
    match serve(request, env.clone()).await {
        Ok(response) => {
            // A send was queued (202): drain once after answering, rather
            // than leave it for the next cron run up to a minute away.
            if response.status_code() == 202 {
                ctx.wait_until(async move {
                    let host = WorkerHost::new(env);
                    wats::drain(&host, DRAIN_BATCH).await;
                });
            }
            Ok(response)
        }
        Err(_) => to_worker(wats::ApiError::Internal.into_response()),
    }
}

async fn serve(mut request: Request, env: Env) -> worker::Result<Response> {
    let host = WorkerHost::new(env);
    let url = request.url()?;
    let path_with_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // Bodies past the service's largest limit are refused by the service
    // (413) from their length: it needs no more than that plus one byte.
    let mut body = request.bytes().await.unwrap_or_default();
    body.truncate(wats::MAX_BODY_BYTES + 1);
    let request = wats::Request {
        method: request.method().to_string(),
        path_with_query,
        headers: request.headers().entries().collect(),
        body,
    };
    to_worker(wats::handle(&host, request).await)
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

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let host = WorkerHost::new(env);
    wats::drain(&host, DRAIN_BATCH).await;
}
