//! Fuzzing with cargo-fuzz (libFuzzer, nightly): the targets in `fuzz/`,
//! seeded from the conformance suite. `cargo xtask fuzz [seconds]` runs each
//! for that long (60 by default); `cargo xtask test` runs a short smoke.
//! A crash fails the run; libFuzzer leaves the input in
//! `fuzz/artifacts/<target>/`, to be turned into a regression test.

use crate::steps::{self, Steps};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CARGO_FUZZ: &str = "0.13.2";
pub const TARGETS: &[&str] = &[
    "webhook",
    "request",
    "compose",
    "graph_reply",
    "stored_state",
];

fn fuzz_dir() -> PathBuf {
    steps::root().join("fuzz")
}

/// Seed inputs per target, from the conformance suites: webhook bodies,
/// requests as `METHOD\npath\nbody`, composer bodies and Graph replies.
fn write_seeds() -> Result<PathBuf> {
    let seeds = steps::root().join("target/fuzz-seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    for target in TARGETS {
        std::fs::create_dir_all(seeds.join(target))?;
    }
    let conformance = steps::root().join("tests/conformance");
    let mut count = 0;
    let mut seed = |target: &str, bytes: &[u8]| -> Result<()> {
        count += 1;
        std::fs::write(seeds.join(target).join(format!("seed-{count}")), bytes)?;
        Ok(())
    };
    for entry in std::fs::read_dir(conformance.join("fixtures"))? {
        seed("webhook", &std::fs::read(entry?.path())?)?;
    }
    for entry in std::fs::read_dir(&conformance)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let suite: Value = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        for case in suite["cases"].as_array().into_iter().flatten() {
            let request = &case["request"];
            let body = request
                .get("json")
                .map(Value::to_string)
                .unwrap_or_default();
            if let (Some(method), Some(path)) =
                (request["method"].as_str(), request["path"].as_str())
            {
                seed("request", format!("{method}\n{path}\n{body}").as_bytes())?;
                if path.ends_with("/messages") && method == "POST" {
                    seed("compose", body.as_bytes())?;
                }
            }
            for reply in case["graph"].as_array().into_iter().flatten() {
                let status = reply["status"].as_u64().unwrap_or(200) as u16;
                let mut bytes = status.to_be_bytes().to_vec();
                bytes.extend(
                    reply
                        .get("json")
                        .map(Value::to_string)
                        .unwrap_or_default()
                        .bytes(),
                );
                seed("graph_reply", &bytes)?;
            }
        }
    }
    // A store as the service writes it: a queued item with its due key,
    // and a message with its row and statuses (`<prefix byte><suffix>\t<value>`
    // lines; the byte picks the prefix, see the target).
    let item = r#"{"id":"wats-out-k01","state":"queued","to":"15551230000","type":"text","payload":{"messaging_product":"whatsapp","to":"15551230000","type":"text","text":{"body":"hi"}},"attempts":0,"createdAt":1,"updatedAt":1,"nextAttemptAt":1,"waMessageId":null,"lastError":null}"#;
    let record = r#"{"rowId":"wats-msg-000000000000010000ffffabcdef","waMessageId":"wamid.SEED1","direction":"inbound","fromPhone":"15551230000","toPhone":null,"type":"text","graphMessageId":null,"createdAt":"2026-01-01T00:00:00.000Z"}"#;
    let state = format!(
        "\x000000000000001:wats-out-k01\t\n\x01wats-out-k01\t{item}\n\x04wats-msg-000000000000010000ffffabcdef\twamid.SEED1\n\x05abcdef0123456789abcdef01\t{record}\n\x06abcdef0123456789abcdef01:received\t{{\"at\":\"2026-01-01T00:00:00.000Z\"}}\n"
    );
    seed("stored_state", state.as_bytes())?;
    Ok(seeds)
}

/// What libFuzzer reported at the end of a run.
#[derive(Debug, Default, PartialEq)]
pub struct FuzzStats {
    pub execs: u64,
    pub coverage: u64,
}

/// Reads the final `stat::number_of_executed_units` and the last `cov:`.
pub fn parse_stats(output: &str) -> FuzzStats {
    let mut stats = FuzzStats::default();
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.execs = n.trim().parse().unwrap_or(0);
        }
        if let Some(rest) = line.split(" cov: ").nth(1) {
            let n = rest.split_whitespace().next().unwrap_or("0");
            stats.coverage = n.parse().unwrap_or(stats.coverage);
        }
    }
    stats
}

/// Runs every target for `seconds`, printing execs and coverage per target.
pub fn run(steps: &mut Steps, seconds: u64) -> Result<Vec<(&'static str, FuzzStats)>> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output();
    if !nightly.is_ok_and(|output| output.status.success()) {
        bail!("fuzzing needs the nightly toolchain: rustup toolchain install nightly");
    }
    let cargo_fuzz = steps::cargo_tool(steps, "cargo-fuzz", CARGO_FUZZ, "cargo-fuzz", true)?;
    steps.start(&format!(
        "fuzz {} targets for {seconds} s each (nightly, libFuzzer)",
        TARGETS.len()
    ));
    steps::run(
        Command::new(steps::cargo())
            .args(["fmt", "--check", "--manifest-path"])
            .arg(fuzz_dir().join("Cargo.toml")),
    )?;
    let seeds = write_seeds()?;
    let mut results = Vec::new();
    for target in TARGETS {
        let corpus = steps::root().join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let output = Command::new(&cargo_fuzz)
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(fuzz_dir())
            .arg(target)
            .arg(&corpus)
            .arg(seeds.join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-print_final_stats=1",
                "-rss_limit_mb=2048",
                "-max_len=65536",
            ])
            // The toolchain libFuzzer's sanitizer flags need.
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .current_dir(steps::root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("could not start cargo-fuzz")?;
        let text = String::from_utf8_lossy(&output.stderr);
        let stats = parse_stats(&text);
        eprintln!(
            "    {target}: {} execs, coverage {} (corpus {})",
            stats.execs,
            stats.coverage,
            corpus
                .strip_prefix(steps::root())
                .unwrap_or(&corpus)
                .display()
        );
        if !output.status.success() {
            // libFuzzer's report names the crash input, not secrets: the
            // targets run on the synthetic settings of the test host.
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("fuzz target `{target}` failed:\n{}", tail.join("\n"));
        }
        results.push((*target, stats));
    }
    Ok(results)
}

/// `cargo xtask fuzz [seconds]`.
pub fn command(args: &[String]) -> Result<()> {
    let seconds = match args.first() {
        Some(text) => text
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .context("seconds must be a positive number")?,
        None => 60,
    };
    let mut steps = Steps::new(2);
    run(&mut steps, seconds)?;
    steps.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_come_from_libfuzzers_last_lines() {
        let output = "#2\tINITED cov: 120 ft: 130 corp: 2/10b\n#4096\tpulse  cov: 345 ft: 400\nDone 5000 runs in 1 second(s)\nstat::number_of_executed_units: 5012\nstat::peak_rss_mb: 40\n";
        assert_eq!(
            parse_stats(output),
            FuzzStats {
                execs: 5012,
                coverage: 345
            }
        );
        assert_eq!(parse_stats("nothing"), FuzzStats::default());
    }
}
