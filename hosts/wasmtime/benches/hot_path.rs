//! `cargo xtask bench`: the hot path, measured (not asserted) against the
//! budgets of the issue tracker. Each figure is the median of several timed
//! batches, per operation.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use wats_host::dry_run::DryRunGraph;
use wats_host::kv::MemoryKv;
use wats_host::runtime::{Level, Request, Runtime, Update};
use wats_host::services::{EventSink, LogSink, Services, SystemClock};

const APP_SECRET: &str = "bench-app-secret";
const BATCHES: usize = 15;

struct Discard;
impl EventSink for Discard {
    fn dispatch(&self, _: &Update) -> Result<(), String> {
        Ok(())
    }
}
impl LogSink for Discard {
    fn write(&self, _: Level, _: &str, _: &[(String, String)]) {}
}

/// Time per call of `f` in microseconds: the median batch, and the fastest
/// batch (what the code costs when nothing else on the machine interferes).
struct Timing {
    median: f64,
    fastest: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} µs median, {:.2} µs fastest",
            self.median, self.fastest
        )
    }
}

fn per_call_micros(iterations: usize, mut f: impl FnMut(usize)) -> Timing {
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|batch| {
            let start = Instant::now();
            for i in 0..iterations {
                f(batch * iterations + i);
            }
            start.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    Timing {
        median: batches[BATCHES / 2],
        fastest: batches[0],
    }
}

/// Like `per_call_micros` for several operations at once, one batch of each
/// in turn, for many rounds.
fn interleaved<const N: usize>(iterations: usize, mut ops: [&mut dyn FnMut(); N]) -> [Timing; N] {
    let mut batches = [(); N].map(|_| Vec::new());
    for _ in 0..BATCHES * 5 {
        for (op, times) in ops.iter_mut().zip(batches.iter_mut()) {
            let start = Instant::now();
            for _ in 0..iterations {
                op();
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        }
    }
    batches.map(|mut times| {
        times.sort_by(f64::total_cmp);
        Timing {
            median: times[times.len() / 2],
            fastest: times[0],
        }
    })
}

/// Judged on the median: the figure a busy machine actually delivers.
fn verdict(timing: &Timing, budget: f64) -> &'static str {
    if timing.median <= budget {
        "within budget"
    } else {
        "OVER BUDGET"
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let fixture = std::fs::read(root().join("tests/conformance/fixtures/batched-messages.json"))
        .expect("fixture");
    let signature = wats::sign(APP_SECRET, &fixture);
    println!("wats hot path (release build; median of {BATCHES} batches)");

    // Interleaved batch by batch, so that all four see the same machine: a
    // shared VM's speed drifts from second to second.
    let [native, verify, normalize, one_pass] = interleaved(
        2_000,
        [
            &mut || {
                assert!(wats::signature_valid(
                    APP_SECRET,
                    Some(&signature),
                    black_box(&fixture)
                ));
                black_box(wats::normalize(black_box(&fixture)).expect("valid"));
            },
            &mut || {
                assert!(wats::signature_valid(
                    APP_SECRET,
                    Some(&signature),
                    black_box(&fixture)
                ));
            },
            &mut || {
                black_box(wats::normalize(black_box(&fixture)).expect("valid"));
            },
            // The floor: one pass of serde_json over the body that builds nothing.
            &mut || {
                black_box(
                    serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&fixture)).unwrap(),
                );
            },
        ],
    );
    println!(
        "  native verify + normalize, {} B batched webhook (6 updates): {native}  (budget 10 µs: {})",
        fixture.len(),
        verdict(&native, 10.0)
    );
    println!("    (verify {verify}; normalize {normalize}; one bare serde_json pass over the body {one_pass})");
    // The machine's speed drifts; the ratio to the bare pass does not, so it
    // tells a regression from a slow machine.
    println!(
        "    verify + normalize = {:.1}× one bare serde_json pass (medians)",
        native.median / one_pass.median
    );

    let component = std::env::var_os("WATS_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wats/wats.wasm"));
    let clock = Arc::new(SystemClock::default());
    let settings: HashMap<String, String> = [
        ("WATS_PHONE_NUMBER_ID", "106540352242922"),
        ("WATS_ACCESS_TOKEN", "bench-access-token"),
        ("WATS_APP_SECRET", APP_SECRET),
        ("WATS_VERIFY_TOKEN", "bench-verify-token"),
        ("WATS_SERVICE_BEARER_TOKEN", "bench-service-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let services = Services::new(
        settings,
        Arc::new(MemoryKv::new(clock.clone())),
        Arc::new(DryRunGraph::default()),
        Arc::new(Discard),
        Arc::new(Discard),
        clock,
    );
    let runtime =
        Runtime::load(&component, services).expect("component loads (run `cargo xtask build`)");
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let healthz = || Request {
        method: "GET".into(),
        path_with_query: "/healthz".into(),
        headers: vec![],
        body: vec![],
    };
    let per_request = per_call_micros(2_000, |_| {
        let response = executor
            .block_on(runtime.handle(healthz()))
            .expect("handled");
        assert_eq!(response.status, 200);
    });
    println!(
        "  wasmtime instantiate + handle, GET /healthz: {per_request}  (budget 60 µs: {})",
        verdict(&per_request, 60.0)
    );
    let webhook = || Request {
        method: "POST".into(),
        path_with_query: "/webhooks/whatsapp".into(),
        headers: vec![("x-hub-signature-256".into(), signature.clone())],
        body: fixture.clone(),
    };
    let per_webhook = per_call_micros(1_000, |_| {
        let response = executor
            .block_on(runtime.handle(webhook()))
            .expect("handled");
        assert_eq!(response.status, 200);
    });
    println!("  wasmtime instantiate + handle, signed batched webhook (dedupe hits, memory kv): {per_webhook}");

    // The whole path: every delivery new, so each update is claimed,
    // projected, dispatched and marked done.
    const FRESH_PER_BATCH: usize = 400;
    let fresh: Vec<Request> = (0..BATCHES * FRESH_PER_BATCH)
        .map(|n| {
            let body = String::from_utf8_lossy(&fixture)
                .replace("wamid.", &format!("wamid.HP{n:08}"))
                .into_bytes();
            Request {
                headers: vec![("x-hub-signature-256".into(), wats::sign(APP_SECRET, &body))],
                body,
                ..webhook()
            }
        })
        .collect();
    let per_fresh_webhook = per_call_micros(FRESH_PER_BATCH, |n| {
        let response = executor
            .block_on(runtime.handle(fresh[n].clone()))
            .expect("handled");
        assert_eq!(response.status, 200);
    });
    println!("  wasmtime instantiate + handle, signed batched webhook (6 new updates, memory kv): {per_fresh_webhook}");

    let bytes = std::fs::read(&component).expect("component");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&bytes).unwrap();
    let gzip = gzip.finish().unwrap().len() as f64 / 1024.0;
    println!(
        "  component size: {:.1} KiB raw, {gzip:.1} KiB gzip  (budget 200 KiB gzip: {})",
        bytes.len() as f64 / 1024.0,
        if gzip <= 200.0 {
            "within budget"
        } else {
            "OVER BUDGET"
        }
    );
}
