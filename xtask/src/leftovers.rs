//! What a test run leaves running. `cargo xtask test` marks its
//! environment, which every process it starts inherits (servers, wrangler,
//! workerd, node); at its end any process still carrying the mark is a
//! server some test did not stop. It is stopped and named, and the run fails.

use std::path::Path;

/// The variable that marks a run's processes (not `WATS_*`: the test
/// servers' environments are cleared of those).
const MARKER: &str = "XTASK_TEST_RUN";

/// Marks this process's environment for everything it starts.
pub fn mark() {
    std::env::set_var(MARKER, std::process::id().to_string());
}

/// Kills every other process marked by this run and returns their names.
pub fn sweep() -> Vec<String> {
    sweep_marked(&std::process::id().to_string())
}

fn sweep_marked(run: &str) -> Vec<String> {
    let wanted = format!("{MARKER}={run}");
    let own = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == own || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        if !marked(&dir, &wanted) {
            continue;
        }
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill(2) only sends a signal, to a process of this run.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        found.push(format!("{} (pid {pid})", name.trim()));
    }
    found
}

fn marked(process: &Path, wanted: &str) -> bool {
    std::fs::read(process.join("environ")).is_ok_and(|environ| {
        environ
            .split(|byte| *byte == 0)
            .any(|variable| variable == wanted.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_marked_process_left_running_is_found_and_stopped() {
        let run = "xtask-test-of-the-sweep";
        let mut left = Command::new("sleep")
            .arg("600")
            .env(MARKER, run)
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep starts");
        // Until it has exec'd, the child is a copy of this test, without
        // the mark: wait until its environment carries it (a condition,
        // bounded; a busy machine may take a while to exec).
        let dir = Path::new("/proc").join(left.id().to_string());
        let wanted = format!("{MARKER}={run}");
        for _ in 0..30_000 {
            if marked(&dir, &wanted) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if !marked(&dir, &wanted) {
            let _ = left.kill();
            let _ = left.wait();
            panic!("the child never showed its mark");
        }
        let unmarked = sweep_marked("another-run");
        assert!(unmarked
            .iter()
            .all(|name| !name.contains(&left.id().to_string())));
        let found = sweep_marked(run);
        if found != [format!("sleep (pid {})", left.id())] {
            let _ = left.kill();
            let _ = left.wait();
            panic!("the sweep found {found:?}");
        }
        // Killed by the sweep: waiting returns at once, by a signal.
        let status = left.wait().expect("reaped");
        assert!(!status.success());
    }
}
