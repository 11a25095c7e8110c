//! Where `wats serve` sends dispatched updates and log lines.

use crate::runtime::{Level, Update};
use crate::services::{EventSink, LogSink};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// `--events-out PATH`: each update as one JSON line, flushed before the
/// webhook is acknowledged (a failed write fails the dispatch, so Meta
/// delivers the update again).
pub struct JsonLinesFile {
    file: Mutex<File>,
}

impl JsonLinesFile {
    pub fn open(path: &Path) -> std::io::Result<JsonLinesFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile {
            file: Mutex::new(file),
        })
    }
}

impl EventSink for JsonLinesFile {
    fn dispatch(&self, update: &Update) -> Result<(), String> {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut line = update.json.clone();
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|_| "write failed".to_owned())
    }
}

/// Without `--events-out`: one PII-free log line per update (its kind only).
pub struct LogEvents<L: LogSink>(pub L);

impl<L: LogSink> EventSink for LogEvents<L> {
    fn dispatch(&self, update: &Update) -> Result<(), String> {
        self.0.write(
            Level::Info,
            "wats.event",
            &[("kind".into(), update.kind.clone())],
        );
        Ok(())
    }
}

/// JSON lines on stderr. Field values arrive redacted from the component.
pub struct StderrLog;

impl LogSink for StderrLog {
    fn write(&self, level: Level, event: &str, fields: &[(String, String)]) {
        eprintln!("{}", log_line(level, event, fields));
    }
}

/// The component's log line format (`wats::log_line`) for this runtime's
/// level type.
pub fn log_line(level: Level, event: &str, fields: &[(String, String)]) -> String {
    let level = match level {
        Level::Debug => wats::Level::Debug,
        Level::Info => wats::Level::Info,
        Level::Warn => wats::Level::Warn,
        Level::Error => wats::Level::Error,
    };
    wats::log_line(level, event, fields.iter().map(|(k, v)| (k, v)))
}
