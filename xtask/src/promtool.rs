//! Prometheus's `promtool check metrics` over what `/metrics` renders
//! (`tests/metrics/promtool_check.py`). promtool comes from Debian's
//! `prometheus` package, downloaded and unpacked into ~/.cache/wats/tools
//! with `apt-get download` and `dpkg-deb -x`: no root, nothing installed
//! system-wide.

use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian package and version that carry promtool.
const PACKAGE: &str = "prometheus=2.42.0+ds-5+b6";

fn ensure_installed(steps: &mut Steps) -> Result<PathBuf> {
    steps.start(&format!(
        "promtool ({PACKAGE}, Debian) in ~/.cache/wats/tools"
    ));
    let dir = steps::tools_dir().join("prometheus-2.42.0");
    let promtool = dir.join("usr/bin/promtool");
    if promtool.is_file() {
        eprintln!("    already installed");
        return Ok(promtool);
    }
    let download = steps::tools_dir().join("prometheus-download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    let fetch = || {
        steps::run(
            Command::new("apt-get")
                .args(["download", "--quiet", PACKAGE])
                .current_dir(&download),
        )
    };
    // A machine whose package lists were never fetched has none to read.
    if fetch().is_err() {
        steps::run(Command::new("apt-get").args(["update", "--quiet"]))
            .context("fetching Debian's package lists (apt-get update)")?;
        fetch().context("downloading Debian's prometheus package (apt-get download)")?;
    }
    let deb = std::fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download left no .deb")?;
    steps::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    let _ = std::fs::remove_dir_all(&download);
    if !promtool.is_file() {
        bail!("the prometheus package holds no usr/bin/promtool");
    }
    Ok(promtool)
}

/// Checks `/metrics` of a dry-run `wats serve` fed every fixture.
pub fn run(steps: &mut Steps, wats: &Path, component: &Path) -> Result<()> {
    let promtool = ensure_installed(steps)?;
    steps.start("promtool check metrics over /metrics of wats serve, and no identifiers in it");
    let status = Command::new("python3")
        .arg(steps::root().join("tests/metrics/promtool_check.py"))
        .arg(wats)
        .arg(component)
        .arg(&promtool)
        .status()
        .context("running tests/metrics/promtool_check.py")?;
    if !status.success() {
        bail!("promtool found problems in /metrics, or it holds an identifier");
    }
    Ok(())
}
