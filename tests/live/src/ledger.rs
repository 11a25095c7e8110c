//! The run's log: one JSON line per Graph call with method, endpoint group,
//! status and Meta's code/subcode/class only. Ids appear as salted hashes
//! (`sha256(value + salt)`, 12 hex digits) so that lines of one run can be
//! correlated and nothing else. Every line is checked against the run's
//! sensitive values before it is written.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{Arc, Mutex};

pub struct Ledger {
    salt: String,
    sensitive: Vec<String>,
    out: Box<dyn Write>,
    /// A line held a sensitive value (and was withheld): an abort criterion.
    pub leaked: bool,
}

/// Values shorter than this are not matched (a 1 would match everything).
const MIN_MATCHED_CHARS: usize = 6;

impl Ledger {
    pub fn new(sensitive: &[&str], out: Box<dyn Write>) -> Ledger {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).expect("the system's random number generator");
        Ledger {
            salt: hex::encode(salt),
            sensitive: sensitive
                .iter()
                .filter(|v| v.len() >= MIN_MATCHED_CHARS)
                .map(|v| (*v).to_owned())
                .collect(),
            out,
            leaked: false,
        }
    }

    /// A salted hash of an id, for correlation within this run.
    pub fn hash(&self, value: &str) -> String {
        let digest = Sha256::new()
            .chain_update(value)
            .chain_update(&self.salt)
            .finalize();
        hex::encode(&digest[..6])
    }

    /// Writes one line, unless it holds a sensitive value.
    pub fn write(&mut self, fields: Map<String, Value>) {
        let line = Value::Object(fields).to_string();
        if self
            .sensitive
            .iter()
            .any(|value| line.contains(value.as_str()))
        {
            self.leaked = true;
            let _ = writeln!(
                self.out,
                r#"{{"event":"withheld","reason":"a sensitive value reached the log"}}"#
            );
            return;
        }
        let _ = writeln!(self.out, "{line}");
    }
}

/// Output kept in memory and readable while the run writes it: what the
/// tests read the ledger through.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_sensitive_values_are_withheld_and_flagged() {
        let out = Captured::default();
        let mut ledger = Ledger::new(&["canary-token", "1"], Box::new(out.clone()));
        let hash = ledger.hash("wamid.X");
        assert_eq!(hash.len(), 12);
        assert_eq!(hash, ledger.hash("wamid.X"));
        let mut line = Map::new();
        line.insert("status".into(), 1.into());
        ledger.write(line.clone());
        assert!(!ledger.leaked);
        line.insert("oops".into(), "Bearer canary-token".into());
        ledger.write(line);
        assert!(ledger.leaked);
        let text = out.text();
        assert!(!text.contains("canary") && text.contains("withheld"));
    }
}
