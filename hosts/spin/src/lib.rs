//! The wats service as a Spin app: a `wasi:http/proxy` component that links
//! the service crate (`component/`) and implements its host interface over
//! the standard interfaces Spin 3 offers. It holds no service logic.
//!
//! - HTTP in and out: `wasi:http` (`http.rs`).
//! - kv: Spin's SQLite, one statement per batch (`sql.rs`), or, when the
//!   app grants no database, `wasi:keyvalue` with compare-and-swap
//!   (`store.rs`).
//! - Configuration: Spin variables through `wasi:config`, `WATS_APP_SECRET`
//!   read as `wats_app_secret`.
//! - Events: the service's queue for the application's endpoints, drained
//!   after each request that may have queued some; else a PII-free log line.
//! - Metrics: totals kept in the store, since an instance serves one
//!   request; written after the response.
//! - The outbox: drained right after a request that queued a send; Spin has
//!   no timer of its own (docs/hosts/spin.md).

// Natively (the workspace's unit tests) nothing is exported, so the host
// code is unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

#[allow(warnings)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "imports", generate_all });
}

mod host;
mod http;
mod sql;
mod store;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};
use wats::Host;

/// Outbox items (and events) one drain after a request handles at most,
/// and the drains one request runs at most (a delivery of many updates for
/// several endpoints queues hundreds of events).
const DRAIN_BATCH: u32 = 50;
const MAX_DRAIN_ROUNDS: usize = 20;

struct WatsSpin;

impl Guest for WatsSpin {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let host = host::SpinHost::open();
        let request = http::read_request(&request);
        let method = request.method.clone();
        let response = wats::block_on(wats::handle(&host, request));
        let queued = wats::config::work_queued(&|key| host.config(key), &method, response.status);
        http::write_response(out, response);
        // The response is complete; the instance lives on until this
        // returns. The request's metric totals are written first, so that
        // `/metrics` counts it by the time a client can ask again; then
        // what was queued goes out now rather than on a timer Spin does not
        // have.
        host.flush_metrics();
        if queued {
            for _ in 0..MAX_DRAIN_ROUNDS {
                let report = wats::block_on(wats::drain(&host, DRAIN_BATCH));
                if !report.took_all_it_could(DRAIN_BATCH) {
                    break;
                }
            }
            host.flush_metrics();
        }
    }
}

// Export names hold `:` and `@`, which native linkers refuse: the native
// build (the workspace's unit tests) leaves the export out.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(WatsSpin);

#[cfg(test)]
mod tests {
    /// The manifest declares every setting the service reads, secrets as
    /// secret, and hands each to the component.
    #[test]
    fn the_manifest_declares_every_setting() {
        let manifest = include_str!("../spin.toml");
        let keys = wats::config::KEYS
            .iter()
            .map(|(key, secret)| (*key, *secret))
            .chain([(wats::config::FORWARD_URL_KEY, false)]);
        for (key, secret) in keys {
            let name = key.to_ascii_lowercase();
            let declared = manifest
                .lines()
                .find(|line| line.starts_with(&format!("{name} = {{")))
                .unwrap_or_else(|| panic!("{name} is not declared in [variables]"));
            assert_eq!(declared.contains("secret = true"), secret, "{declared}");
            let handed = format!("{name} = \"{{{{ {name} }}}}\"");
            assert!(
                manifest.contains(&handed),
                "{name} is not a component variable"
            );
        }
    }
}
