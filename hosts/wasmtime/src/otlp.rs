//! `wats serve`'s OpenTelemetry metrics: the component's measurements
//! (OpenTelemetry attribute keys, through the `telemetry` import) recorded
//! into the SDK's instruments, and exported as OTLP over HTTP (protobuf)
//! by the SDK's periodic reader on its own thread: never on a request's
//! path. Configured as any OpenTelemetry SDK is, from the environment:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/metrics` appended) or
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_METRIC_EXPORT_INTERVAL`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`,
//! `OTEL_METRICS_EXPORTER=none`.

use crate::runtime::{Instrument, Measurement};
use crate::services::TelemetrySink;
use anyhow::{bail, Context, Result};
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::Mutex;

/// The SDK's instruments, created on a measurement's first sight.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    meter: Meter,
    counters: Mutex<HashMap<String, Counter<f64>>>,
    histograms: Mutex<HashMap<String, Histogram<f64>>>,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

impl OtlpMetrics {
    /// The export the environment asks for, if it asks for one. A protocol
    /// other than `http/protobuf` is refused by name, not ignored.
    pub fn from_env() -> Result<Option<OtlpMetrics>> {
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let exporter = env("OTEL_METRICS_EXPORTER").unwrap_or_else(|| "otlp".into());
        let endpoint = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if disabled || exporter == "none" || endpoint.is_none() {
            return Ok(None);
        }
        if exporter != "otlp" {
            bail!("OTEL_METRICS_EXPORTER: wats serve exports `otlp` or `none`");
        }
        for key in [
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if env(key).is_some_and(|protocol| protocol != "http/protobuf") {
                bail!("{key}: wats serve exports OTLP as `http/protobuf` only");
            }
        }
        let exporter = MetricExporter::builder()
            .with_http()
            .with_http_client(BlockingHttp::new()?)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .context("OTEL_EXPORTER_OTLP_*: the OTLP exporter could not be set up")?;
        let mut resource = Resource::builder();
        let named = env("OTEL_SERVICE_NAME").is_some()
            || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
        if !named {
            resource = resource.with_service_name("wats");
        }
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter).build())
            .with_resource(resource.build())
            .build();
        let meter = provider.meter("wats");
        Ok(Some(OtlpMetrics {
            provider,
            meter,
            counters: Mutex::default(),
            histograms: Mutex::default(),
        }))
    }

    /// Exports what is left and stops the reader (at shutdown).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

impl TelemetrySink for OtlpMetrics {
    fn record(&self, measurements: &[Measurement]) {
        for measurement in measurements {
            let attributes: Vec<KeyValue> = measurement
                .attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                .collect();
            let name = measurement.name.clone();
            match measurement.instrument {
                Instrument::Counter => {
                    let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
                    let counter = counters
                        .entry(name.clone())
                        .or_insert_with(|| self.meter.f64_counter(name).build());
                    counter.add(measurement.value, &attributes);
                }
                Instrument::Histogram => {
                    let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
                    let histogram = histograms.entry(name.clone()).or_insert_with(|| {
                        self.meter
                            .f64_histogram(name)
                            .with_unit("s")
                            .with_boundaries(wats::DURATION_BUCKETS.to_vec())
                            .build()
                    });
                    histogram.record(measurement.value, &attributes);
                }
            }
        }
    }
}

/// The exporter's HTTP client: reqwest's blocking client, which the SDK's
/// reader thread may block on (it has no async runtime of its own).
#[derive(Debug)]
struct BlockingHttp(reqwest::blocking::Client);

impl BlockingHttp {
    fn new() -> Result<BlockingHttp> {
        let timeout = env("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|millis| millis.parse().ok())
            .unwrap_or(10_000);
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_millis(timeout))
            .build()
            .context("the OTLP exporter's HTTP client could not be built")?;
        Ok(BlockingHttp(client))
    }
}

#[async_trait::async_trait]
impl HttpClient for BlockingHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        Ok(response.body(answer.bytes()?)?)
    }
}
