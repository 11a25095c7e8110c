//! Moves requests and responses between wasi:http and the service.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};
use wats::{OutboundError, Response};

/// What a body may hold before the reading stops: the service refuses a
/// longer request body (413) from its length alone.
const MAX_REQUEST_BODY: usize = wats::MAX_BODY_BYTES + 1;
/// Graph answers are small; anything past this is cut short.
const MAX_RESPONSE_BODY: usize = 8 << 20;
/// The same deadlines as `wats serve`: connect 5 s, answer 15 s.
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
const ANSWER_TIMEOUT_NS: u64 = 15_000_000_000;
/// wasi:io writes at most 4096 bytes per blocking call.
const WRITE_CHUNK: usize = 4096;

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

fn to_method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.into()),
    }
}

fn header_list(fields: &Fields) -> Vec<(String, String)> {
    fields
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect()
}

/// Reads a body stream to its end or to `cap` bytes, whichever comes first.
fn read_stream(stream: &InputStream, cap: usize) -> Result<Vec<u8>, StreamError> {
    let mut body = Vec::new();
    while body.len() < cap {
        match stream.blocking_read((cap - body.len()).min(64 << 10) as u64) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(body)
}

fn read_body(body: IncomingBody, cap: usize) -> Option<Vec<u8>> {
    let stream = body.stream().ok()?;
    let bytes = read_stream(&stream, cap).ok();
    drop(stream);
    // Trailers are of no interest; dropping the body ends it.
    drop(body);
    bytes
}

/// The service's view of an incoming request. A body that cannot be read
/// reaches the service as empty, which every body-taking route refuses.
pub fn read_request(request: &IncomingRequest) -> wats::Request {
    let body = request
        .consume()
        .ok()
        .and_then(|body| read_body(body, MAX_REQUEST_BODY))
        .unwrap_or_default();
    wats::Request {
        method: method_name(&request.method()),
        path_with_query: request.path_with_query().unwrap_or_else(|| "/".into()),
        headers: header_list(&request.headers()),
        body,
    }
}

fn fields(headers: &[(String, String)]) -> Fields {
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
        .collect();
    // The service's own headers are all valid; should one not be, the
    // response still goes out without it.
    Fields::from_list(&entries).unwrap_or_else(|_| Fields::new())
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), ()> {
    let stream = body.write()?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk).map_err(|_| ())?;
    }
    Ok(())
}

pub fn write_response(out: ResponseOutparam, response: Response) {
    let outgoing = OutgoingResponse::new(fields(&response.headers));
    let _ = outgoing.set_status_code(response.status);
    let Ok(body) = outgoing.body() else { return };
    ResponseOutparam::set(out, Ok(outgoing));
    // A client that went away mid-body is no error of the service.
    let _ = write_body(&body, &response.body);
    let _ = OutgoingBody::finish(body, None);
}

/// Splits an absolute http(s) URL into scheme, authority and path.
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        (Scheme::Http, url.strip_prefix("http://")?)
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return None;
    }
    Some((scheme, authority, if path.is_empty() { "/" } else { path }))
}

fn outbound_error(code: &ErrorCode) -> OutboundError {
    // Reasons stay generic: runtime messages may quote the destination.
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => OutboundError::Timeout,
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            OutboundError::Denied("the runtime refuses this destination".into())
        }
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => OutboundError::Unreachable("connection failed".into()),
        _ => OutboundError::Other("the request failed".into()),
    }
}

fn other(reason: &str) -> OutboundError {
    OutboundError::Other(reason.into())
}

/// One outbound request through wasi:http's outgoing handler.
pub fn send(request: &wats::OutgoingRequest) -> Result<Response, OutboundError> {
    let (scheme, authority, path) =
        split_url(&request.url).ok_or_else(|| other("not an absolute http(s) URL"))?;
    let outgoing = OutgoingRequest::new(fields(&request.headers));
    outgoing
        .set_method(&to_method(&request.method))
        .and_then(|_| outgoing.set_scheme(Some(&scheme)))
        .and_then(|_| outgoing.set_authority(Some(authority)))
        .and_then(|_| outgoing.set_path_with_query(Some(path)))
        .map_err(|_| other("invalid outbound request"))?;
    let body = outgoing
        .body()
        .map_err(|_| other("invalid outbound request"))?;
    let options = RequestOptions::new();
    // A runtime that does not support a deadline keeps its own.
    let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
    let _ = options.set_first_byte_timeout(Some(ANSWER_TIMEOUT_NS));
    let _ = options.set_between_bytes_timeout(Some(ANSWER_TIMEOUT_NS));
    let pending =
        outgoing_handler::handle(outgoing, Some(options)).map_err(|code| outbound_error(&code))?;
    write_body(&body, &request.body).map_err(|_| other("writing the request failed"))?;
    OutgoingBody::finish(body, None).map_err(|code| outbound_error(&code))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(outbound_error(&code)),
        _ => return Err(other("no response")),
    };
    let headers = header_list(&response.headers());
    let status = response.status();
    let body = response
        .consume()
        .ok()
        .and_then(|body| read_body(body, MAX_RESPONSE_BODY))
        .ok_or_else(|| other("reading the response failed"))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (scheme, authority, path) =
            split_url("https://graph.facebook.com/v25.0/123/messages?x=1").unwrap();
        assert!(matches!(scheme, Scheme::Https));
        assert_eq!(authority, "graph.facebook.com");
        assert_eq!(path, "/v25.0/123/messages?x=1");
        let (scheme, authority, path) = split_url("http://127.0.0.1:9").unwrap();
        assert!(matches!(scheme, Scheme::Http));
        assert_eq!((authority, path), ("127.0.0.1:9", "/"));
        assert!(split_url("ftp://example.test/").is_none());
        assert!(split_url("https:///path").is_none());
    }
}
