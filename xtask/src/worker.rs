//! The Cloudflare Worker (`hosts/cloudflare`): its pinned tools, its build
//! with worker-build, and `wrangler dev` on loopback. Every tool is
//! installed on first use and reused from `~/.cache/wats` (cargo tools) and
//! `hosts/cloudflare/node_modules` (npm, from the committed lock file).

use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKER_BUILD: &str = "0.8.7";
/// Must equal the `wasm-bindgen` pin in hosts/cloudflare/Cargo.toml: the CLI
/// refuses a module from another version.
const WASM_BINDGEN: &str = "0.2.130";

pub fn crate_dir() -> PathBuf {
    steps::root().join("hosts/cloudflare")
}

/// The pinned JS tools of the Worker build.
fn npm_tools(steps: &mut Steps) -> Result<PathBuf> {
    steps.start("npm tools: wrangler, esbuild, binaryen (hosts/cloudflare/package-lock.json)");
    let dir = crate_dir();
    steps::npm_install(&dir, steps::Npm::Ci)?;
    Ok(dir.join("node_modules/.bin"))
}

/// What the Worker build needs; returns the npm bin directory.
pub fn tools(steps: &mut Steps) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let worker_build =
        steps::cargo_tool(steps, "worker-build", WORKER_BUILD, "worker-build", true)?;
    // Not --locked: its lock names a webpki-roots the registry no longer has.
    let wasm_bindgen = steps::cargo_tool(
        steps,
        "wasm-bindgen-cli",
        WASM_BINDGEN,
        "wasm-bindgen",
        false,
    )?;
    let npm_bin = npm_tools(steps)?;
    Ok((worker_build, wasm_bindgen, npm_bin))
}

/// Builds the Worker into hosts/cloudflare/build and prints its size.
pub fn build(steps: &mut Steps) -> Result<PathBuf> {
    let (worker_build, wasm_bindgen, npm_bin) = tools(steps)?;
    build_with(steps, &worker_build, &wasm_bindgen, &npm_bin)
}

pub fn build_with(
    steps: &mut Steps,
    worker_build: &Path,
    wasm_bindgen: &Path,
    npm_bin: &Path,
) -> Result<PathBuf> {
    steps.start("build the Worker (worker-build --release)");
    let dir = crate_dir();
    steps::run(
        Command::new(worker_build)
            .arg("--release")
            .current_dir(&dir)
            .env("WASM_BINDGEN_BIN", wasm_bindgen)
            .env("WASM_OPT_BIN", npm_bin.join("wasm-opt"))
            .env("ESBUILD_BIN", npm_bin.join("esbuild")),
    )?;
    let build = dir.join("build");
    let wasm = find_wasm(&build)?;
    let bytes = std::fs::read(&wasm)?;
    eprintln!(
        "    worker: {} ({:.1} KiB raw, {:.1} KiB gzip)",
        wasm.strip_prefix(steps::root()).unwrap_or(&wasm).display(),
        bytes.len() as f64 / 1024.0,
        crate::component::gzip_len(&bytes)? as f64 / 1024.0
    );
    Ok(build)
}

fn find_wasm(build: &Path) -> Result<PathBuf> {
    for entry in std::fs::read_dir(build).context("reading the Worker build")? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            return Ok(path);
        }
    }
    bail!("worker-build left no .wasm in {}", build.display())
}

/// Checks the Worker crate (its own workspace): formatting, clippy for
/// wasm32, and its wasm-bindgen tests under Node.
pub fn check(steps: &mut Steps, wasm_bindgen: &Path) -> Result<(usize, usize)> {
    let manifest = crate_dir().join("Cargo.toml");
    steps.start("the Worker crate: fmt, clippy (wasm32), wasm-bindgen tests");
    steps::run(
        Command::new(steps::cargo())
            .args(["fmt", "--check", "--manifest-path"])
            .arg(&manifest),
    )?;
    steps::run(
        Command::new(steps::cargo())
            .args([
                "clippy",
                "--locked",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
            ])
            .arg(&manifest)
            .args(["--", "-D", "warnings"]),
    )?;
    let runner = wasm_bindgen.with_file_name("wasm-bindgen-test-runner");
    std::env::set_var("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", runner);
    let manifest = manifest.to_string_lossy();
    steps::cargo_test(&[
        "test",
        "--locked",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        &manifest,
    ])
}

/// `wrangler dev --local` on 127.0.0.1:port with every `WATS_*` variable of
/// this environment passed to the Worker as a var.
pub fn dev_command(npm_bin: &Path, port: u16, persist: &Path) -> Command {
    let mut command = Command::new(npm_bin.join("wrangler"));
    command
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--config")
        .arg(steps::root().join("wrangler.toml"))
        .arg("--persist-to")
        .arg(persist)
        .args([
            "--log-level",
            "warn",
            "--show-interactive-dev-session=false",
        ])
        .env("WRANGLER_SEND_METRICS", "false")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .current_dir(steps::root());
    for (key, value) in std::env::vars().filter(|(key, _)| key.starts_with("WATS_")) {
        command.arg("--var").arg(format!("{key}:{value}"));
    }
    command
}

/// The Worker bundle's size as wrangler reports it for an upload
/// (`wrangler deploy --dry-run`, which needs no account).
pub fn report_bundle_size(steps: &mut Steps) -> Result<()> {
    steps.start("Worker bundle size (wrangler deploy --dry-run)");
    let out = steps::root().join("target/worker-dry-run");
    // A stale bundle left there would be counted too.
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(crate_dir().join("node_modules/.bin/wrangler"))
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(&out)
        .arg("--config")
        .arg(steps::root().join("wrangler.toml"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WATS_WORKER_PREBUILT", "1")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .current_dir(steps::root())
        .output()
        .context("running wrangler deploy --dry-run")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.lines().find(|line| line.contains("Total Upload")) {
        Some(line) => eprintln!("    worker bundle: {} (budget 450 KiB gzip)", line.trim()),
        None => bail!(
            "wrangler deploy --dry-run reported no size:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
    Ok(())
}

/// `cargo xtask worker --port P`.
pub fn run(args: &[String]) -> Result<()> {
    let port: u16 = match args {
        [] => 8787,
        [flag, port] if flag == "--port" => port.parse().context("--port takes a number")?,
        _ => bail!("usage: cargo xtask worker [--port P]"),
    };
    let mut steps = Steps::new(6);
    steps.ensure_targets()?;
    build(&mut steps)?;
    let npm_bin = crate_dir().join("node_modules/.bin");
    steps.start(&format!(
        "wrangler dev on http://127.0.0.1:{port} (Ctrl-C stops it)"
    ));
    let persist = steps::root().join(".wrangler/state");
    let status = dev_command(&npm_bin, port, &persist)
        // The build just ran: skip wrangler's [build] command.
        .env("WATS_WORKER_PREBUILT", "1")
        .status()?;
    if !status.success() {
        bail!("wrangler dev exited with {status}");
    }
    Ok(())
}
