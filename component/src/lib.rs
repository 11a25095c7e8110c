//! wats: a WhatsApp Cloud API webhook and messaging service.
//!
//! All behaviour lives in this crate and runs over the [`Host`] trait, so
//! the same code serves as a WebAssembly component (feature `export`), a
//! Worker and a native library. [`handle`] is the one entry point.
//!
//! The crate is layered, each layer importing only those below it:
//! `core` ← `graph`, `compose`, `manage` ← `context` ← `state` ← `api` ←
//! `app`. docs/architecture.md ("Where things live") walks through them;
//! a test in `app` keeps the direction. This file is the facade: the
//! modules and the names hosts, fuzz targets and tests use.

#![warn(unreachable_pub)]
// Tests may match with `_`: the exhaustiveness that matters is the service's.
#![cfg_attr(test, allow(clippy::wildcard_enum_match_arm))]

mod api;
mod app;
mod context;
mod core;
mod graph;
mod state;

/// Message bodies: checked and turned into Graph's payloads.
pub mod compose;
/// Graph management calls as data, for the live campaign and the CLI.
pub mod manage;

#[cfg(feature = "export")]
mod component;
/// The in-memory host of the unit tests, also for the fuzz targets
/// (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use api::webhook::normalize::normalize;
pub use app::dispatch::{check_config, drain, handle, openapi_json};
pub use app::openapi::document as openapi_document;
pub use core::auth::{sign, signature_valid};
pub use core::error::ApiError;
pub use core::host::{
    block_on, log_line, log_update, Host, KvEntry, KvError, KvOp, KvPage, Level, Measurement,
    OutboundError, OutgoingRequest, Request, Response, Sample, Update,
};
pub use core::http::percent_decode;
pub use core::limits::{MAX_BODY_BYTES, MAX_HEADERS, MAX_HEADER_BYTES};
pub use core::metrics::{Recorder, Totals, DURATION_BUCKETS, SINK_ATTRIBUTES};
pub use core::upstream::{GraphError, MediaError, MetaError};
pub use graph::{parse_reply, CallBody, EndpointFamily, GraphCall, Multipart, Risk};
pub use state::outbox::DrainReport;

/// Settings: the keys the service reads, their defaults and checks, for a
/// CLI that checks a profile without running the service.
pub mod config {
    pub use crate::core::config::{
        is_secret, work_queued, Config, ConfigError, Lookup, Paths, DEFAULT_API_PREFIX,
        DEFAULT_GRAPH_API_VERSION, DEFAULT_GRAPH_BASE_URL, DEFAULT_WEBHOOK_PATH,
        EMBEDDER_DISPATCH_KEY, FORWARD_URL_KEY, KEYS, OPTIONAL_SECRETS, QUEUES_KEY, QUEUE_SCHEME,
        RUNTIME_KEY, STORE_EXCLUSIVE_KEY, STORE_KEY,
    };
    pub use crate::core::ids::is_numeric_id;
    pub use crate::core::signing::SigningKey;

    /// The configuration from any source of settings, checked as the
    /// service checks it (configured paths included).
    pub fn from_settings(get: Lookup<'_>) -> Result<Config, ConfigError> {
        Config::from_settings(get, crate::app::routes::colliding_setting)
    }
}
