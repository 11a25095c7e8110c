//! What the wasmtime host's test binaries share: the suite reader
//! (`wats-suite`, re-exported), the built artifacts, and a capturing log
//! and a movable clock over the host's services.
#![allow(dead_code)] // each test binary uses a different part

pub mod forwarding;
pub mod http;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use wats_host::runtime::Level;
use wats_host::services::{Clock, LogSink, SystemClock};
use wats_host::sinks::log_line;

pub use wats_suite::*;

/// An artifact `cargo xtask build` made: `$env` if set, else `default`
/// under the workspace root.
pub fn built_artifact(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default));
    assert!(
        path.is_file(),
        "no {} at {}: run `cargo xtask build` first (cargo xtask test does)",
        default,
        path.display()
    );
    path
}

/// The component `cargo xtask build` made (or `$WATS_COMPONENT`).
pub fn component_path() -> PathBuf {
    built_artifact("WATS_COMPONENT", "target/wats/wats.wasm")
}

/// Every log line the component wrote, as the host would print it.
#[derive(Default)]
pub struct CapturedLog(pub Mutex<Vec<String>>);

impl LogSink for CapturedLog {
    fn write(&self, level: Level, event: &str, fields: &[(String, String)]) {
        self.0.lock().unwrap().push(log_line(level, event, fields));
    }
}

/// The system clock moved forward by what a test asked for, so that
/// backoffs and leases come due without waiting.
#[derive(Default)]
pub struct ShiftedClock {
    system: SystemClock,
    pub offset_ms: AtomicU64,
}

impl Clock for ShiftedClock {
    fn now_millis(&self) -> u64 {
        self.system.now_millis() + self.offset_ms.load(Ordering::SeqCst)
    }
    fn monotonic_nanos(&self) -> u64 {
        self.system.monotonic_nanos() + self.offset_ms.load(Ordering::SeqCst) * 1_000_000
    }
}
