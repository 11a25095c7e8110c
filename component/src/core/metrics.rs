//! Metric families, their label values and the Prometheus text rendering.
//! A request collects its samples in a `Recorder` and hands them to the host
//! in one call; the host keeps the totals across requests and instances.
//! Every label value comes from a fixed set or a route template, never from
//! request data.

use crate::core::host::{Host, Measurement, Sample};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
}

struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "http_requests_total",
        kind: Kind::Counter,
        help: "Inbound HTTP requests to the service.",
    },
    Family {
        name: "http_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Time the service spent on a request.",
    },
    Family {
        name: "http_errors_total",
        kind: Kind::Counter,
        help: "Error responses by error code.",
    },
    Family {
        name: "webhook_normalization_total",
        kind: Kind::Counter,
        help: "Webhook updates normalized, by kind and outcome.",
    },
    Family {
        name: "graph_operations_total",
        kind: Kind::Counter,
        help: "Outbound Graph API calls by endpoint family and status class.",
    },
    Family {
        name: "send_outcomes_total",
        kind: Kind::Counter,
        help: "Message send attempts by endpoint family and outcome.",
    },
    Family {
        name: "persistence_operations_total",
        kind: Kind::Counter,
        help: "State store operations by adapter and outcome.",
    },
    Family {
        name: "outbox_items_total",
        kind: Kind::Counter,
        help: "Outbox items by outcome: queued, sent, retried, failed, stale_lease.",
    },
    Family {
        name: "whatsapp_messages_priced_total",
        kind: Kind::Counter,
        help: "Messages Meta reported delivered with pricing, by pricing category and type.",
    },
    Family {
        name: "event_deliveries_total",
        kind: Kind::Counter,
        help: "Events for the application's endpoints by endpoint index and outcome: queued, delivered, retried, failed.",
    },
];

/// The names of every metric family, for `/debug/diagnostics`.
pub(crate) fn family_names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|family| family.name)
}

/// The request-duration histogram's bounds, in seconds (also a host's
/// OpenTelemetry histogram's).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "unknown",
    }
}

pub(crate) fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// OpenTelemetry's attribute keys, where a convention exists, and the
/// service's own (`wats.*`) where none does: what a telemetry sink gets.
pub(crate) mod otel {
    pub(crate) const HTTP_ROUTE: &str = "http.route";
    pub(crate) const HTTP_METHOD: &str = "http.request.method";
    pub(crate) const HTTP_STATUS_CODE: &str = "http.status_code";
    pub(crate) const HTTP_STATUS_CLASS: &str = "http.response.status.class";
    pub(crate) const ENDPOINT_FAMILY: &str = "wats.graph.endpoint_family";
    pub(crate) const OUTCOME: &str = "wats.operation.outcome";
    pub(crate) const UPDATE_KIND: &str = "wats.webhook.update_kind";
    pub(crate) const PERSISTENCE_ADAPTER: &str = "wats.persistence.adapter";
}

/// Every attribute key a sink may get, in a fixed order: the columns of a
/// store of rows rather than attribute sets (a Workers Analytics Engine
/// dataset: `blob2` to `blob9`, after the name in `blob1`).
pub const SINK_ATTRIBUTES: [&str; 8] = [
    otel::HTTP_ROUTE,
    otel::HTTP_METHOD,
    otel::HTTP_STATUS_CODE,
    otel::HTTP_STATUS_CLASS,
    otel::ENDPOINT_FAMILY,
    otel::OUTCOME,
    otel::UPDATE_KIND,
    otel::PERSISTENCE_ADAPTER,
];

impl Measurement {
    /// Its name, then its value of each of `SINK_ATTRIBUTES` ("" where it
    /// has none), then its instrument: one row of fixed columns.
    pub fn columns(&self) -> Vec<&str> {
        let value = |key: &str| {
            let found = self.attributes.iter().find(|(k, _)| *k == key);
            found.map_or("", |(_, v)| v.as_str())
        };
        let instrument = if self.histogram {
            "histogram"
        } else {
            "counter"
        };
        std::iter::once(self.name)
            .chain(SINK_ATTRIBUTES.iter().map(|key| value(key)))
            .chain(std::iter::once(instrument))
            .collect()
    }
}

/// Whether held labels are these, in this order.
fn same_labels<K: AsRef<str>>(held: &[(K, String)], labels: &[(&str, &str)]) -> bool {
    held.len() == labels.len()
        && held
            .iter()
            .zip(labels)
            .all(|((key, value), (k, v))| key.as_ref() == *k && value == v)
}

/// The samples of one request, and its measurements for a telemetry sink,
/// sent to the host once at its end.
#[derive(Default)]
pub struct Recorder {
    samples: RefCell<Vec<Sample>>,
    measurements: RefCell<Vec<Measurement>>,
}

impl Recorder {
    /// A counter's measurements with the same attributes are summed; each
    /// histogram observation is kept.
    fn measure(
        &self,
        histogram: bool,
        name: &'static str,
        value: f64,
        attributes: &[(&'static str, &str)],
    ) {
        let mut measurements = self.measurements.borrow_mut();
        let same = |held: &&mut Measurement| {
            !histogram
                && !held.histogram
                && held.name == name
                && same_labels(&held.attributes, attributes)
        };
        if let Some(held) = measurements.iter_mut().find(same) {
            held.value += value;
            return;
        }
        measurements.push(Measurement {
            histogram,
            name,
            value,
            attributes: attributes
                .iter()
                .map(|(key, value)| (*key, value.to_string()))
                .collect(),
        });
    }

    fn add(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut samples = self.samples.borrow_mut();
        // A request repeats a few series many times (one per store call):
        // summed here, the host gets and adds up each series once.
        let same_series =
            |sample: &&mut Sample| sample.name == name && same_labels(&sample.labels, labels);
        if let Some(sample) = samples.iter_mut().find(same_series) {
            sample.value = merge(keeps_latest(name), sample.value, value);
            return;
        }
        samples.push(Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        });
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = status_class(status);
        let method = method_label(method);
        self.add(
            "http_requests_total",
            &[
                ("method", method),
                ("route", route),
                ("status_class", class),
            ],
            1.0,
        );
        let labels = [("route", route), ("status_class", class)];
        // Only the one bucket the value falls in: `render` makes the
        // buckets cumulative, so a request sends 4 samples, not 18.
        let le = DURATION_BUCKETS
            .iter()
            .find(|bound| seconds <= **bound)
            .map(|bound| format_number(*bound))
            .unwrap_or_else(|| "+Inf".into());
        self.add(
            "http_request_duration_seconds_bucket",
            &[labels[0], labels[1], ("le", &le)],
            1.0,
        );
        self.add("http_request_duration_seconds_sum", &labels, seconds);
        self.add("http_request_duration_seconds_count", &labels, 1.0);
        // The sink gets the method and exact status too, where /metrics
        // narrows them for cardinality.
        let status = status.to_string();
        let attributes = [
            (otel::HTTP_ROUTE, route),
            (otel::HTTP_METHOD, method),
            (otel::HTTP_STATUS_CODE, status.as_str()),
            (otel::HTTP_STATUS_CLASS, class),
        ];
        self.measure(false, "http_requests_total", 1.0, &attributes);
        self.measure(true, "http_request_duration_seconds", seconds, &attributes);
    }

    /// An error answered, and when (for `recentErrors`).
    pub fn error(&self, code: &str, now_millis: u64) {
        self.add("http_errors_total", &[("code", code)], 1.0);
        self.add(ERROR_LAST_SEEN, &[("code", code)], now_millis as f64);
    }

    pub fn webhook_update(&self, update_kind: &str, outcome: &str) {
        self.add(
            "webhook_normalization_total",
            &[("update_kind", update_kind), ("outcome", outcome)],
            1.0,
        );
        let attributes = [(otel::UPDATE_KIND, update_kind), (otel::OUTCOME, outcome)];
        self.measure(false, "webhook_normalization_total", 1.0, &attributes);
    }

    /// A Graph call; `status` is none when Graph did not answer (class
    /// `none`). The sink gets the exact status, `/metrics` its class.
    pub fn graph_operation(&self, family: &str, status: Option<u16>, outcome: &str) {
        let status_class = status.map_or("none", status_class);
        self.add(
            "graph_operations_total",
            &[
                ("endpoint_family", family),
                ("status_class", status_class),
                ("outcome", outcome),
            ],
            1.0,
        );
        let status_code = status.map(|status| status.to_string());
        let mut attributes = vec![(otel::ENDPOINT_FAMILY, family)];
        if let Some(code) = &status_code {
            attributes.push((otel::HTTP_STATUS_CODE, code.as_str()));
        }
        attributes.extend([
            (otel::HTTP_STATUS_CLASS, status_class),
            (otel::OUTCOME, outcome),
        ]);
        self.measure(false, "graph_operations_total", 1.0, &attributes);
    }

    pub fn send_outcome(&self, family: &str, outcome: &str) {
        self.add(
            "send_outcomes_total",
            &[("endpoint_family", family), ("outcome", outcome)],
            1.0,
        );
        let attributes = [(otel::ENDPOINT_FAMILY, family), (otel::OUTCOME, outcome)];
        self.measure(false, "send_outcomes_total", 1.0, &attributes);
    }

    pub fn persistence(&self, outcome: &str) {
        self.add(
            "persistence_operations_total",
            &[("adapter", "kv"), ("outcome", outcome)],
            1.0,
        );
        let attributes = [(otel::PERSISTENCE_ADAPTER, "kv"), (otel::OUTCOME, outcome)];
        self.measure(false, "persistence_operations_total", 1.0, &attributes);
    }

    pub fn outbox(&self, outcome: &str) {
        self.add("outbox_items_total", &[("outcome", outcome)], 1.0);
    }

    /// An endpoint by its position in `WATS_EVENTS_ENDPOINTS`, never its URL.
    /// `category` and `kind` come clamped from `pricing_labels`.
    pub fn priced(&self, category: &str, kind: &str) {
        self.add(
            "whatsapp_messages_priced_total",
            &[("category", category), ("type", kind)],
            1.0,
        );
    }

    pub fn event_delivery(&self, endpoint: usize, outcome: &str) {
        let endpoint = endpoint.to_string();
        self.add(
            "event_deliveries_total",
            &[("endpoint", &endpoint), ("outcome", outcome)],
            1.0,
        );
    }

    /// The samples recorded so far, leaving none.
    pub fn take(&self) -> Vec<Sample> {
        self.samples.take()
    }

    pub fn flush(&self, host: &impl Host) {
        let samples = self.take();
        if !samples.is_empty() {
            host.metrics_add(samples);
        }
        let measurements = self.measurements.take();
        if !measurements.is_empty() {
            host.telemetry(measurements);
        }
    }
}

/// The totals a host keeps across requests: every sample added to its
/// series. Hosts wrap it in whatever their concurrency needs (a Mutex, a
/// RefCell); the adding up is the same everywhere.
#[derive(Default)]
pub struct Totals {
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// When each error code was last answered (millis): a series that keeps
/// its latest value rather than a sum, read by `/debug/diagnostics` and
/// never rendered on `/metrics`.
pub(crate) const ERROR_LAST_SEEN: &str = "http_errors_last_seen_millis";

/// Whether a series keeps its latest value (a `_last_seen_` time) rather
/// than a sum.
fn keeps_latest(name: &str) -> bool {
    name.ends_with("_last_seen_millis")
}

fn merge(latest: bool, held: f64, value: f64) -> f64 {
    if latest {
        held.max(value)
    } else {
        held + value
    }
}

impl Totals {
    pub fn add(&mut self, samples: Vec<Sample>) {
        for sample in samples {
            let latest = keeps_latest(&sample.name);
            let held = self
                .series
                .entry((sample.name, sample.labels))
                .or_insert(0.0);
            *held = merge(latest, *held, sample.value);
        }
    }

    pub fn snapshot(&self) -> Vec<Sample> {
        self.series
            .iter()
            .map(|((name, labels), value)| Sample {
                name: name.clone(),
                labels: labels.clone(),
                value: *value,
            })
            .collect()
    }
}

/// Renders the host's totals as Prometheus text exposition (version 0.0.4).
pub(crate) fn render(snapshot: &[Sample]) -> String {
    let mut by_family: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in snapshot {
        if let Some(family) = family_of(&sample.name) {
            by_family.entry(family.name).or_default().push(sample);
        }
    }
    let mut out = String::new();
    let buckets = cumulative_buckets(
        by_family
            .remove("http_request_duration_seconds")
            .unwrap_or_default(),
    );
    for family in FAMILIES {
        let kind = if family.kind == Kind::Counter {
            "counter"
        } else {
            "histogram"
        };
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, kind);
        let mut lines: Vec<String> = if family.kind == Kind::Histogram {
            buckets.iter().map(series_line).collect()
        } else {
            by_family
                .get(family.name)
                .into_iter()
                .flatten()
                .map(|sample| series_line(sample))
                .collect()
        };
        lines.sort_by(|a, b| {
            let ((series_a, le_a), (series_b, le_b)) = (series_order(a), series_order(b));
            series_a.cmp(&series_b).then(le_a.total_cmp(&le_b))
        });
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Turns per-bucket counts into Prometheus's cumulative `le` buckets, with
/// every bound present for each series, plus the `_sum` and `_count` series.
fn cumulative_buckets(samples: Vec<&Sample>) -> Vec<Sample> {
    let mut series: BTreeMap<Vec<(String, String)>, Vec<f64>> = BTreeMap::new();
    let mut out = Vec::new();
    for sample in samples {
        if sample.name.ends_with("_bucket") {
            let (le, labels): (Vec<_>, Vec<_>) = sample
                .labels
                .iter()
                .cloned()
                .partition(|(key, _)| key == "le");
            let bound = le.first().map(|(_, le)| le.as_str()).unwrap_or("+Inf");
            let index = DURATION_BUCKETS
                .iter()
                .position(|b| format_number(*b) == bound)
                .unwrap_or(DURATION_BUCKETS.len());
            series
                .entry(labels)
                .or_insert_with(|| vec![0.0; DURATION_BUCKETS.len() + 1])[index] += sample.value;
        } else {
            out.push(sample.clone());
        }
    }
    for (labels, counts) in series {
        let mut total = 0.0;
        for (index, count) in counts.iter().enumerate() {
            total += count;
            let le = DURATION_BUCKETS
                .get(index)
                .map(|b| format_number(*b))
                .unwrap_or_else(|| "+Inf".into());
            let mut labels = labels.clone();
            labels.push(("le".into(), le));
            out.push(Sample {
                name: "http_request_duration_seconds_bucket".into(),
                labels,
                value: total,
            });
        }
    }
    out
}

fn family_of(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|family| match family.kind {
        Kind::Counter => name == family.name,
        Kind::Histogram => name
            .strip_prefix(family.name)
            .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix)),
    })
}

fn series_line(sample: &Sample) -> String {
    let mut line = sample.name.clone();
    if !sample.labels.is_empty() {
        line.push('{');
        for (index, (key, value)) in sample.labels.iter().enumerate() {
            if index > 0 {
                line.push(',');
            }
            let _ = write!(line, "{key}=\"{}\"", escape_label(value));
        }
        line.push('}');
    }
    let _ = write!(line, " {}", format_number(sample.value));
    line
}

/// Sorts series by name and labels, with histogram buckets in `le` order.
fn series_order(line: &str) -> (String, f64) {
    let le = line
        .split("le=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|le| {
            if le == "+Inf" {
                f64::INFINITY
            } else {
                // serde_json's float parser is linked anyway; core's is not.
                serde_json::from_str(le).unwrap_or(0.0)
            }
        })
        .unwrap_or(0.0);
    let without_le = match line.find(",le=\"") {
        Some(start) => line[..start].to_owned(),
        None => line
            .rsplit_once(' ')
            .map(|(series, _)| series.to_owned())
            .unwrap_or_default(),
    };
    (without_le, le)
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shortest round-trip text, through serde_json (ryu), which the component
/// links anyway: core's float formatting would add about 20 KB.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        match serde_json::Number::from_f64(value) {
            Some(number) => number.to_string(),
            None if value.is_nan() => "NaN".into(),
            None if value > 0.0 => "+Inf".into(),
            None => "-Inf".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_gets_the_full_attribute_set_and_each_observation() {
        let recorder = Recorder::default();
        recorder.http_request("/api/messages/:messageId", "GET", 404, 0.002);
        recorder.http_request("/api/messages/:messageId", "GET", 404, 0.004);
        recorder.webhook_update("message", "dispatched");
        let measurements = recorder.measurements.take();
        let counter = measurements
            .iter()
            .find(|m| m.name == "http_requests_total")
            .unwrap();
        assert!(!counter.histogram);
        assert_eq!(counter.value, 2.0, "a counter's measurements are summed");
        assert_eq!(
            counter.attributes,
            vec![
                (otel::HTTP_ROUTE, "/api/messages/:messageId".to_owned()),
                (otel::HTTP_METHOD, "GET".to_owned()),
                (otel::HTTP_STATUS_CODE, "404".to_owned()),
                (otel::HTTP_STATUS_CLASS, "4xx".to_owned()),
            ]
        );
        let observations: Vec<f64> = measurements
            .iter()
            .filter(|m| m.histogram && m.name == "http_request_duration_seconds")
            .map(|m| m.value)
            .collect();
        assert_eq!(observations, vec![0.002, 0.004], "each observation kept");
        assert!(measurements
            .iter()
            .any(|m| m.name == "webhook_normalization_total"
                && m.attributes
                    .contains(&(otel::UPDATE_KIND, "message".to_owned()))));
    }

    /// The sink gets Graph's exact status, `/metrics` only its class; a call
    /// Graph never answered has no status code at all.
    #[test]
    fn a_graph_call_gives_the_sink_its_status_code() {
        let recorder = Recorder::default();
        recorder.graph_operation("messages", Some(429), "rate_limited");
        recorder.graph_operation("messages", None, "timeout");
        let measurements = recorder.measurements.take();
        let codes: Vec<Option<&str>> = measurements
            .iter()
            .map(|m| {
                let code = m
                    .attributes
                    .iter()
                    .find(|(k, _)| *k == otel::HTTP_STATUS_CODE);
                code.map(|(_, v)| v.as_str())
            })
            .collect();
        assert_eq!(codes, [Some("429"), None]);
        let samples = recorder.samples.take();
        assert!(samples
            .iter()
            .all(|s| s.labels.iter().all(|(k, _)| k != "status_code")));
        assert!(samples
            .iter()
            .any(|s| s.labels.contains(&("status_class".into(), "4xx".into()))));
    }

    #[test]
    fn a_measurement_is_one_row_of_fixed_columns() {
        let recorder = Recorder::default();
        recorder.http_request("/api/messages/:messageId", "GET", 404, 0.002);
        let measurements = recorder.measurements.take();
        let counter = measurements.iter().find(|m| !m.histogram).unwrap();
        assert_eq!(
            counter.columns(),
            [
                "http_requests_total",
                "/api/messages/:messageId",
                "GET",
                "404",
                "4xx",
                "",
                "",
                "",
                "",
                "counter"
            ]
        );
    }

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.005), "0.005");
        assert_eq!(format_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_number(1.5e-7), "1.5e-7");
        assert_eq!(format_number(f64::INFINITY), "+Inf");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(series_order("x_bucket{a=\"b\",le=\"0.025\"} 1").1, 0.025);
    }

    #[test]
    fn totals_add_up_per_series() {
        let sample = |route: &str, value: f64| Sample {
            name: "http_requests_total".into(),
            labels: vec![("route".into(), route.into())],
            value,
        };
        let mut totals = Totals::default();
        totals.add(vec![sample("/healthz", 1.0), sample("/readyz", 1.0)]);
        totals.add(vec![sample("/healthz", 2.0)]);
        let snapshot = totals.snapshot();
        assert_eq!(snapshot.len(), 2);
        let healthz = snapshot.iter().find(|s| s.labels[0].1 == "/healthz");
        assert_eq!(healthz.map(|s| s.value), Some(3.0));
    }

    #[test]
    fn a_recorder_sends_each_series_once_with_its_sum() {
        let recorder = Recorder::default();
        for outcome in ["success", "success", "failure", "success"] {
            recorder.persistence(outcome);
        }
        recorder.webhook_update("message", "dispatched");
        let summed: Vec<(String, String, f64)> = recorder
            .take()
            .into_iter()
            .map(|sample| (sample.name, sample.labels[1].1.clone(), sample.value))
            .collect();
        let series = |name: &str, label: &str, value| (name.to_owned(), label.to_owned(), value);
        assert_eq!(
            summed,
            [
                series("persistence_operations_total", "success", 3.0),
                series("persistence_operations_total", "failure", 1.0),
                series("webhook_normalization_total", "dispatched", 1.0),
            ]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_ordered() {
        let recorder = Recorder::default();
        recorder.http_request("/healthz", "GET", 200, 0.003);
        let samples = recorder.samples.take();
        let text = render(&samples);
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_request_duration_seconds_bucket"))
            .collect();
        assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1, "{buckets:?}");
        assert!(
            buckets[0].contains("le=\"0.0005\"") && buckets[0].ends_with(" 0"),
            "{buckets:?}"
        );
        assert!(
            buckets[3].contains("le=\"0.005\"") && buckets[3].ends_with(" 1"),
            "{buckets:?}"
        );
        assert!(
            buckets[14].contains("le=\"+Inf\"") && buckets[14].ends_with(" 1"),
            "{buckets:?}"
        );
        assert!(text.contains(
            "http_request_duration_seconds_count{route=\"/healthz\",status_class=\"2xx\"} 1"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/healthz\",status_class=\"2xx\"} 1"
        ));
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    }

    #[test]
    fn unknown_series_are_not_rendered() {
        let sample = Sample {
            name: "evil\"name".into(),
            labels: vec![],
            value: 1.0,
        };
        assert!(!render(&[sample]).contains("evil"));
    }
}
