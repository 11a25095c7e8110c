//! The Spin app's component (`hosts/spin`): a wasi:http component built for
//! wasm32-wasip2 with the size-tuned `component` profile, and `cargo xtask
//! spin`, which serves it under `wats spin` (Spin itself cannot be installed
//! on these machines; docs/hosts/spin.md).

use crate::component::write_artifact;
use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub fn output_path() -> PathBuf {
    steps::root().join("target/wats/wats-spin.wasm")
}

pub fn build(steps: &mut Steps) -> Result<PathBuf> {
    steps.cargo(
        "build the Spin component for wasm32-wasip2 (profile `component`)",
        &[
            "build",
            "--package",
            "wats-spin",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "component",
            "--locked",
        ],
    )?;
    let built = steps::root().join("target/wasm32-wasip2/component/wats_spin.wasm");
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let out = output_path();
    write_artifact("Spin component", &out, &bytes)?;
    Ok(out)
}

/// `cargo xtask spin [--port P] [ARGS..]`: builds the Spin component and the
/// host, then runs `wats spin` on 127.0.0.1 with settings from `WATS_*`.
pub fn run(args: &[String]) -> Result<()> {
    let mut steps = Steps::new(4);
    steps.ensure_targets()?;
    let wasm = build(&mut steps)?;
    steps.cargo(
        "build the wats host",
        &["build", "--package", "wats-host", "--bin", "wats"],
    )?;
    steps.start("run wats spin (Ctrl-C stops it)");
    let status = std::process::Command::new(steps::root().join("target/debug/wats"))
        .arg("spin")
        .arg("--component")
        .arg(&wasm)
        .args(args)
        .status()?;
    if !status.success() {
        bail!("wats spin exited with {status}");
    }
    Ok(())
}
