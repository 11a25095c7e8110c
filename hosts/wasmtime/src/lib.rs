//! The wasmtime host of wats: loads the wats:service component and serves it
//! over HTTP on loopback (`wats serve`). The parts are public so that tests
//! and benchmarks can run the component in-process with fakes.

pub mod dry_run;
/// Fault injection for the fault/retry suite (feature `testing`).
#[cfg(feature = "testing")]
pub mod faults;
pub mod http_server;
pub mod kv;
pub mod otlp;
pub mod outbound;
pub mod runtime;
pub mod services;
pub mod sinks;
pub mod spin_runtime;
