//! Property-based API testing: schemathesis (PyPI, pinned) generates
//! requests for every operation of `/openapi.json` and checks that no
//! response is an undocumented status or breaks its schema. Beside it, in
//! the same virtualenv, PyPI's standardwebhooks verifies the events the
//! Python receiver of docs/events.md gets (`tests/events/python_receiver.py`).

use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VERSION: &str = "4.32.5";
const STANDARD_WEBHOOKS_VERSION: &str = "1.3.0";
/// Examples per operation; a bounded run (about 10 s here).
const EXAMPLES: &str = "100";

/// A virtualenv outside the clone, reused across runs.
fn venv() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/wats/schemathesis-venv")
}

fn ensure_installed(steps: &mut Steps) -> Result<PathBuf> {
    steps.start(&format!("schemathesis {VERSION} (PyPI) in ~/.cache/wats"));
    let venv = venv();
    let bin = venv.join("bin/schemathesis");
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let verifier = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('standardwebhooks'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let pinned = |output: Option<std::process::Output>, version: &str| {
        output.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(version))
    };
    if pinned(installed, VERSION) && pinned(verifier, STANDARD_WEBHOOKS_VERSION) {
        eprintln!("    already installed");
        return Ok(bin);
    }
    steps::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    steps::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={VERSION}"))
            .arg(format!("standardwebhooks=={STANDARD_WEBHOOKS_VERSION}")),
    )?;
    Ok(bin)
}

/// The Python receiver of docs/events.md, as written there, fed by a
/// dry-run `wats serve`; the check runs in the virtualenv above.
pub fn python_receiver(steps: &mut Steps, wats: &Path, component: &Path) -> Result<()> {
    steps.start("events to the Python receiver of docs/events.md (PyPI standardwebhooks)");
    let status = Command::new(venv().join("bin/python"))
        .arg(steps::root().join("tests/events/python_receiver.py"))
        .arg(wats)
        .arg(component)
        .status()
        .context("running tests/events/python_receiver.py")?;
    if !status.success() {
        bail!("the documented Python receiver did not get every event");
    }
    Ok(())
}

/// Runs schemathesis against a dry-run `wats serve` on a free loopback port.
pub fn run(steps: &mut Steps, wats: &Path, component: &Path) -> Result<()> {
    let schemathesis = ensure_installed(steps)?;
    steps.start("schemathesis against wats serve (dry-run, every operation)");
    let mut server = Command::new(wats)
        .args(["serve", "--memory", "--port", "0", "--component"])
        .arg(component)
        // Every operation: the opt-in Groups routes too.
        .env("WATS_ENABLE_GROUP_ROUTES", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting wats serve")?;
    let mut stdout = BufReader::new(server.stdout.take().expect("piped"));
    let address = (&mut stdout)
        .lines()
        .find_map(|line| {
            line.ok()?
                .split("http://")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .context("wats serve did not say where it listens")?;
    // Keep reading what it writes, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let status = Command::new(&schemathesis)
        // Which checks run, and why some do not.
        .arg("--config-file")
        .arg(steps::root().join("tests/schemathesis/schemathesis.toml"))
        .args(["run", &format!("http://{address}/openapi.json")])
        .args(["--header", "Authorization: Bearer dry-run-service-token"])
        .args(["--max-examples", EXAMPLES, "--generation-deterministic"])
        // It keeps a cache in its working directory: keep that out of the tree.
        .current_dir(steps::root().join("target"))
        .status();
    let _ = server.kill();
    let _ = server.wait();
    if !status.context("running schemathesis")?.success() {
        bail!("schemathesis found responses that break the OpenAPI document");
    }
    Ok(())
}
