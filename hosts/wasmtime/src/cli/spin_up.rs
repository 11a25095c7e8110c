//! `wats spin`: serves the Spin app's component (`hosts/spin`) on 127.0.0.1
//! with the key-value store and variables Spin would give it. Settings come
//! from the `WATS_*` environment (`--env-file` as for `wats serve`); Graph
//! calls are live, to `WATS_GRAPH_BASE_URL`, as they would be under Spin.

use crate::cli::env_file::EnvFile;
use crate::cli::serve::{bind_loopback, stop_signal, StoreArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wats_host::kv::Commits;
use wats_host::services::{Clock, SystemClock};
use wats_host::spin_runtime::{self as spin, SpinKv, SpinRuntime};

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
    /// Delay every key-value call by this much, as a store across the
    /// network would (tests use it to make concurrent requests overlap).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    kv_latency_ms: u64,
}

pub fn run(args: SpinArgs) -> Result<()> {
    if !args.component.is_file() {
        bail!("the Spin component was not found; run `cargo xtask spin` or pass --component PATH");
    }
    let mut settings: Vec<(String, String)> = EnvFile::read(args.env_file.as_deref())?
        .settings()
        .collect();
    settings.extend(std::env::vars());
    let variables = spin::variables(settings);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let (kv, store_label) = args
        .store
        // The Spin host commits each write: Spin's key-value has no
        // request boundary to commit at.
        .open(".wats/spin.sqlite3", clock, Commits::PerWrite)?;
    let kv = SpinKv::new(kv, Duration::from_millis(args.kv_latency_ms));
    eprintln!("wats spin: compiling the component…");
    let runtime = Arc::new(SpinRuntime::load(&args.component, kv, variables)?);
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
        spin::serve(runtime, listener, stop_signal()).await?;
        eprintln!("wats spin: stopped");
        Ok(())
    })
}
