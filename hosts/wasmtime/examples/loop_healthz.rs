use std::sync::Arc;
use wats_host::kv::MemoryKv;
use wats_host::outbound::DryRunGraph;
use wats_host::runtime::{Request, Runtime};
use wats_host::services::{Services, SystemClock};
use wats_host::sinks::{LogEvents, StderrLog};

fn main() {
    let clock = Arc::new(SystemClock::default());
    let settings = [
        ("WATS_PHONE_NUMBER_ID", "1"),
        ("WATS_ACCESS_TOKEN", "a"),
        ("WATS_APP_SECRET", "b"),
        ("WATS_VERIFY_TOKEN", "c"),
        ("WATS_SERVICE_BEARER_TOKEN", "d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let services = Services::new(
        settings,
        Arc::new(MemoryKv::new(clock.clone())),
        Arc::new(DryRunGraph::default()),
        Arc::new(LogEvents(StderrLog)),
        Arc::new(StderrLog),
        clock,
    );
    let runtime = Runtime::load(std::path::Path::new("target/wats/wats.wasm"), services).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(1000);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let r = rt
            .block_on(runtime.handle(Request {
                method: "GET".into(),
                path_with_query: "/healthz".into(),
                headers: vec![],
                body: vec![],
            }))
            .unwrap();
        assert_eq!(r.status, 200);
    }
    eprintln!(
        "{:.1} us/request",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
