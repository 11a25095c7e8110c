//! `wats serve`: settings, secrets and stores for the local host.

use crate::cli::env_file::EnvFile;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wats_host::dry_run::DryRun;
use wats_host::kv::{Commits, MemoryKv, SqliteKv};
use wats_host::otlp::OtlpMetrics;
use wats_host::outbound::LiveHttp;
use wats_host::runtime::{Level, Request, Runtime};
use wats_host::services::{Clock, EventSink, KvStore, Outbound, Services, SystemClock};
use wats_host::sinks::{log_line, JsonLinesFile, LogEvents, StderrLog};

/// The synthetic credentials of dry-run mode (documented in README.md).
pub const DRY_RUN_SETTINGS: &[(&str, &str)] = &[
    ("WATS_ACCESS_TOKEN", "dry-run-access-token"),
    ("WATS_APP_SECRET", "dry-run-app-secret"),
    ("WATS_VERIFY_TOKEN", "dry-run-verify-token"),
    ("WATS_SERVICE_BEARER_TOKEN", "dry-run-service-token"),
    ("WATS_PHONE_NUMBER_ID", "100000000000001"),
    ("WATS_WABA_ID", "200000000000001"),
];

/// Whether `value` is the public dry-run value of the secret `key`: known
/// to everyone, so never a secret of one's own.
pub fn is_dry_run_secret(key: &str, value: &str) -> bool {
    wats::config::is_secret(key)
        && DRY_RUN_SETTINGS
            .iter()
            .any(|(name, dry_run)| *name == key && *dry_run == value)
}

#[derive(Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// The component to run [default: $WATS_COMPONENT, else target/wats/wats.wasm beside this binary].
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// Send real Graph requests to WATS_GRAPH_BASE_URL with secrets from the environment.
    #[arg(long, requires = "yes_live")]
    live: bool,
    /// Confirms --live: messages sent are real and cannot be unsent.
    #[arg(long, requires = "live")]
    yes_live: bool,
    /// Read WATS_* settings, and the variables a profile references, from
    /// this file (KEY=VALUE lines); the environment wins.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Read settings from this profile (`wats init`), its secrets from the
    /// variables it references (in the environment or the --env-file);
    /// --env-file and the environment win.
    #[arg(long, visible_alias = "config", value_name = "PATH")]
    profile: Option<PathBuf>,
    /// Dry-run, the default, said explicitly: synthetic credentials and a
    /// Graph stand-in that never touches the network.
    #[arg(long, conflicts_with = "live")]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// Append each dispatched update as a JSON line to this file.
    #[arg(long, value_name = "PATH")]
    events_out: Option<PathBuf>,
    /// Drain the outbox and the events queue this often (and right after a request that queued work).
    #[arg(long, value_name = "MILLIS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    drain_every_ms: u64,
}

/// How long a drain woken by a request waits for more work to gather.
const COALESCE: Duration = Duration::from_millis(100);
/// Outbox items (and events) one drain sends at most.
const DRAIN_BATCH: u32 = 50;

/// The drain on a thread of its own, at a lower CPU priority than the
/// threads that answer requests: when a busy number's events compete with
/// its deliveries for the cores, Meta's deliveries go first, and the
/// events follow as the cores allow. Dropping the sender stops it.
fn spawn_drainer(
    runtime: Arc<Runtime>,
    every: Duration,
) -> Result<tokio::sync::oneshot::Sender<()>> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let drainer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("wats-drain".into())
        .spawn(move || {
            lower_this_threads_priority();
            drainer.block_on(async move {
                tokio::select! {
                    () = drain_outbox(runtime, every) => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(stop)
}

/// Nice 10 for the calling thread (Linux sets niceness per thread); a
/// no-op elsewhere.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `0` is this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Drains the outbox and the events queue on a timer, and right after a
/// request that may have queued some: each time again and again while a
/// drain takes all it may (a busy number queues an event per update and
/// endpoint).
async fn drain_outbox(runtime: Arc<Runtime>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = runtime.queued() => {
                // Gathers what the next requests queue too: fewer, larger
                // drains cost the deliveries less than one per request.
                tokio::time::sleep(COALESCE).await;
            }
        }
        // The service logs each drain that did something.
        loop {
            match runtime.drain(DRAIN_BATCH).await {
                Ok(report) if wats::DrainReport::from(report).took_all_it_could(DRAIN_BATCH) => {}
                Ok(_) => break,
                Err(_) => {
                    eprintln!("{}", log_line(Level::Warn, "wats.host.drain_failed", &[]));
                    break;
                }
            }
        }
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    let component = component_path(args.component.as_deref())?;
    let mut settings = settings(&args)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let (kv, store_label) =
        args.store
            .open(".wats/state.sqlite3", clock.clone(), Commits::Grouped)?;
    // Held until the process ends: the only live writer of its store, it
    // may take over the webhook claims of its earlier lives at once.
    let _owner = args.store.own(".wats/state.sqlite3")?;
    settings.insert(wats::config::STORE_EXCLUSIVE_KEY.into(), "1".into());
    let outbound: Arc<dyn Outbound> = if live(&args) {
        Arc::new(LiveHttp::new()?)
    } else {
        let graph = settings.get("WATS_GRAPH_BASE_URL").map(String::as_str);
        Arc::new(DryRun::new(
            graph.unwrap_or(wats::config::DEFAULT_GRAPH_BASE_URL),
        )?)
    };
    let events: Arc<dyn EventSink> = match &args.events_out {
        Some(path) => Arc::new(JsonLinesFile::open(path).context("opening the --events-out file")?),
        None => Arc::new(LogEvents(StderrLog)),
    };
    settings.insert("wats.store".into(), store_label.into());
    let mut services = Services::new(settings, kv, outbound, events, Arc::new(StderrLog), clock);
    let otlp = OtlpMetrics::from_env()?.map(Arc::new);
    if let Some(otlp) = &otlp {
        services = services.with_telemetry(otlp.clone());
    }
    eprintln!("wats: compiling the component…");
    let runtime = Arc::new(Runtime::load(&component, services)?);

    let otlp_on = otlp.is_some();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = tokio.block_on(async move {
        check_ready(&runtime).await?;
        let listener = bind_loopback(args.port).await?;
        let bound = listener.local_addr()?;
        let mode = if live(&args) { "live" } else { "dry-run" };
        let events = if args.events_out.is_some() { "file" } else { "log" };
        // One write, and a closed stdout is no reason to stop serving (a
        // parent that only wanted the address may close it at once).
        let telemetry = if otlp_on { "otlp" } else { "none" };
        let mut banner = format!("wats: listening on http://{bound} (mode: {mode}, store: {store_label}, events: {events}, telemetry: {telemetry})\n");
        if !live(&args) {
            banner.push_str("wats: dry-run credentials are synthetic: service bearer token `dry-run-service-token`, verify token `dry-run-verify-token`, app secret `dry-run-app-secret`\n");
        }
        let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
        let drainer = spawn_drainer(runtime.clone(), Duration::from_millis(args.drain_every_ms))?;
        let served = wats_host::http_server::serve(runtime, listener, stop_signal()).await;
        drop(drainer);
        served
    });
    // After the server: the export's last batch leaves, and its thread
    // ends, outside the async runtime.
    if let Some(otlp) = otlp {
        otlp.shutdown();
    }
    served?;
    eprintln!("wats: stopped");
    Ok(())
}

/// A listener on 127.0.0.1 only (`0` picks a free port).
pub async fn bind_loopback(port: u16) -> Result<tokio::net::TcpListener> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} (in use? pass --port N)"))
}

/// Ctrl-C, or the SIGTERM a container runtime or service manager sends.
pub async fn stop_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn component_path(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os("WATS_COMPONENT") {
            Some(path) => PathBuf::from(path),
            None => {
                let exe = std::env::current_exe()?;
                let target = exe
                    .parent()
                    .and_then(Path::parent)
                    .context("locating the target directory")?;
                target.join("wats/wats.wasm")
            }
        },
    };
    if !path.is_file() {
        bail!("the wats component was not found; run `cargo xtask build` or pass --component PATH");
    }
    Ok(path)
}

/// Live only with `--live --yes-live` (which `--dry-run` conflicts with).
fn live(args: &ServeArgs) -> bool {
    args.live && !args.dry_run
}

/// WATS_* settings: in dry-run the synthetic credentials replace any
/// secrets; in live mode everything comes from the env file and environment.
fn settings(args: &ServeArgs) -> Result<HashMap<String, String>> {
    let env_file = EnvFile::read(args.env_file.as_deref())?;
    let mut settings = HashMap::new();
    if let Some(path) = &args.profile {
        let profile = crate::cli::profile::Profile::read(path)?;
        settings.extend(profile.resolve(|name| env_file.lookup(name)).0);
    }
    settings.extend(env_file.settings());
    settings.extend(std::env::vars().filter(|(key, _)| key.starts_with("WATS_")));
    if !live(args) {
        // Secrets are always the synthetic ones; ids only where none is set.
        for (key, value) in DRY_RUN_SETTINGS {
            if wats::config::is_secret(key) {
                settings.insert((*key).to_owned(), (*value).to_owned());
            } else {
                settings
                    .entry((*key).to_owned())
                    .or_insert_with(|| (*value).to_owned());
            }
        }
    }
    settings.insert("wats.runtime".into(), "wasmtime".into());
    Ok(settings)
}

/// Where the kv store lives: `--state FILE` (SQLite) or `--memory`.
#[derive(Args)]
pub struct StoreArgs {
    /// SQLite file for the kv store [default: .wats/state.sqlite3, or .wats/spin.sqlite3 for `wats spin`].
    #[arg(long, value_name = "PATH", conflicts_with = "memory")]
    state: Option<PathBuf>,
    /// Keep the kv store in memory (lost on exit).
    #[arg(long)]
    memory: bool,
}

impl StoreArgs {
    /// The store, and its name for `/status`.
    pub fn open(
        &self,
        default_path: &str,
        clock: Arc<dyn Clock>,
        commits: Commits,
    ) -> Result<(Arc<dyn KvStore>, &'static str)> {
        let Some(path) = self.file(default_path)? else {
            return Ok((Arc::new(MemoryKv::new(clock)), "memory"));
        };
        let store = SqliteKv::open(&path, clock, commits)
            .map_err(|_| anyhow!("cannot open the --state SQLite file"))?;
        Ok((Arc::new(store), "sqlite"))
    }

    /// The SQLite file, its directory made; none for `--memory`.
    pub fn file(&self, default_path: &str) -> Result<Option<PathBuf>> {
        if self.memory {
            return Ok(None);
        }
        let path = self.path(default_path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).context("creating the state directory")?;
        }
        Ok(Some(path))
    }

    fn path(&self, default_path: &str) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_path))
    }

    /// Makes this process the only one serving the SQLite file: an
    /// exclusive lock on `<file>-lock`, held as long as the returned file
    /// is. A memory store is its process's own already.
    fn own(&self, default_path: &str) -> Result<Option<std::fs::File>> {
        if self.memory {
            return Ok(None);
        }
        let mut lock = self.path(default_path).into_os_string();
        lock.push("-lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .context("creating the --state lock file")?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another wats serve is using this --state file; give each its own (--state PATH)"
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(error).context("locking the --state file")
            }
        }
    }
}

/// Refuses to start with a configuration the service rejects, and says
/// which key is wrong (the component's message names it, never its value).
async fn check_ready(runtime: &Runtime) -> Result<()> {
    let request = Request {
        method: "GET".into(),
        path_with_query: "/readyz".into(),
        headers: vec![],
        body: vec![],
    };
    let response = runtime.handle(request).await?;
    if response.status == 200 {
        return Ok(());
    }
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("the configuration is invalid");
    bail!("{message}")
}
