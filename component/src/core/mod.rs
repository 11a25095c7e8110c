//! The leaves every other layer stands on: the host contract and its
//! records, HTTP helpers, secrets and signatures, id checks, limits,
//! metrics, configuration, and the one mapping of errors to HTTP. Nothing
//! here imports another folder of the crate.

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod host;
pub(crate) mod http;
pub(crate) mod ids;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod signing;
pub(crate) mod time;
pub(crate) mod upstream;
