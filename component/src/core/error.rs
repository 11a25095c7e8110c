//! Every way a request can fail, and the one place that maps them to HTTP.
//! Messages are fixed text written here: they may name a field or a setting,
//! never a value the caller sent or a secret.

use super::config::ConfigError;
use super::host::Response;
use super::http::json_response;
use super::upstream::{GraphError, MediaError};
use serde_json::json;

#[derive(Debug, PartialEq)]
pub enum ApiError {
    /// The body or a parameter is malformed; the message names what and why.
    InvalidRequest(String),
    /// Missing or wrong service bearer token on an API route.
    Unauthorized,
    /// Unknown route, and also the answer to a bad token on operator routes.
    NotFound,
    MethodNotAllowed {
        allow: String,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The webhook signature is missing or does not match the body.
    InvalidSignature,
    /// The webhook verification request does not match the verify token.
    VerificationFailed,
    Graph(GraphError),
    /// The application did not take an update; Meta should deliver it again.
    DispatchFailed,
    /// The kv store failed; nothing was acknowledged.
    StoreUnavailable,
    /// The host runs without a store, and this route needs one.
    PersistenceNotConfigured,
    /// The Idempotency-Key was used before with another body.
    IdempotencyConflict,
    /// The first request with this Idempotency-Key is still in flight.
    IdempotencyInProgress,
    /// An update of this delivery is claimed by another delivery and not
    /// done yet: Meta should deliver it again.
    UpdateInFlight,
    InvalidConfig(ConfigError),
    /// The host could not hand the request over or run the service (a trap,
    /// a runtime failure); answered by the host, never by a handler.
    Internal,
    /// The request body did not arrive in time (the host's read deadline).
    BodyTimeout,
    /// The path and query are longer than `core::limits` allows.
    UriTooLong,
    /// More headers, or more header bytes, than `core::limits` allows.
    HeadersTooLarge,
    /// Graph's media was unusable: no URL, too large, or not the bytes its
    /// metadata describes.
    Media(MediaError),
}

impl ApiError {
    /// The stable error code of the JSON envelope.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::InvalidSignature => "invalid_signature",
            ApiError::VerificationFailed => "verification_failed",
            ApiError::Graph(_) => "graph_request_failed",
            ApiError::DispatchFailed => "dispatch_failed",
            ApiError::StoreUnavailable => "store_unavailable",
            ApiError::PersistenceNotConfigured => "persistence_not_configured",
            ApiError::IdempotencyConflict => "idempotency_conflict",
            ApiError::IdempotencyInProgress => "idempotency_in_progress",
            ApiError::UpdateInFlight => "update_in_flight",
            ApiError::InvalidConfig(_) => "invalid_config",
            ApiError::Internal => "internal_error",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::Media(_) => "media_download_failed",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidRequest(_) => 400,
            ApiError::Unauthorized | ApiError::InvalidSignature => 401,
            ApiError::VerificationFailed => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::IdempotencyConflict
            | ApiError::IdempotencyInProgress
            | ApiError::UpdateInFlight => 409,
            ApiError::BodyTimeout => 408,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UriTooLong => 414,
            ApiError::HeadersTooLarge => 431,
            ApiError::Internal => 500,
            ApiError::Graph(error) if error.is_rate_limit() => 503,
            ApiError::Graph(_) | ApiError::Media(_) => 502,
            ApiError::DispatchFailed
            | ApiError::StoreUnavailable
            | ApiError::PersistenceNotConfigured
            | ApiError::InvalidConfig(_) => 503,
        }
    }

    /// The envelope's message: fixed text that may name a field or a setting.
    pub fn message(&self) -> String {
        match self {
            ApiError::InvalidRequest(message) => message.clone(),
            ApiError::Unauthorized => "Missing or invalid bearer token.".into(),
            ApiError::NotFound => "Not found.".into(),
            ApiError::MethodNotAllowed { .. } => "Method not allowed.".into(),
            ApiError::PayloadTooLarge { limit } => {
                format!("Request body is larger than {limit} bytes.")
            }
            ApiError::InvalidSignature => "Missing or invalid X-Hub-Signature-256.".into(),
            ApiError::VerificationFailed => "Webhook verification failed.".into(),
            ApiError::Graph(error) => error.message().into(),
            ApiError::DispatchFailed => "An update could not be delivered; retry later.".into(),
            ApiError::StoreUnavailable => "State store unavailable; retry later.".into(),
            ApiError::PersistenceNotConfigured => {
                "This route needs a state store, and this host runs without one.".into()
            }
            ApiError::IdempotencyConflict => {
                "This Idempotency-Key was used with another request body.".into()
            }
            ApiError::IdempotencyInProgress => {
                "A request with this Idempotency-Key is still in progress; retry later.".into()
            }
            ApiError::UpdateInFlight => {
                "An update of this delivery is being handled by another delivery; retry later."
                    .into()
            }
            ApiError::InvalidConfig(error) => error.to_string(),
            ApiError::Internal => "The service failed to handle the request.".into(),
            ApiError::BodyTimeout => "The request body did not arrive in time.".into(),
            ApiError::UriTooLong => "The request path and query are longer than 2048 bytes.".into(),
            // The figures are `core::limits`' (a unit test keeps them equal).
            ApiError::HeadersTooLarge => {
                "The request has more than 100 headers or more than 16384 bytes of them.".into()
            }
            ApiError::Media(error) => error.to_string(),
        }
    }

    pub fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code(), "message": self.message() });
        let mut headers = Vec::new();
        match &self {
            ApiError::MethodNotAllowed { allow } => headers.push(("allow".into(), allow.clone())),
            ApiError::Graph(graph) => {
                graph.add_meta_fields(&mut error);
                if let Some(retry_after) = graph.retry_after() {
                    headers.push(("retry-after".into(), retry_after.to_owned()));
                }
            }
            ApiError::DispatchFailed
            | ApiError::StoreUnavailable
            | ApiError::IdempotencyInProgress => {
                headers.push(("retry-after".into(), "5".into()));
            }
            ApiError::InvalidRequest(_)
            | ApiError::Unauthorized
            | ApiError::NotFound
            | ApiError::PayloadTooLarge { .. }
            | ApiError::InvalidSignature
            | ApiError::VerificationFailed
            | ApiError::PersistenceNotConfigured
            | ApiError::IdempotencyConflict
            | ApiError::UpdateInFlight
            | ApiError::InvalidConfig(_)
            | ApiError::Internal
            | ApiError::BodyTimeout
            | ApiError::UriTooLong
            | ApiError::HeadersTooLarge
            | ApiError::Media(_) => {}
        }
        let mut response = json_response(self.status(), &json!({ "error": error }));
        response.headers.extend(headers);
        response
    }
}

impl From<GraphError> for ApiError {
    fn from(error: GraphError) -> Self {
        ApiError::Graph(error)
    }
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        ApiError::Media(error)
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        ApiError::InvalidConfig(error)
    }
}
