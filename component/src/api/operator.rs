//! Liveness, readiness and the bearer-protected operator views: `/status`,
//! `/metrics`, `/debug/diagnostics`. Nothing here reveals a token, phone
//! number, WABA id or message content.

use crate::context::Context;
use crate::core::config::{self, Config, Paths, RUNTIME_KEY};
use crate::core::error::ApiError;
use crate::core::host::{Host, Response, Sample};
use crate::core::http::{json_response, text_response};
use crate::core::metrics::{self, ERROR_LAST_SEEN};
use crate::state::store;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(crate) const SERVICE: &str = "wats";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Healthz,
    Readyz,
    Status,
    Metrics,
    Diagnostics,
}

/// The route inventory of `/status` and `/debug/diagnostics`: each active
/// route's method, path template and auth. The route table is the app's, a
/// layer above, so it is handed in.
pub(crate) type Inventory = fn(&Paths) -> Value;

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    inventory: Inventory,
) -> Result<Response, ApiError> {
    match op {
        Op::Healthz => Ok(healthz()),
        Op::Readyz => readyz(ctx),
        Op::Status => status(ctx, inventory).await,
        Op::Metrics => metrics(ctx),
        Op::Diagnostics => diagnostics(ctx, inventory).await,
    }
}
const MAX_ERROR_CLASSES: usize = 10;
const MAX_ERROR_CLASS_LEN: usize = 80;
const HEALTH_PROBE_KEY: &str = "wats:health";

fn healthz() -> Response {
    json_response(200, &json!({ "ok": true, "service": SERVICE }))
}

fn readyz<H: Host>(ctx: &Context<'_, H>) -> Result<Response, ApiError> {
    ctx.config()?;
    Ok(healthz())
}

fn service_mode(config: &Config, persistence: bool) -> &'static str {
    match (persistence, config.paths.group_routes) {
        (true, true) => "webhook+persistence+groups",
        (true, false) => "webhook+persistence",
        (false, true) => "webhook+groups",
        (false, false) => "webhook",
    }
}

fn feature_flags(config: &Config, persistence: bool) -> Value {
    json!({
        "groupRoutes": config.paths.group_routes,
        "persistence": persistence,
        "logWebhookEvents": config.log_webhook_events,
        "echoReply": config.echo_reply,
    })
}

/// The sum of a counter's samples with this outcome label.
fn counted_outcomes(snapshot: &[Sample], family: &str, outcome: &str) -> u64 {
    snapshot
        .iter()
        .filter(|s| s.name == family)
        .filter(|s| s.labels.iter().any(|(k, v)| k == "outcome" && v == outcome))
        .map(|s| s.value)
        .sum::<f64>() as u64
}

/// The reference's three backends for a host's store name (a Durable
/// Object keeps SQLite); the name itself is shown as `store`.
fn backend_label(store: &str) -> &'static str {
    match store {
        "durable-object" => "sqlite",
        name if name.contains("sqlite") => "sqlite",
        name if name.contains("postgres") => "postgres",
        _ => "unknown",
    }
}

/// Store health, or null when the host runs without a store: a real read,
/// the backend the host names, the failures and outbox outcomes so far.
async fn persistence_summary<H: Host>(ctx: &Context<'_, H>) -> Value {
    let probe = store::get(ctx, HEALTH_PROBE_KEY).await;
    if probe == Err(ApiError::PersistenceNotConfigured) {
        return Value::Null;
    }
    let snapshot = ctx.host.metrics_snapshot();
    let outbox: Map<String, Value> = ["queued", "sent", "retried", "failed", "stale_lease"]
        .iter()
        .map(|outcome| {
            let count = counted_outcomes(&snapshot, "outbox_items_total", outcome);
            (outcome.to_string(), count.into())
        })
        .collect();
    let store = ctx
        .host
        .config(config::STORE_KEY)
        .filter(|name| {
            name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or_else(|| "kv".into());
    let backend = backend_label(&store);
    json!({
        "ok": probe.is_ok(),
        "backend": backend,
        "store": store,
        "currentVersion": 1,
        "redactedLocation": "[REDACTED]",
        "failedOperations": counted_outcomes(&snapshot, "persistence_operations_total", "failure"),
        "outbox": outbox,
    })
}

async fn status<H: Host>(ctx: &Context<'_, H>, inventory: Inventory) -> Result<Response, ApiError> {
    let config = ctx.config()?;
    let persistence = persistence_summary(ctx).await;
    let uptime_ms = ctx
        .host
        .now_millis()
        .saturating_sub(ctx.host.started_millis());
    Ok(json_response(
        200,
        &json!({
            "service": SERVICE,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": uptime_ms / 1000,
            "graphApiVersion": config.graph_api_version,
            "serviceMode": service_mode(config, !persistence.is_null()),
            "phoneNumbers": config.phone_number_ids.len(),
            "routes": inventory(&config.paths),
            "featureFlags": feature_flags(config, !persistence.is_null()),
            "persistence": persistence,
        }),
    ))
}

fn metrics<H: Host>(ctx: &Context<'_, H>) -> Result<Response, ApiError> {
    ctx.config()?;
    let text = metrics::render(&ctx.host.metrics_snapshot());
    Ok(text_response(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}

/// Known runtimes; a host that says anything else is `unknown`.
fn runtime_label(host: &impl Host) -> &'static str {
    const RUNTIMES: &[&str] = &["wasmtime", "cloudflare", "spin", "jco", "native"];
    let said = host.config(RUNTIME_KEY).unwrap_or_default();
    RUNTIMES
        .iter()
        .find(|known| **known == said)
        .copied()
        .unwrap_or("unknown")
}

/// The error classes answered most recently, newest first, each with its
/// count: at most `MAX_ERROR_CLASSES`, the oldest dropped.
fn recent_errors<H: Host>(ctx: &Context<'_, H>) -> Value {
    // code -> (count, last seen)
    let mut classes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for sample in ctx.host.metrics_snapshot() {
        let is_count = sample.name == "http_errors_total";
        if !is_count && sample.name != ERROR_LAST_SEEN {
            continue;
        }
        let Some((_, code)) = sample.labels.into_iter().find(|(k, _)| k == "code") else {
            continue;
        };
        let class = classes.entry(code).or_default();
        if is_count {
            class.0 = sample.value as u64;
        } else {
            class.1 = sample.value as u64;
        }
    }
    let mut classes: Vec<(String, (u64, u64))> = classes.into_iter().collect();
    // Newest first; errors of the same millisecond by count, then name.
    classes.sort_by(|(a, (a_count, a_seen)), (b, (b_count, b_seen))| {
        (b_seen, b_count, a).cmp(&(a_seen, a_count, b))
    });
    classes.truncate(MAX_ERROR_CLASSES);
    classes
        .into_iter()
        .map(|(class, (count, _))| {
            let class: String = class.chars().take(MAX_ERROR_CLASS_LEN).collect();
            json!({ "class": class, "count": count })
        })
        .collect()
}

async fn diagnostics<H: Host>(
    ctx: &Context<'_, H>,
    inventory: Inventory,
) -> Result<Response, ApiError> {
    let config = ctx.config()?;
    let persistence = persistence_summary(ctx).await;
    let config_shape: Map<String, Value> = config::KEYS
        .iter()
        .map(|(key, _)| {
            let shown = if ctx.host.config(key).is_some() {
                "[REDACTED]"
            } else {
                "[UNSET]"
            };
            let name = key.trim_start_matches("WATS_").to_ascii_lowercase();
            (name, Value::from(shown))
        })
        .collect();
    Ok(json_response(
        200,
        &json!({
            "service": SERVICE,
            "version": env!("CARGO_PKG_VERSION"),
            "graphApiVersion": config.graph_api_version,
            "serviceMode": service_mode(config, !persistence.is_null()),
            "phoneNumbers": config.phone_number_ids.len(),
            "runtime": runtime_label(ctx.host),
            "routes": inventory(&config.paths),
            "featureFlags": feature_flags(config, !persistence.is_null()),
            "persistence": persistence,
            "metricFamilies": metrics::family_names().collect::<Vec<_>>(),
            "recentErrors": recent_errors(ctx),
            "configShape": config_shape,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::backend_label;
    use crate::core::host::{Host, Request};
    use crate::testing::{block_on, TestHost};

    fn get(host: &TestHost, method: &str, path: &str) -> serde_json::Value {
        let token = host.config("WATS_SERVICE_BEARER_TOKEN").unwrap();
        let request = Request {
            method: method.into(),
            path_with_query: path.into(),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            body: Vec::new(),
        };
        let response = block_on(crate::handle(host, request));
        serde_json::from_slice(&response.body).unwrap_or_default()
    }

    /// The most recent classes, not the most frequent: a rare error seen
    /// last comes first.
    #[test]
    fn recent_errors_are_the_newest_classes_first() {
        let host = TestHost::configured();
        for _ in 0..5 {
            get(&host, "GET", "/nowhere");
        }
        host.advance(1_000);
        get(&host, "DELETE", "/healthz");
        let diagnostics = get(&host, "GET", "/debug/diagnostics");
        let recent = &diagnostics["recentErrors"];
        assert_eq!(recent[0]["class"], "method_not_allowed", "{recent}");
        assert_eq!(recent[1]["class"], "not_found");
        assert_eq!(recent[1]["count"], 5);
    }

    #[test]
    fn backends_are_clamped_to_the_reference_s_three() {
        for (store, backend) in [
            ("sqlite", "sqlite"),
            ("spin-sqlite", "sqlite"),
            ("durable-object", "sqlite"),
            ("memory", "unknown"),
            ("spin-key-value", "unknown"),
            ("custom", "unknown"),
        ] {
            assert_eq!(backend_label(store), backend, "{store}");
        }
    }
}
