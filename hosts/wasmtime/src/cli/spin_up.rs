//! `wats spin`: serves the Spin app's component (`hosts/spin`) on 127.0.0.1
//! with the database (or key-value store) and variables Spin would give it. Settings come
//! from the `WATS_*` environment (`--env-file` as for `wats serve`); Graph
//! calls are live, to `WATS_GRAPH_BASE_URL`, as they would be under Spin.

use crate::cli::env_file::EnvFile;
use crate::cli::serve::{bind_loopback, stop_signal, StoreArgs};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wats_host::kv::Commits;
use wats_host::services::{Clock, SystemClock};
use wats_host::spin_runtime::{self as spin, SpinGrant, SpinKv, SpinRuntime, SpinSql};

/// The store the app's manifest grants the component.
#[derive(Clone, Copy, ValueEnum)]
enum Grant {
    /// `sqlite_databases = ["default"]`, as hosts/spin/spin.toml does.
    Sqlite,
    /// `key_value_stores = ["default"]`: the component falls back to it.
    KeyValue,
}

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
    #[command(flatten)]
    store: StoreArgs,
    /// The store the app grants the component; its data lives in the
    /// --state file (or in memory).
    #[arg(long, value_enum, default_value = "sqlite")]
    grant: Grant,
    /// Delay every call to the store (each SQL statement, each key-value
    /// call) by this much, as a store across the network would (tests use
    /// it to make concurrent requests overlap).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    kv_latency_ms: u64,
}

const DEFAULT_STATE: &str = ".wats/spin.sqlite3";

pub fn run(args: SpinArgs) -> Result<()> {
    if !args.component.is_file() {
        bail!("the Spin component was not found; run `cargo xtask spin` or pass --component PATH");
    }
    let mut settings: Vec<(String, String)> = EnvFile::read(args.env_file.as_deref())?
        .settings()
        .collect();
    settings.extend(std::env::vars());
    let variables = spin::variables(settings);
    let latency = Duration::from_millis(args.kv_latency_ms);
    let (grant, store_label) = match args.grant {
        Grant::Sqlite => {
            let path = args.store.file(DEFAULT_STATE)?;
            let label = if path.is_some() {
                "spin-sqlite"
            } else {
                "spin-sqlite (memory)"
            };
            (
                SpinGrant::Sqlite(SpinSql::open(path.as_deref(), latency)?),
                label,
            )
        }
        Grant::KeyValue => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
            // The Spin host commits each write: Spin's key-value has no
            // request boundary to commit at.
            let (kv, label) = args.store.open(DEFAULT_STATE, clock, Commits::PerWrite)?;
            (SpinGrant::KeyValue(SpinKv::new(kv, latency)), label)
        }
    };
    eprintln!("wats spin: compiling the component…");
    let runtime = Arc::new(SpinRuntime::load(&args.component, grant, variables)?);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let listener = bind_loopback(args.port).await?;
        let bound = listener.local_addr()?;
        let banner = format!(
            "wats spin: listening on http://{bound} (runtime: wasi:http, store: {store_label})\n"
        );
        let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
        spin::serve(runtime.clone(), listener, stop_signal()).await?;
        eprintln!(
            "wats spin: stopped after {} store calls",
            runtime.store_calls()
        );
        Ok(())
    })
}
