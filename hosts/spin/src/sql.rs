//! The service's kv over Spin's SQLite (`fermyon:spin/sqlite`), used when
//! the app grants the component its `default` database.
//!
//! Each execute is a host call, and on a hosted Spin a round trip to the
//! database, so a batch is one statement per kind of op in it, not one per
//! op: a read of its gets, one upsert of its sets and set-if-absents
//! (answering which keys it wrote), a delete of its removes. Every batch of
//! a delivery is a single kind or sets with set-if-absents: one statement,
//! atomic as any SQLite statement. A batch of several kinds is not one
//! unit: Spin may share a connection between instances, so a transaction
//! cannot span calls (docs/kv-schema.md).

use crate::bindings::fermyon::spin::sqlite::{Connection, Error, QueryResult, Value};
use std::collections::{HashMap, HashSet};
use wats::{KvEntry, KvError, KvOp, KvPage, Sample, Totals};

/// The database the component asks for: the app's default one.
const DATABASE: &str = "default";

/// Created on first use (a statement that finds no table creates them and
/// runs again), so no request pays for checking the schema. `expires` is
/// milliseconds since the epoch, 0 for never.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS wats_kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, \
     expires INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS wats_metrics (name TEXT NOT NULL, labels TEXT NOT NULL, \
     value REAL NOT NULL, PRIMARY KEY (name, labels)) WITHOUT ROWID",
];

/// A live value: no expiry, or one still ahead.
const LIVE: &str = "(expires = 0 OR expires > ?)";

pub struct SqlStore {
    db: Connection,
}

/// Database messages may quote keys (which hold WhatsApp ids): never passed on.
fn failure(error: Error) -> KvError {
    match error {
        Error::NoSuchDatabase | Error::AccessDenied => KvError::NotConfigured,
        _ => KvError::Unavailable("the SQLite database failed".into()),
    }
}

/// `?, ?, …`: n parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn integer(value: u64) -> Value {
    Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

fn expiry(now: u64, entry: &KvEntry) -> u64 {
    entry
        .ttl_seconds
        .map_or(0, |ttl| now + u64::from(ttl) * 1000)
}

fn key_and_value(row: Vec<Value>) -> Option<(String, Vec<u8>)> {
    let mut values = row.into_iter();
    match (values.next()?, values.next()?) {
        (Value::Text(key), Value::Blob(value)) => Some((key, value)),
        _ => None,
    }
}

/// The first key after every key that starts with `prefix` (none for an
/// empty prefix): listing reads a range of the primary key.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut end = prefix.to_owned();
    while let Some(last) = end.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            end.push(next);
            return Some(end);
        }
    }
    None
}

/// Whether any key is named twice: then the ops' order matters, and the
/// batch runs op by op.
fn repeats_a_key(ops: &[KvOp]) -> bool {
    let mut seen = HashSet::with_capacity(ops.len());
    ops.iter().any(|op| !seen.insert(op.key()))
}

impl SqlStore {
    /// The app's default database; `NotConfigured` when it grants none.
    pub fn open() -> Result<SqlStore, KvError> {
        let db = Connection::open(DATABASE).map_err(failure)?;
        Ok(SqlStore { db })
    }

    fn run(&self, statement: &str, parameters: &[Value]) -> Result<QueryResult, KvError> {
        match self.db.execute(statement, parameters) {
            Err(Error::Io(message)) if message.contains("no such table") => {
                // A local database file: a write-ahead log spares each
                // statement a rollback journal created and deleted. A
                // hosted database may refuse it, and needs none.
                let _ = self.db.execute("PRAGMA journal_mode = WAL", &[]);
                for create in SCHEMA {
                    self.db.execute(create, &[]).map_err(failure)?;
                }
                self.db.execute(statement, parameters).map_err(failure)
            }
            answered => answered.map_err(failure),
        }
    }

    /// The values of these keys, live ones only unless `even_expired`.
    fn read(
        &self,
        keys: &[&str],
        now: u64,
        even_expired: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        let mut statement = format!(
            "SELECT key, value FROM wats_kv WHERE key IN ({})",
            placeholders(keys.len())
        );
        let mut parameters: Vec<Value> = keys.iter().map(|key| text(key)).collect();
        if !even_expired {
            statement.push_str(" AND ");
            statement.push_str(LIVE);
            parameters.push(integer(now));
        }
        let found = self.run(&statement, &parameters)?;
        Ok(found
            .rows
            .into_iter()
            .filter_map(|row| key_and_value(row.values))
            .collect())
    }

    /// Writes every set, and every set-if-absent whose key holds no live
    /// value, in one statement; answers the keys it wrote.
    fn write(&self, writes: &[(&KvEntry, bool)], now: u64) -> Result<HashSet<String>, KvError> {
        let sets: Vec<&str> = writes
            .iter()
            .filter(|(_, if_absent)| !if_absent)
            .map(|(entry, _)| entry.key.as_str())
            .collect();
        let rows = vec!["(?, ?, ?)"; writes.len()].join(", ");
        let statement = format!(
            "INSERT INTO wats_kv (key, value, expires) VALUES {rows} \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires \
             WHERE excluded.key IN ({}) OR wats_kv.expires BETWEEN 1 AND ? RETURNING key",
            placeholders(sets.len())
        );
        let mut parameters = Vec::with_capacity(writes.len() * 3 + sets.len() + 1);
        for (entry, _) in writes {
            parameters.extend([
                text(&entry.key),
                Value::Blob(entry.value.clone()),
                integer(expiry(now, entry)),
            ]);
        }
        parameters.extend(sets.iter().map(|key| text(key)));
        parameters.push(integer(now));
        let written = self.run(&statement, &parameters)?;
        Ok(written
            .rows
            .into_iter()
            .filter_map(|row| match row.values.into_iter().next() {
                Some(Value::Text(key)) => Some(key),
                _ => None,
            })
            .collect())
    }

    fn remove(&self, keys: &[&str]) -> Result<(), KvError> {
        let statement = format!(
            "DELETE FROM wats_kv WHERE key IN ({})",
            placeholders(keys.len())
        );
        let parameters: Vec<Value> = keys.iter().map(|key| text(key)).collect();
        self.run(&statement, &parameters).map(drop)
    }

    /// A batch: its gets, then its writes, then its removes (its keys are
    /// distinct, so their order does not matter), and, for set-if-absents
    /// that found their key taken, the values that hold them.
    pub fn apply(&self, ops: Vec<KvOp>, now: u64) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if repeats_a_key(&ops) {
            let mut answers = Vec::with_capacity(ops.len());
            for op in ops {
                answers.push(self.apply(vec![op], now)?.pop().flatten());
            }
            return Ok(answers);
        }
        let mut gets = Vec::new();
        let mut writes = Vec::new();
        let mut removes = Vec::new();
        for op in &ops {
            match op {
                KvOp::Get(key) => gets.push(key.as_str()),
                KvOp::Set(entry) => writes.push((entry, false)),
                KvOp::SetIfAbsent(entry) => writes.push((entry, true)),
                KvOp::Remove(key) => removes.push(key.as_str()),
            }
        }
        let mut found: HashMap<String, Vec<u8>> = if gets.is_empty() {
            HashMap::new()
        } else {
            self.read(&gets, now, false)?.into_iter().collect()
        };
        if !writes.is_empty() {
            let written = self.write(&writes, now)?;
            let held: Vec<&str> = writes
                .iter()
                .filter(|(entry, if_absent)| *if_absent && !written.contains(&entry.key))
                .map(|(entry, _)| entry.key.as_str())
                .collect();
            if !held.is_empty() {
                // Taken when the upsert ran; the value it had then, or,
                // if it is gone since, an empty one: still not absent.
                found.extend(self.read(&held, now, true)?);
                for key in held {
                    found.entry(key.to_owned()).or_default();
                }
            }
        }
        if !removes.is_empty() {
            self.remove(&removes)?;
        }
        Ok(ops
            .iter()
            .map(|op| match op {
                KvOp::Get(_) | KvOp::SetIfAbsent(_) => found.remove(op.key()),
                KvOp::Set(_) | KvOp::Remove(_) => None,
            })
            .collect())
    }

    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
        now: u64,
    ) -> Result<KvPage, KvError> {
        let mut statement = String::from("SELECT key FROM wats_kv WHERE key >= ? AND key > ?");
        let mut parameters = vec![text(prefix), text(after.unwrap_or(""))];
        if let Some(end) = prefix_end(prefix) {
            statement.push_str(" AND key < ?");
            parameters.push(text(&end));
        }
        statement.push_str(" AND ");
        statement.push_str(LIVE);
        statement.push_str(" ORDER BY key LIMIT ?");
        parameters.extend([integer(now), integer(u64::from(limit) + 1)]);
        let listed = self.run(&statement, &parameters)?;
        let mut keys: Vec<String> = listed
            .rows
            .into_iter()
            .filter_map(|row| match row.values.into_iter().next() {
                Some(Value::Text(key)) => Some(key),
                _ => None,
            })
            .collect();
        let cursor = (keys.len() > limit as usize).then(|| {
            keys.truncate(limit as usize);
            keys.last().cloned().unwrap_or_default()
        });
        Ok(KvPage { keys, cursor })
    }

    /// Adds the samples to the totals, in one statement.
    pub fn metrics_add(&self, samples: &[Sample]) -> Result<(), KvError> {
        if samples.is_empty() {
            return Ok(());
        }
        let statement = format!(
            "INSERT INTO wats_metrics (name, labels, value) VALUES {} \
             ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value",
            vec!["(?, ?, ?)"; samples.len()].join(", ")
        );
        let mut parameters = Vec::with_capacity(samples.len() * 3);
        for sample in samples {
            let labels = serde_json::to_string(&sample.labels).unwrap_or_default();
            parameters.extend([
                text(&sample.name),
                Value::Text(labels),
                Value::Real(sample.value),
            ]);
        }
        self.run(&statement, &parameters).map(drop)
    }

    pub fn metrics_snapshot(&self) -> Result<Vec<Sample>, KvError> {
        let stored = self.run("SELECT name, labels, value FROM wats_metrics", &[])?;
        let mut totals = Totals::default();
        totals.add(
            stored
                .rows
                .into_iter()
                .filter_map(|row| {
                    let mut values = row.values.into_iter();
                    match (values.next()?, values.next()?, values.next()?) {
                        (Value::Text(name), Value::Text(labels), Value::Real(value)) => {
                            let labels = serde_json::from_str(&labels).ok()?;
                            Some(Sample {
                                name,
                                labels,
                                value,
                            })
                        }
                        _ => None,
                    }
                })
                .collect(),
        );
        Ok(totals.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_the_next_one() {
        assert_eq!(prefix_end("msg:row:").as_deref(), Some("msg:row;"));
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn a_key_named_twice_is_noticed() {
        let set = |key: &str| KvOp::set(key, b"v", None);
        assert!(!repeats_a_key(&[set("a"), KvOp::Get("b".into())]));
        assert!(repeats_a_key(&[set("a"), KvOp::Remove("a".into())]));
    }

    #[test]
    fn placeholders_are_comma_separated() {
        assert_eq!(placeholders(3), "?, ?, ?");
        assert_eq!(placeholders(0), "");
    }
}
