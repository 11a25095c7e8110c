//! The conformance suite, run natively: the service crate over the
//! in-memory `TestHost`, no wasm build needed. The same cases run under
//! wasmtime and over HTTP on every host (hosts/wasmtime/tests); here a
//! failure points at the service itself.

use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};
use wats::testing::TestHost;
use wats::{block_on, drain, handle, Host, OutboundError, Request, Response};
use wats_suite::{
    assert_no_canaries, check, drain_limit, graph_replies, load_suites, prepare, run_suites,
    CaseFaults, GraphCall, GraphReply, Observed, Suite,
};

fn host_for(suite: &Suite) -> TestHost {
    let mut settings = suite.settings.clone();
    settings.insert("wats.runtime".into(), "native".into());
    TestHost::with_settings(settings)
}

/// The real time, as the other runners' hosts have it (records are
/// ordered by when they were made).
fn real_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Sets up the case's Graph replies and faults, then sends its request (or
/// runs the drain, answered as a 200 JSON report). The clock is the real
/// one plus what the suite's cases moved it by (`clock_offset`).
fn respond(host: &TestHost, suite: &Suite, case: &Value, clock_offset: &mut u64) -> Response {
    *host.replies.borrow_mut() = graph_replies(case)
        .into_iter()
        .map(|reply| match reply {
            GraphReply::Http {
                status,
                headers,
                body,
            } => Ok(Response {
                status,
                headers,
                body,
            }),
            GraphReply::Timeout => Err(OutboundError::Timeout),
        })
        .collect();
    let faults = CaseFaults::of(case);
    host.kv_down.set(faults.kv_unavailable);
    host.kv_absent.set(faults.kv_not_configured);
    *clock_offset += faults.advance_clock_ms;
    host.now.set(real_millis() + *clock_offset);
    *host.refused_ids.borrow_mut() = faults.dispatch_fails_for;
    let response = if let Some(limit) = drain_limit(case) {
        let report = block_on(drain(host, limit));
        Response {
            status: 200,
            headers: Vec::new(),
            body: report.to_json().to_string().into_bytes(),
        }
    } else {
        let prepared = prepare(case, suite);
        let request = Request {
            method: prepared.method,
            path_with_query: prepared.path,
            headers: prepared.headers,
            body: prepared.body,
        };
        block_on(handle(host, request))
    };
    host.kv_down.set(false);
    host.kv_absent.set(false);
    host.refused_ids.borrow_mut().clear();
    response
}

/// What the host saw during the case: Graph calls, updates, log lines.
fn observe(host: &TestHost, suite: &Suite, response: Response) -> Result<Observed, String> {
    let base = &suite.settings["WATS_GRAPH_BASE_URL"];
    let graph_calls = host
        .sent
        .take()
        .into_iter()
        .map(|request| GraphCall {
            path: request
                .url
                .strip_prefix(base.as_str())
                .unwrap_or(&request.url)
                .to_owned(),
            method: request.method,
            headers: request.headers,
            body: request.body,
        })
        .collect();
    let mut updates = Vec::new();
    for update in host.updates.take() {
        let json: Value = serde_json::from_str(&update.json).map_err(|_| "update is not JSON")?;
        if json["kind"].as_str() != Some(update.kind) {
            return Err("an update's record and JSON disagree on its kind".into());
        }
        updates.push(json);
    }
    let logs = host
        .logs
        .borrow()
        .iter()
        .map(|line| serde_json::from_str(line).map_err(|_| "a log line is not JSON".to_owned()))
        .collect::<Result<_, _>>()?;
    Ok(Observed {
        status: response.status,
        headers: response.headers,
        body: response.body,
        graph_calls,
        updates,
        logs: Some(logs),
        state_calls: None,
    })
}

fn state_calls(host: &TestHost) -> u64 {
    let snapshot = host.metrics_snapshot();
    wats_suite::state_calls(snapshot.iter().map(|s| (s.name.as_str(), s.value)))
}

#[test]
fn conformance_suite_natively() {
    let (base, _) = load_suites();
    run_suites("native", |suite, cases| {
        let host = host_for(suite);
        let mut clock_offset = 0;
        let mut suite_logs = Vec::new();
        let mut results = Vec::new();
        for case in cases {
            let name = case["name"].as_str().unwrap_or("unnamed").to_owned();
            let calls_before = state_calls(&host);
            let response = respond(&host, suite, case, &mut clock_offset);
            let text = format!(
                "{:?} {}",
                response.headers,
                String::from_utf8_lossy(&response.body)
            );
            assert_no_canaries(
                &format!("response to {name}"),
                &text,
                &suite.secret_values(),
            );
            let result = observe(&host, suite, response).and_then(|mut observed| {
                observed.state_calls = Some(state_calls(&host) - calls_before);
                check(case, suite, &observed)
            });
            suite_logs.extend(host.logs.take());
            results.push((name, result));
        }
        let mut private = base.private_values.clone();
        private.extend(suite.secret_values());
        let metrics: Vec<String> = host
            .metrics_snapshot()
            .iter()
            .map(|sample| format!("{} {:?}", sample.name, sample.labels))
            .collect();
        assert_no_canaries(
            &format!("metrics of {}", suite.name),
            &metrics.join("\n"),
            &private,
        );
        assert_no_canaries(
            &format!("logs of {}", suite.name),
            &suite_logs.join("\n"),
            &private,
        );
        results
    });
}
