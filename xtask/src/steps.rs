//! Numbered, timed progress for long multi-step commands.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The workspace root (this crate lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

pub struct Steps {
    total: usize,
    done: usize,
    started: Instant,
    step_started: Instant,
}

impl Steps {
    pub fn new(total: usize) -> Steps {
        Steps {
            total,
            done: 0,
            started: Instant::now(),
            step_started: Instant::now(),
        }
    }

    /// Announces the next step, with the time the previous one took.
    pub fn start(&mut self, what: &str) {
        if self.done > 0 {
            eprintln!("    ({:.1}s)", self.step_started.elapsed().as_secs_f64());
        }
        self.done += 1;
        self.step_started = Instant::now();
        eprintln!("==> [{}/{}] {what}", self.done, self.total.max(self.done));
    }

    pub fn finish(&mut self) {
        eprintln!("    ({:.1}s)", self.step_started.elapsed().as_secs_f64());
        eprintln!(
            "==> all {} steps passed in {:.1}s",
            self.done,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Runs cargo with these arguments in the workspace root as one step.
    pub fn cargo(&mut self, what: &str, args: &[&str]) -> Result<()> {
        self.start(what);
        run(Command::new(cargo()).args(args).current_dir(root()))
    }

    /// `rustup target add` is quick when the targets are there; it is needed
    /// because RUSTUP_AUTO_INSTALL may be off on these machines.
    pub fn ensure_targets(&mut self) -> Result<()> {
        self.start("rust targets wasm32-unknown-unknown, wasm32-wasip2");
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output();
        let installed = installed
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let missing: Vec<&str> = ["wasm32-unknown-unknown", "wasm32-wasip2"]
            .into_iter()
            .filter(|target| !installed.lines().any(|line| line.trim() == *target))
            .collect();
        if missing.is_empty() {
            eprintln!("    already installed");
            return Ok(());
        }
        run(Command::new("rustup")
            .args(["target", "add"])
            .args(&missing))
    }
}

pub fn tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/wats/tools")
}

/// `cargo install` into a directory of its own per version; skipped when
/// the binary is there.
pub fn cargo_tool(
    steps: &mut Steps,
    krate: &str,
    version: &str,
    bin: &str,
    locked: bool,
) -> Result<PathBuf> {
    steps.start(&format!("{krate} {version} (~/.cache/wats/tools)"));
    let root = tools_dir().join(format!("{krate}-{version}"));
    let path = root.join("bin").join(bin);
    if path.exists() {
        eprintln!("    already installed");
        return Ok(path);
    }
    eprintln!("    installing (several minutes the first time)");
    let mut command = Command::new(cargo());
    command
        .args(["install", krate, "--version", version, "--root"])
        .arg(&root);
    if locked {
        command.arg("--locked");
    }
    run(&mut command)?;
    Ok(path)
}

/// How `npm_install` installs a package's dependencies.
pub enum Npm {
    /// `npm ci`: exactly the lock file, or fail.
    Ci,
    /// `npm install --no-save` from the lock file: for a lock file that names
    /// optional platform packages the registry here lacks, which `npm ci`
    /// refuses even though this platform needs none of them.
    InstallFromLock,
}

/// Installs the dependencies of `dir` from its committed lock file, unless
/// the installed tree already matches that lock file.
pub fn npm_install(dir: &Path, how: Npm) -> Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json")).context("reading package-lock.json")?;
    let stamp = dir.join("node_modules/.wats-lock");
    if std::fs::read(&stamp).is_ok_and(|installed| installed == lock) {
        eprintln!("    already installed");
        return Ok(());
    }
    let args: &[&str] = match how {
        Npm::Ci => &["ci", "--no-audit", "--no-fund"],
        Npm::InstallFromLock => &["install", "--no-save", "--no-audit", "--no-fund"],
    };
    run(Command::new("npm").args(args).current_dir(dir))?;
    std::fs::write(&stamp, &lock)?;
    Ok(())
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Runs `cargo test`, passing its output through, and adds up the counts of
/// every `test result:` line. Fails when cargo does.
pub fn cargo_test(args: &[&str]) -> Result<(usize, usize)> {
    use std::io::{BufRead, BufReader};
    let canaries = canaries()?;
    let mut child = Command::new(cargo())
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("could not start cargo test")?;
    // stderr carries what servers the tests start write, and panics: swept
    // like stdout, on a thread of its own so that neither pipe fills up.
    let stderr = BufReader::new(child.stderr.take().expect("piped"));
    let stderr_canaries = canaries.clone();
    let stderr_sweep = std::thread::spawn(move || {
        let mut withheld = 0;
        for line in stderr.lines().map_while(Result::ok) {
            match swept(&line, &stderr_canaries) {
                Some(line) => eprintln!("{line}"),
                None => withheld += 1,
            }
        }
        withheld
    });
    let (mut passed, mut failed, mut withheld) = (0, 0, 0);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Some(line) = swept(&line, &canaries) else {
            withheld += 1;
            continue;
        };
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            passed += count_before(result, "passed");
            failed += count_before(result, "failed");
        }
    }
    let status = child.wait()?;
    withheld += stderr_sweep.join().unwrap_or(0);
    if !status.success() {
        bail!("cargo test failed with {status} ({passed} passed, {failed} failed)");
    }
    if withheld > 0 {
        bail!("canary sweep: {withheld} lines of test output held a canary value (withheld above)");
    }
    Ok((passed, failed))
}

/// The secrets and private values of the conformance settings, which every
/// suite runs with: none may appear in any test's output.
fn canaries() -> Result<Vec<String>> {
    let path = root().join("tests/conformance/settings.json");
    let text = std::fs::read_to_string(&path).context("reading tests/conformance/settings.json")?;
    let settings: serde_json::Value = serde_json::from_str(&text)?;
    let secrets = [
        "WATS_ACCESS_TOKEN",
        "WATS_APP_SECRET",
        "WATS_VERIFY_TOKEN",
        "WATS_SERVICE_BEARER_TOKEN",
    ]
    .iter()
    .filter_map(|key| settings["settings"][*key].as_str());
    let private = settings["privateValues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|value| value.as_str());
    Ok(secrets.chain(private).map(str::to_owned).collect())
}

/// The line, or None when it holds a canary (it is then not printed).
fn swept<'a>(line: &'a str, canaries: &[String]) -> Option<&'a str> {
    if canaries.iter().any(|canary| line.contains(canary.as_str())) {
        eprintln!("    [a line of test output withheld: it holds a canary value]");
        return None;
    }
    Some(line)
}

/// The number before `label` in `ok. 3 passed; 0 failed; …`.
fn count_before(result: &str, label: &str) -> usize {
    result
        .split(';')
        .filter_map(|part| part.trim().rsplit_once(' '))
        .find(|(_, word)| *word == label)
        .and_then(|(number, _)| number.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sweep_withholds_lines_with_a_canary() {
        let canaries = super::canaries().expect("the conformance settings");
        assert!(canaries.iter().any(|c| c == "CANARY-TEXT-9b1e"));
        assert!(canaries.iter().any(|c| c == "CANARY-APP-SECRET-52c9"));
        assert_eq!(
            super::swept("test result: ok", &canaries),
            Some("test result: ok")
        );
        assert_eq!(
            super::swept("body: hello CANARY-TEXT-9b1e", &canaries),
            None
        );
    }

    #[test]
    fn counts_come_from_cargo_result_lines() {
        let line =
            "ok. 21 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(super::count_before(line, "passed"), 21);
        assert_eq!(super::count_before(line, "failed"), 2);
        assert_eq!(
            super::count_before("FAILED. 4 passed; 1 failed", "failed"),
            1
        );
    }
}
