//! HTTP/1.1 on loopback in front of the runtime: moves bytes between hyper
//! and the component's request/response records, nothing else. The only
//! answers made here are for failures that leave no component response (a
//! trap, a body that never finishes arriving).

use crate::runtime::{CommitFailed, Level, Request, Runtime};
use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wats::ApiError;

/// The component answers 413 above its own limits (4 MiB at most); reading
/// one byte more than that is enough for it to see an oversized body.
const BODY_READ_CAP: usize = 4 * 1024 * 1024 + 1;
/// hyper's read buffer, which bounds the request line and headers.
const READ_BUFFER_BYTES: usize = 4 * wats::MAX_HEADER_BYTES;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    accept(listener, shutdown, move |request| {
        let runtime = runtime.clone();
        async move { answer(&runtime, request).await }
    })
    .await
}

/// Serves every connection on `listener` over HTTP/1.1 with `respond`,
/// until `shutdown` completes: the loop `wats serve` and `wats spin` share.
pub async fn accept<R, F, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    respond: R,
) -> Result<()>
where
    R: Fn(hyper::Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue, // e.g. too many open files: keep serving
            },
            () = &mut shutdown => return Ok(()),
        };
        let respond = respond.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(request);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            // A client that goes away mid-request is not an error worth a log.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                // Twice the service's limits: between the two the component
                // answers with its envelope; beyond, hyper answers 431
                // without buffering more.
                .max_headers(2 * wats::MAX_HEADERS)
                .max_buf_size(READ_BUFFER_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    runtime: &Runtime,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read_capped(body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return host_error(ApiError::InvalidRequest(
                "The request body could not be read.".into(),
            ))
        }
        Err(_) => return host_error(ApiError::BodyTimeout),
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path_with_query: parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".into()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    match runtime.handle(request).await {
        Ok(response) => to_hyper(response.status, &response.headers, response.body),
        Err(error) if error.is::<CommitFailed>() => host_error(ApiError::StoreUnavailable),
        Err(_) => {
            // The error's text (a trap and its wasm backtrace) stays out of
            // the log: it could quote request data.
            runtime
                .services()
                .log
                .write(Level::Error, "wats.host.request_failed", &[]);
            host_error(ApiError::Internal)
        }
    }
}

async fn read_capped(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() >= BODY_READ_CAP {
                bytes.truncate(BODY_READ_CAP);
                break;
            }
        }
    }
    Ok(bytes)
}

fn to_hyper(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| host_error(ApiError::Internal))
}

/// What the host answers when the component cannot: the service's own
/// envelope for the error (mapped by `wats::ApiError`).
pub fn host_error(error: ApiError) -> hyper::Response<Full<Bytes>> {
    let response = error.into_response();
    // The service's own envelope always builds; no loop back to here.
    to_hyper(response.status, &response.headers, response.body)
}
