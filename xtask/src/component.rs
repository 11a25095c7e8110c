//! Builds the component: the service crate for wasm32-unknown-unknown with
//! the size-tuned `component` profile, turned into a component by
//! wit-component. It imports only its own world: no WASI.

use crate::steps::{self, Steps};
use anyhow::{Context, Result};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::{Path, PathBuf};
use wit_component::ComponentEncoder;

pub fn output_path() -> PathBuf {
    steps::root().join("target/wats/wats.wasm")
}

/// Linker settings of the core module: a 256 KiB stack instead of Rust's
/// 1 MiB, so that a fresh instance's data and heap sit in fewer pages.
/// The stack comes first in memory, so an overflow traps rather than
/// overwriting data.
const LINK_ARGS: &str = "-C link-arg=-zstack-size=262144";

pub fn build(steps: &mut Steps) -> Result<PathBuf> {
    std::env::set_var("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", LINK_ARGS);
    steps.cargo(
        "build the service for wasm32-unknown-unknown (profile `component`)",
        &[
            "build",
            "--package",
            "wats-component",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "component",
            "--features",
            "export",
            "--locked",
        ],
    )?;
    let core_path = steps::root().join("target/wasm32-unknown-unknown/component/wats.wasm");
    let core =
        std::fs::read(&core_path).with_context(|| format!("reading {}", core_path.display()))?;
    let component = ComponentEncoder::default()
        .module(&core)
        .context("reading the core module's component type")?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    let out = output_path();
    write_artifact("component", &out, &component)?;
    report_console_page()?;
    Ok(out)
}

/// The operator console's page as served: its HTML with the style and
/// script inline (`component/console/`, docs/console.md).
fn report_console_page() -> Result<()> {
    let dir = steps::root().join("component/console");
    let mut page = Vec::new();
    for file in ["console.html", "console.css", "console.js"] {
        page.extend(std::fs::read(dir.join(file)).with_context(|| format!("reading {file}"))?);
    }
    eprintln!(
        "    console page: {} raw, {} gzip (budget 25 KiB gzip)",
        kib(page.len()),
        kib(gzip_len(&page)?)
    );
    Ok(())
}

/// Writes `bytes` to `out` and prints the artifact's raw and gzip size.
pub fn write_artifact(label: &str, out: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    std::fs::write(out, bytes)?;
    report_size(label, out, bytes)
}

fn report_size(label: &str, out: &Path, bytes: &[u8]) -> Result<()> {
    eprintln!(
        "    {label}: {} ({} raw, {} gzip)",
        out.strip_prefix(steps::root()).unwrap_or(out).display(),
        kib(bytes.len()),
        kib(gzip_len(bytes)?)
    );
    Ok(())
}

pub fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

pub fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}
