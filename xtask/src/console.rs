//! The operator console in real headless Chromium (`tests/console`):
//! Debian's `chromium`, driven by puppeteer-core from npm, against a
//! dry-run `wats serve` and against the Worker in workerd. Screenshots of
//! every view land in `target/console-screenshots/`.

use crate::jco;
use crate::steps::{self, Npm, Steps};
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs Debian's chromium when it is missing. Unlike promtool it needs
/// its shared libraries, so it is installed as a package (apt-get), not
/// unpacked.
pub fn ensure_chromium(steps: &mut Steps) -> Result<()> {
    steps.start("Chromium (Debian's chromium package) and puppeteer-core for the console test");
    if Path::new(CHROMIUM).is_file() {
        eprintln!("    chromium already installed");
    } else {
        let install = || {
            steps::run(
                Command::new("apt-get")
                    .args([
                        "install",
                        "--yes",
                        "--quiet",
                        "--no-install-recommends",
                        "chromium",
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
        };
        if install().is_err() {
            steps::run(Command::new("apt-get").args(["update", "--quiet"]))
                .context("fetching Debian's package lists (apt-get update)")?;
            install().context("installing Debian's chromium (apt-get install chromium)")?;
        }
    }
    steps::npm_install(&dir(), Npm::Ci)
}

fn dir() -> PathBuf {
    steps::root().join("tests/console")
}

pub fn screenshots() -> PathBuf {
    steps::root().join("target/console-screenshots")
}

/// Runs the console test against `target` (`serve` or `worker`).
pub fn run(steps: &mut Steps, target: &str, args: &[&OsStr]) -> Result<()> {
    steps.start(&format!(
        "the operator console in headless Chromium ({target})"
    ));
    let status = jco::with_node(Command::new("node"))
        .arg(dir().join("console.test.mjs"))
        .arg(target)
        .args(args)
        .arg(screenshots())
        .env("WATS_CHROMIUM", CHROMIUM)
        .status()
        .context("running tests/console/console.test.mjs")?;
    if !status.success() {
        bail!("the console test failed against {target}");
    }
    Ok(())
}
