//! `cargo xtask <command>`: the project's set-up, build, serve, test and
//! bench steps, each installing what it needs and skipping what is there.

mod component;
mod console;
mod fuzz;
mod jco;
mod leftovers;
mod promtool;
mod schemathesis;
mod spin;
mod steps;
mod worker;

use anyhow::{bail, Context, Result};
use steps::Steps;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build            build the wats:service component (target/wats/wats.wasm), the Spin
                   component (target/wats/wats-spin.wasm) and the JS package (hosts/jco)
  serve [ARGS..]   build what is needed and run `wats serve ARGS..` (dry-run on 127.0.0.1:8787)
  test             run every check and test: fmt, clippy, unit tests, component, conformance,
                   schemathesis, the Spin component, the JS package, a fuzz smoke, the Worker in workerd
  bench            build in release mode and report the hot-path benchmarks and sizes
  loadtest [ARGS..]  post distinct signed batched webhooks to a minimal native receiver (the
                   floor), the Node 24 + node:sqlite reference receiver, and the host, on
                   127.0.0.1; report req/s, p50/p99, errors, RSS, CPU and state calls per request.
                   ARGS: --requests N (20000) --connections C (16) --max-seconds S (120 per
                   target) --rate R (offer R req/s instead of saturating) --memory (wats serve
                   without SQLite) --host serve|worker|wrangler-dev|spin (the Worker in workerd
                   as deployed, or under wrangler dev's proxy; wats spin)
                   --kv-latency-ms MS (wats spin's store delay) --endpoints N (wats serve's
                   events to N endpoints on loopback, counted, beside the same load without them)
                   --endpoint-down-seconds S (the first endpoint answers 500 for S seconds)
  worker [--port P]  build the Cloudflare Worker and run it in workerd (wrangler dev --local) on 127.0.0.1
  worker-build     build the Cloudflare Worker only (the [build] command of wrangler.toml)
  spin [--port P]  build the Spin component and serve it with `wats spin` on 127.0.0.1 (live Graph
                   calls to WATS_GRAPH_BASE_URL, settings from WATS_*)
  fuzz [SECONDS]   run every fuzz target (cargo-fuzz, nightly) for SECONDS each (60), seeded
                   from the conformance suite; prints execs and coverage per target
  jco [--port P]   build the JS package and run its example node:http server on 127.0.0.1 under
                   Node 24 (live Graph calls to WATS_GRAPH_BASE_URL, settings from WATS_*)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(error) = run(&args) {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "build" => {
            let mut steps = Steps::new(4);
            steps.ensure_targets()?;
            let wasm = component::build(&mut steps)?;
            spin::build(&mut steps)?;
            jco::build(&mut steps, &wasm)
        }
        "serve" => serve(rest),
        "test" => test(),
        "bench" => bench(),
        "loadtest" => loadtest(rest),
        "worker" => worker::run(rest),
        "spin" => spin::run(rest),
        "jco" => jco::run(rest),
        "fuzz" => fuzz::command(rest),
        "worker-build" => {
            // `cargo xtask worker` has just built it when it starts wrangler.
            let built = worker::crate_dir().join("build/index.js");
            if std::env::var_os("WATS_WORKER_PREBUILT").is_some() && built.exists() {
                eprintln!("xtask: the Worker is already built");
                return Ok(());
            }
            worker::build(&mut Steps::new(5)).map(|_| ())
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn serve(args: &[String]) -> Result<()> {
    let mut steps = Steps::new(4);
    steps.ensure_targets()?;
    let wasm = component::build(&mut steps)?;
    steps.cargo(
        "build the wats host",
        &["build", "--package", "wats-host", "--bin", "wats"],
    )?;
    steps.start("run wats serve (Ctrl-C stops it)");
    let exe = steps::root().join("target/debug/wats");
    let mut command = std::process::Command::new(exe);
    command
        .arg("serve")
        .arg("--component")
        .arg(&wasm)
        .args(args);
    let status = command.status()?;
    if !status.success() {
        bail!("wats serve exited with {status}");
    }
    Ok(())
}

/// How long `cargo xtask test` runs each fuzz target.
const FUZZ_SMOKE_SECONDS: u64 = 10;

/// Every check and test, then a look for anything the run left running
/// (which fails the run, even a passing one).
fn test() -> Result<()> {
    leftovers::mark();
    let result = run_tests();
    let left = leftovers::sweep();
    if left.is_empty() {
        return result;
    }
    let leftover = format!(
        "the run left {} processes running (now stopped): {}",
        left.len(),
        left.join(", ")
    );
    // A failed step keeps its own error; the leftovers are said beside it.
    Err(match result {
        Ok(()) => anyhow::anyhow!(leftover),
        Err(error) => error.context(leftover),
    })
}

fn run_tests() -> Result<()> {
    let mut steps = Steps::new(27);
    steps.ensure_targets()?;
    steps.cargo("check formatting", &["fmt", "--all", "--", "--check"])?;
    steps.cargo(
        "clippy (native, all targets, warnings are errors)",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    steps.cargo(
        "clippy (the component for wasm32-unknown-unknown)",
        &[
            "clippy",
            "--package",
            "wats-component",
            "--target",
            "wasm32-unknown-unknown",
            "--features",
            "export",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    steps.cargo(
        "clippy (the Spin component for wasm32-wasip2)",
        &[
            "clippy",
            "--package",
            "wats-spin",
            "--target",
            "wasm32-wasip2",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let wasm = component::build(&mut steps)?;
    std::env::set_var("WATS_COMPONENT", &wasm);
    std::env::set_var("WATS_SPIN_COMPONENT", spin::build(&mut steps)?);
    jco::build(&mut steps, &wasm)?;
    steps.start(
        "unit, conformance and end-to-end tests (wats serve, wats spin, the jco example server)",
    );
    let (passed, failed) = steps::cargo_test(&["test", "--workspace", "--locked"])?;
    let (js_passed, js_failed) = jco::test(&mut steps)?;
    live_suite_skips(&mut steps)?;
    // A smoke of each fuzz target; `cargo xtask fuzz` runs them longer.
    fuzz::run(&mut steps, FUZZ_SMOKE_SECONDS)?;
    // `cargo test` built the `wats` binary the end-to-end tests run.
    schemathesis::run(&mut steps, &steps::root().join("target/debug/wats"), &wasm)?;
    schemathesis::python_receiver(&mut steps, &steps::root().join("target/debug/wats"), &wasm)?;
    promtool::run(&mut steps, &steps::root().join("target/debug/wats"), &wasm)?;
    console::ensure_chromium(&mut steps)?;
    let wats = steps::root().join("target/debug/wats");
    console::run(&mut steps, "serve", &[wats.as_os_str(), wasm.as_os_str()])?;
    let (worker_build, wasm_bindgen, npm_bin) = worker::tools(&mut steps)?;
    let (adapter_passed, adapter_failed) = worker::check(&mut steps, &wasm_bindgen)?;
    worker::build_with(&mut steps, &worker_build, &wasm_bindgen, &npm_bin)?;
    steps.start("conformance suite against the Worker in workerd (wrangler dev --local)");
    // `--workspace`, as above: with one package selected cargo would unify
    // features differently and rebuild wasmtime (minutes).
    let (worker_passed, worker_failed) = steps::cargo_test(&[
        "test",
        "--workspace",
        "--test",
        "worker_e2e",
        "--locked",
        "--",
        "--ignored",
        // One workerd at a time: in parallel they starve each other on 2 cores.
        "--test-threads=1",
    ])?;
    console::run(&mut steps, "worker", &[steps::root().as_os_str()])?;
    eprintln!(
        "    console screenshots: {}",
        console::screenshots().display()
    );
    steps.finish();
    let passed = passed + js_passed + adapter_passed + worker_passed;
    let failed = failed + js_failed + adapter_failed + worker_failed;
    // One plain closing line over every test binary cargo ran.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// The live campaign binary, as an operator would start it, with no
/// `WATS_*` variable: it must call nothing and say that it skipped. (Its
/// phases, gates and redaction are tested against a fake Graph by
/// `cargo test`.)
fn live_suite_skips(steps: &mut Steps) -> Result<()> {
    steps.start("the live campaign without WATS_LIVE_ENABLE=1 (must skip)");
    let mut command = std::process::Command::new(steps::root().join("target/debug/wats-live"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("WATS_")) {
        command.env_remove(key);
    }
    let output = command.output().context("running wats-live")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains(r#""event":"skipped""#) {
        bail!("wats-live did not skip without WATS_LIVE_ENABLE=1");
    }
    eprint!("    {stdout}");
    Ok(())
}

fn loadtest(args: &[String]) -> Result<()> {
    let host = args
        .iter()
        .position(|arg| arg == "--host")
        .and_then(|at| args.get(at + 1))
        .map_or("serve", String::as_str);
    let worker = matches!(host, "worker" | "wrangler-dev");
    let mut steps = Steps::new(if worker { 8 } else { 5 });
    steps.ensure_targets()?;
    let wasm = component::build(&mut steps)?;
    // The Node that runs the reference receiver is the JS package's.
    steps.start("Node 24 for the reference receiver (npm install in hosts/jco)");
    steps::npm_install(&jco::package_dir(), steps::Npm::InstallFromLock)?;
    let mut extra = Vec::new();
    match host {
        _ if worker => drop(worker::build(&mut steps)?),
        "spin" => {
            let spin = spin::build(&mut steps)?;
            extra = vec!["--spin-component".to_owned(), spin.display().to_string()];
        }
        _ => {}
    }
    let mut bench_args: Vec<String> = [
        "bench",
        "--package",
        "wats-host",
        "--bench",
        "loadtest",
        "--locked",
        "--",
        "--component",
    ]
    .map(String::from)
    .to_vec();
    bench_args.push(wasm.display().to_string());
    bench_args.extend(extra);
    bench_args.extend(args.iter().cloned());
    let bench_args: Vec<&str> = bench_args.iter().map(String::as_str).collect();
    steps.cargo(
        "build wats (release) and run the load generator against the floor, the Node reference and the host",
        &bench_args,
    )?;
    steps.finish();
    Ok(())
}

fn bench() -> Result<()> {
    let mut steps = Steps::new(11);
    steps.ensure_targets()?;
    let wasm = component::build(&mut steps)?;
    std::env::set_var("WATS_COMPONENT", &wasm);
    spin::build(&mut steps)?;
    steps.cargo(
        "benchmarks (release build)",
        &[
            "bench",
            "--package",
            "wats-host",
            "--bench",
            "hot_path",
            "--locked",
        ],
    )?;
    jco::build(&mut steps, &wasm)?;
    jco::bench(&mut steps)?;
    worker::build(&mut steps)?;
    worker::report_bundle_size(&mut steps)?;
    steps.finish();
    Ok(())
}
