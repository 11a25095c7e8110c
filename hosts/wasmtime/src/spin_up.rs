//! `wats spin`: serves the Spin app's component (`hosts/spin`) on 127.0.0.1
//! with the key-value store and variables Spin would give it. Settings come
//! from the `WATS_*` environment (`--env-file` as for `wats serve`); Graph
//! calls are live, to `WATS_GRAPH_BASE_URL`, as they would be under Spin.

use crate::serve::{parse_env_file, stop_signal};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wats_host::kv::{MemoryKv, SqliteKv};
use wats_host::services::{Clock, KvStore, SystemClock};
use wats_host::spin::{self, SpinKv, SpinRuntime};

#[derive(Args)]
pub struct SpinArgs {
    /// The Spin component (`cargo xtask spin` builds it).
    #[arg(long, value_name = "PATH")]
    component: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Read WATS_* settings from this file (KEY=VALUE lines); the environment wins.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// SQLite file behind the key-value store [default: .wats/spin.sqlite3].
    #[arg(long, value_name = "PATH", conflicts_with = "memory")]
    state: Option<PathBuf>,
    /// Keep the key-value store in memory (lost on exit).
    #[arg(long)]
    memory: bool,
    /// Delay every key-value call by this much, as a store across the
    /// network would (tests use it to make concurrent requests overlap).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    kv_latency_ms: u64,
}

pub fn run(args: SpinArgs) -> Result<()> {
    if !args.component.is_file() {
        bail!("the Spin component was not found; run `cargo xtask spin` or pass --component PATH");
    }
    let mut settings = Vec::new();
    if let Some(path) = &args.env_file {
        let text =
            std::fs::read_to_string(path).map_err(|_| anyhow!("cannot read the --env-file"))?;
        settings.extend(parse_env_file(&text)?);
    }
    settings.extend(std::env::vars());
    let variables = spin::variables(settings);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let (kv, store_label): (Arc<dyn KvStore>, &str) = if args.memory {
        (Arc::new(MemoryKv::new(clock)), "memory")
    } else {
        let path = args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from(".wats/spin.sqlite3"));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).context("creating the state directory")?;
        }
        let store = SqliteKv::open(&path, clock)
            .map_err(|_| anyhow!("cannot open the --state SQLite file"))?;
        (Arc::new(store), "sqlite")
    };
    eprintln!("wats spin: compiling the component…");
    let kv = SpinKv::new(kv, Duration::from_millis(args.kv_latency_ms));
    let runtime = Arc::new(SpinRuntime::load(&args.component, kv, variables)?);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on 127.0.0.1:{} (in use? pass --port N)",
                    args.port
                )
            })?;
        let bound = listener.local_addr()?;
        let banner = format!(
            "wats spin: listening on http://{bound} (runtime: wasi:http, store: {store_label})\n"
        );
        let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
        spin::serve(runtime, listener, stop_signal()).await?;
        eprintln!("wats spin: stopped");
        Ok(())
    })
}
