//! Servers a test starts: each leads a process group of its own and is
//! stopped as a group, so that what it starts in turn (wrangler's workerd,
//! npm's node) stops with it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process leading its own process group. The whole group is
/// killed when it is stopped or dropped.
pub struct Group {
    child: Child,
    stopped: bool,
}

impl Group {
    pub fn spawn(command: &mut Command) -> io::Result<Group> {
        command.process_group(0);
        Ok(Group {
            child: command.spawn()?,
            stopped: false,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills every process of the group, then reaps the leader. Once only:
    /// after the leader is reaped its id may name another process.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Asks the group to stop (SIGTERM), so that the server can say its
    /// last words, and kills what is left after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if !self.stopped {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.stop();
    }

    fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) only sends a signal; a negative id names the
            // group this child leads, which it still does (not yet reaped).
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::sync::mpsc;

    #[test]
    fn stopping_a_group_stops_its_grandchildren() {
        // A shell that starts a sleeper, says so, and waits for it. Both
        // hold the pipe, so it reaches its end only when both are gone.
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 600 & echo started; wait"])
            .stdout(std::process::Stdio::piped());
        let mut group = Group::spawn(&mut command).expect("sh starts");
        let mut stdout = BufReader::new(group.child().stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the shell speaks");
        assert_eq!(line.trim(), "started");
        group.stop();
        let (done, ended) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = stdout.read_to_end(&mut Vec::new());
            let _ = done.send(());
        });
        // A bound, not a timing: the pipe ends at once when the group dies.
        assert!(
            ended.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the sleeper outlived its group"
        );
    }
}
