//! The WebAssembly component: `wats:service/handler` exported over the
//! world's imports. Imports are synchronous, so every future of the service
//! completes on its first poll and a trivial executor suffices.

use crate::block_on;
use crate::core::host::{
    self, Host, KvEntry, KvError, KvOp, KvPage, Level, Measurement, OutboundError, OutgoingRequest,
    Response, Sample, Update,
};

wit_bindgen::generate!({ world: "service", path: "../wit" });

use exports::wats::service::handler::Guest;
use wats::service::{clock, config, events, kv, log, metrics, outbound_http, telemetry, types};

struct Component;

impl Guest for Component {
    fn handle(request: types::Request) -> types::Response {
        let request = host::Request {
            method: request.method,
            path_with_query: request.path_with_query,
            headers: request.headers,
            body: request.body,
        };
        let response = block_on(crate::handle(&ImportedHost, request));
        types::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl exports::wats::service::scheduler::Guest for Component {
    fn drain(limit: u32) -> exports::wats::service::scheduler::DrainReport {
        let report = block_on(crate::drain(&ImportedHost, limit));
        exports::wats::service::scheduler::DrainReport {
            claimed: report.claimed,
            sent: report.sent,
            retried: report.retried,
            failed: report.failed,
            stale: report.stale,
            events_delivered: report.events_delivered,
            events_retried: report.events_retried,
            events_failed: report.events_failed,
            next_due_millis: report.next_due_millis,
        }
    }
}

impl exports::wats::service::setup::Guest for Component {
    fn check_config() -> Option<exports::wats::service::setup::ConfigFault> {
        crate::check_config(&ImportedHost).map(|error| fault(&error))
    }

    fn openapi() -> Result<String, exports::wats::service::setup::ConfigFault> {
        crate::openapi_json(&ImportedHost).map_err(|error| fault(&error))
    }
}

fn fault(error: &crate::config::ConfigError) -> exports::wats::service::setup::ConfigFault {
    exports::wats::service::setup::ConfigFault {
        code: error.construction_code().into(),
        key: error.key().into(),
        message: error.to_string(),
    }
}

export!(Component);

/// The host as the world's imports provide it.
struct ImportedHost;

fn kv_error(error: kv::KvError) -> KvError {
    match error {
        kv::KvError::NotConfigured => KvError::NotConfigured,
        kv::KvError::Unavailable(reason) => KvError::Unavailable(reason),
        kv::KvError::TooLarge => KvError::TooLarge,
        kv::KvError::Other(reason) => KvError::Other(reason),
    }
}

impl Host for ImportedHost {
    async fn send(&self, request: OutgoingRequest) -> Result<Response, OutboundError> {
        let request = outbound_http::OutgoingRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        match outbound_http::send(&request) {
            Ok(response) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(outbound_http::Error::Timeout) => Err(OutboundError::Timeout),
            Err(outbound_http::Error::Unreachable(reason)) => {
                Err(OutboundError::Unreachable(reason))
            }
            Err(outbound_http::Error::Denied(reason)) => Err(OutboundError::Denied(reason)),
            Err(outbound_http::Error::Other(reason)) => Err(OutboundError::Other(reason)),
        }
    }

    async fn kv_batch(&self, ops: Vec<KvOp>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let entry = |entry: KvEntry| kv::Entry {
            key: entry.key,
            value: entry.value,
            ttl_seconds: entry.ttl_seconds,
        };
        let ops: Vec<kv::Op> = ops
            .into_iter()
            .map(|op| match op {
                KvOp::Get(key) => kv::Op::Get(key),
                KvOp::Set(e) => kv::Op::Set(entry(e)),
                KvOp::SetIfAbsent(e) => kv::Op::SetIfAbsent(entry(e)),
                KvOp::Remove(key) => kv::Op::Remove(key),
            })
            .collect();
        kv::batch(&ops).map_err(kv_error)
    }

    async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        let page = kv::list_keys(prefix, cursor, limit).map_err(kv_error)?;
        Ok(KvPage {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    fn now_millis(&self) -> u64 {
        clock::now_millis()
    }

    fn monotonic_nanos(&self) -> u64 {
        clock::monotonic_nanos()
    }

    fn started_millis(&self) -> u64 {
        clock::started_millis()
    }

    fn config(&self, key: &str) -> Option<String> {
        config::get(key)
    }

    async fn dispatch(&self, update: &Update) -> Result<(), String> {
        events::dispatch(&events::Update {
            kind: update.kind.into(),
            id: update.id.clone(),
            status: update.status.clone(),
            json: update.json.clone(),
        })
    }

    fn metrics_add(&self, samples: Vec<Sample>) {
        let samples: Vec<metrics::Sample> = samples
            .into_iter()
            .map(|s| metrics::Sample {
                name: s.name,
                labels: s.labels,
                value: s.value,
            })
            .collect();
        metrics::add(&samples);
    }

    fn metrics_snapshot(&self) -> Vec<Sample> {
        metrics::snapshot()
            .into_iter()
            .map(|s| Sample {
                name: s.name,
                labels: s.labels,
                value: s.value,
            })
            .collect()
    }

    fn telemetry(&self, measurements: Vec<Measurement>) {
        let measurements: Vec<telemetry::Measurement> = measurements
            .into_iter()
            .map(|m| telemetry::Measurement {
                instrument: if m.histogram {
                    telemetry::Instrument::Histogram
                } else {
                    telemetry::Instrument::Counter
                },
                name: m.name.into(),
                value: m.value,
                attributes: m
                    .attributes
                    .into_iter()
                    .map(|(key, value)| (key.into(), value))
                    .collect(),
            })
            .collect();
        telemetry::emit(&measurements);
    }

    fn log(&self, level: Level, event: &str, fields: &[(&str, String)]) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        log::write(level, event, &fields);
    }
}
