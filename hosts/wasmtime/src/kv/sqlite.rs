//! The SQLite store of `wats serve`: one connection behind one lock, writes
//! grouped into a transaction until the host commits, checkpoints on a
//! thread of their own, and expired rows swept out after commits.

use super::{check_size, expiry, list_start, page, SWEEP_EVERY_MILLIS};
use crate::services::{Clock, KvFailure, KvStore};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use wats::KvOp;

pub struct SqliteKv {
    state: Mutex<Sqlite>,
    /// The batch a write made now joins: the open transaction's number, or
    /// the next one's. Changed only under the lock, read without it.
    batch: AtomicU64,
    /// The WAL file, for its size (none for an in-memory database).
    wal: Option<PathBuf>,
    /// Held while the store lives; the checkpoint thread stops without it.
    _alive: Arc<()>,
    clock: Arc<dyn Clock>,
}

/// When writes reach the disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Commits {
    /// Each write is its own transaction (a host that never calls `commit`).
    PerWrite,
    /// Writes join one open transaction until the next `commit`: the host
    /// commits before every effect leaving the process and at the end of
    /// each request, so a webhook of six updates makes a handful of commits
    /// instead of thirty (docs/kv-schema.md, "Group commit").
    Grouped,
}

/// The connection and its group commit.
struct Sqlite {
    connection: Connection,
    commits: Commits,
    /// Whether a transaction is open (batch `SqliteKv::batch`).
    open: bool,
    /// Recent batches that were rolled back instead of committed.
    lost: VecDeque<u64>,
    /// Where the next sweep of expired rows starts, and when it is due.
    sweep: Sweep,
}

/// Reads hide an expired row at once, but only a delete frees it: without
/// sweeps every dedupe mark, idempotency record and lease ever written would
/// stay in the file. Sweeps pass over the keys in order, a slice at a time,
/// rather than index the expiry times, which would cost every write.
#[derive(Default)]
struct Sweep {
    after: String,
    due_at: u64,
}

/// Rows a sweep looks at: about a millisecond, once a second.
const SWEEP_ROWS: usize = 1_000;

/// How many lost batches are remembered; a request older than that many
/// failures is long finished.
const LOST_REMEMBERED: usize = 64;

fn unavailable(error: rusqlite::Error) -> KvFailure {
    // The error text may quote the database path; keep only its class.
    let class = match error {
        rusqlite::Error::SqliteFailure(failure, _) => format!("sqlite: {:?}", failure.code),
        _ => "sqlite: error".into(),
    };
    KvFailure::Unavailable(class)
}

impl SqliteKv {
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        commits: Commits,
    ) -> Result<SqliteKv, KvFailure> {
        let connection = Connection::open(path).map_err(unavailable)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA wal_autocheckpoint = 0;
                 PRAGMA journal_size_limit = 16777216;
                 PRAGMA mmap_size = 268435456;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -65536;
                 CREATE TABLE IF NOT EXISTS kv (
                     key TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL,
                     expires_at INTEGER
                 ) WITHOUT ROWID;",
            )
            .map_err(unavailable)?;
        let alive = Arc::new(());
        let wal = (path.as_os_str() != ":memory:").then(|| {
            start_checkpointer(path, Arc::downgrade(&alive));
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            PathBuf::from(wal)
        });
        Ok(SqliteKv {
            state: Mutex::new(Sqlite {
                connection,
                commits,
                open: false,
                lost: VecDeque::new(),
                sweep: Sweep::default(),
            }),
            batch: AtomicU64::new(0),
            wal,
            _alive: alive,
            clock,
        })
    }

    fn state(&self) -> MutexGuard<'_, Sqlite> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> i64 {
        self.clock.now_millis() as i64
    }

    /// Ends the open transaction's batch, remembering it if it was lost.
    fn close_batch(&self, state: &mut Sqlite, committed: bool) {
        if !committed {
            state.lost.push_back(self.batch.load(Ordering::SeqCst));
            if state.lost.len() > LOST_REMEMBERED {
                state.lost.pop_front();
            }
        }
        state.open = false;
        self.batch.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs one writing statement (prepared once per connection), in the
    /// open batch when commits are grouped.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, KvFailure> {
        let mut state = self.state();
        if state.commits == Commits::Grouped && !state.open {
            state
                .connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(unavailable)?;
            state.open = true;
        }
        let result = state
            .connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params));
        // Some failures (I/O, a full disk) roll the whole transaction back.
        if result.is_err() && state.open && state.connection.is_autocommit() {
            self.close_batch(&mut state, false);
        }
        result.map_err(unavailable)
    }
}

const GET: &str = "SELECT value FROM kv WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)";
const SET: &str = "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
/// One statement: it replaces an expired row and leaves a live one.
const SET_IF_ABSENT: &str = "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
     WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?4";
const REMOVE: &str = "DELETE FROM kv WHERE key = ?1";

/// Runs one op of a batch on the connection.
fn run_op(
    connection: &Connection,
    op: &KvOp,
    now: i64,
    expiry: impl Fn(Option<u32>) -> Option<i64>,
) -> rusqlite::Result<Option<Vec<u8>>> {
    let read = |key: &str| {
        connection
            .prepare_cached(GET)?
            .query_row(params![key, now], |row| row.get(0))
            .optional()
    };
    match op {
        KvOp::Get(key) => read(key),
        KvOp::Set(entry) => {
            let expires = expiry(entry.ttl_seconds);
            let mut statement = connection.prepare_cached(SET)?;
            statement.execute(params![entry.key, entry.value, expires])?;
            Ok(None)
        }
        KvOp::SetIfAbsent(entry) => {
            let expires = expiry(entry.ttl_seconds);
            let mut statement = connection.prepare_cached(SET_IF_ABSENT)?;
            let changed = statement.execute(params![entry.key, entry.value, expires, now])?;
            // Not stored: in the same transaction, the live value holding it.
            if changed == 1 {
                Ok(None)
            } else {
                Ok(Some(read(&entry.key)?.unwrap_or_default()))
            }
        }
        KvOp::Remove(key) => {
            connection.prepare_cached(REMOVE)?.execute(params![key])?;
            Ok(None)
        }
    }
}

/// Live keys in order from a start key. A listing seeks to its prefix (or
/// its cursor) and stops at the prefix's end: a filter on the prefix instead
/// made every listing read every key ordered before it, and the outbox
/// drain, once a second, read the whole message history that way.
const LIST_FROM: &str = "SELECT key FROM kv
     WHERE key >= ?1 AND (expires_at IS NULL OR expires_at > ?2)
     ORDER BY key";

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Above this size the WAL is finished off right after a commit (see
/// `SqliteKv::commit`); when the WAL restarts it is cut back to the
/// `journal_size_limit` (16 MiB), well under this.
const WAL_RESET_BYTES: u64 = 64 << 20;

/// Checkpoints the WAL from a thread of its own, on a connection of its
/// own, until the store is dropped: a checkpoint syncs the disk, and inside
/// a commit (SQLite's default) it held every request waiting on the lock.
fn start_checkpointer(path: &Path, alive: Weak<()>) {
    let Ok(connection) = Connection::open(path) else {
        return; // nothing to checkpoint then; the store's own calls fail loudly
    };
    let _ = std::thread::Builder::new()
        .name("wats-checkpoint".into())
        .spawn(move || {
            while alive.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                let _ = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
        });
}

impl Drop for SqliteKv {
    /// Commits what the last requests wrote (dropping would roll it back).
    fn drop(&mut self) {
        let mut state = self.state();
        if state.open {
            let committed = state.connection.execute_batch("COMMIT").is_ok();
            self.close_batch(&mut state, committed);
        }
    }
}

impl KvStore for SqliteKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        self.state()
            .connection
            .prepare_cached(GET)
            .and_then(|mut statement| {
                statement
                    .query_row(params![key, self.now()], |row| row.get(0))
                    .optional()
            })
            .map_err(unavailable)
    }

    fn set(&self, key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), KvFailure> {
        check_size(value)?;
        let expires = expiry(&*self.clock, ttl_seconds).map(|at| at as i64);
        self.execute(SET, params![key, value, expires]).map(drop)
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvFailure> {
        check_size(value)?;
        let expires = expiry(&*self.clock, ttl_seconds).map(|at| at as i64);
        let changed = self.execute(SET_IF_ABSENT, params![key, value, expires, self.now()])?;
        Ok(changed == 1)
    }

    fn remove(&self, key: &str) -> Result<(), KvFailure> {
        self.execute(REMOVE, params![key]).map(drop)
    }

    /// One transaction: a batch of writes lands whole or not at all. With
    /// grouped commits it is a savepoint inside the group's transaction,
    /// so a failed batch leaves the other requests' writes alone.
    fn apply(&self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        for op in ops {
            if let KvOp::Set(entry) | KvOp::SetIfAbsent(entry) = op {
                check_size(&entry.value)?;
            }
        }
        let now = self.now();
        let expiry = |ttl: Option<u32>| expiry(&*self.clock, ttl).map(|at| at as i64);
        let mut state = self.state();
        if ops.iter().all(|op| matches!(op, KvOp::Get(_))) {
            let connection = &state.connection;
            let answers = ops.iter().map(|op| run_op(connection, op, now, expiry));
            return answers
                .collect::<rusqlite::Result<_>>()
                .map_err(unavailable);
        }
        let grouped = state.commits == Commits::Grouped;
        if grouped && !state.open {
            state
                .connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(unavailable)?;
            state.open = true;
        }
        let begin = if grouped {
            "SAVEPOINT batch"
        } else {
            "BEGIN IMMEDIATE"
        };
        state.connection.execute_batch(begin).map_err(unavailable)?;
        let answers = ops
            .iter()
            .map(|op| run_op(&state.connection, op, now, expiry))
            .collect::<rusqlite::Result<Vec<_>>>();
        let end = match (&answers, grouped) {
            (Ok(_), true) => "RELEASE batch",
            (Ok(_), false) => "COMMIT",
            (Err(_), true) => "ROLLBACK TO batch; RELEASE batch",
            (Err(_), false) => "ROLLBACK",
        };
        let ended = state.connection.execute_batch(end);
        // Some failures (I/O, a full disk) roll the whole transaction back.
        if grouped && state.connection.is_autocommit() {
            self.close_batch(&mut state, false);
        }
        let answers = answers.map_err(unavailable)?;
        ended.map_err(unavailable)?;
        Ok(answers)
    }

    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        let state = self.state();
        let mut statement = state
            .connection
            .prepare_cached(LIST_FROM)
            .map_err(unavailable)?;
        let after = cursor.unwrap_or("");
        let rows = statement
            .query_map(params![list_start(prefix, after), self.now()], |row| {
                row.get::<_, String>(0)
            })
            .map_err(unavailable)?;
        // Rows come one step at a time: stop at the first key past the prefix.
        let mut keys = Vec::new();
        for key in rows {
            let key = key.map_err(unavailable)?;
            if !key.starts_with(prefix) || keys.len() > limit as usize {
                break;
            }
            if key.as_str() > after {
                keys.push(key);
            }
        }
        Ok(page(keys, limit))
    }

    fn batch(&self) -> u64 {
        // Read without the lock: a write's batch lies between two reads
        // either way (see `runtime::State::write`).
        self.batch.load(Ordering::SeqCst)
    }

    fn commit(&self, batches: RangeInclusive<u64>) -> Result<(), KvFailure> {
        let mut state = self.state();
        if state.open && self.batch.load(Ordering::SeqCst) <= *batches.end() {
            let committed = state.connection.execute_batch("COMMIT").is_ok();
            if !committed {
                let _ = state.connection.execute_batch("ROLLBACK");
            }
            self.close_batch(&mut state, committed);
            // Under steady writes the background checkpoint never catches
            // the WAL's tip, so SQLite never restarts the WAL and it grows
            // (and every lookup slows with it). Here no transaction is open
            // and the lock keeps one from starting: a checkpoint now copies
            // the little the background one left, and the next write
            // restarts the WAL from its beginning.
            if self
                .wal
                .as_ref()
                .is_some_and(|wal| std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_RESET_BYTES))
            {
                let _ = state
                    .connection
                    .execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
        }
        // After the commit, so that a failed sweep costs no request its writes.
        let now = self.clock.now_millis();
        if !state.open && now >= state.sweep.due_at {
            state.sweep.due_at = now + SWEEP_EVERY_MILLIS;
            if sweep(&mut state, now as i64).is_err() {
                let _ = state.connection.execute_batch("ROLLBACK");
            }
        }
        if state.lost.iter().any(|batch| batches.contains(batch)) {
            return Err(KvFailure::Unavailable("sqlite: commit failed".into()));
        }
        Ok(())
    }
}

/// Deletes the expired rows among the next `SWEEP_ROWS` keys, in a
/// transaction of its own, and moves the sweep on (back to the first key
/// after the last).
fn sweep(state: &mut Sqlite, now: i64) -> rusqlite::Result<()> {
    let slice: Vec<(String, Option<i64>)> = state
        .connection
        .prepare_cached("SELECT key, expires_at FROM kv WHERE key > ?1 ORDER BY key LIMIT ?2")?
        .query_map(params![state.sweep.after, SWEEP_ROWS as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let expired: Vec<&str> = slice
        .iter()
        .filter(|(_, expires)| expires.is_some_and(|at| at <= now))
        .map(|(key, _)| key.as_str())
        .collect();
    if !expired.is_empty() {
        state.connection.execute_batch("BEGIN IMMEDIATE")?;
        let mut delete = state
            .connection
            .prepare_cached("DELETE FROM kv WHERE key = ?1 AND expires_at <= ?2")?;
        for key in expired {
            delete.execute(params![key, now])?;
        }
        drop(delete);
        state.connection.execute_batch("COMMIT")?;
    }
    state.sweep.after = match slice.last() {
        Some((key, _)) if slice.len() == SWEEP_ROWS => key.clone(),
        _ => String::new(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::TestClock;
    use super::*;

    #[test]
    fn a_listing_reads_only_its_own_prefix() {
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let store = SqliteKv::open(Path::new(":memory:"), clock, Commits::Grouped).unwrap();
        for n in 0..2_000 {
            store.set(&format!("a:{n:04}"), b"v", None).unwrap();
            store.set(&format!("z:{n:04}"), b"v", None).unwrap();
        }
        for key in ["p:1", "p:2", "p:3"] {
            store.set(key, b"v", None).unwrap();
        }
        let (keys, cursor) = store.list("p:", Some("a:0005"), 2).unwrap();
        assert_eq!(
            (keys, cursor.as_deref()),
            (vec!["p:1".into(), "p:2".into()], Some("p:2"))
        );
        let (keys, cursor) = store.list("p:", cursor.as_deref(), 2).unwrap();
        assert_eq!((keys, cursor), (vec!["p:3".to_owned()], None));
        // Both listings together stepped over a handful of rows, not the
        // 4,000 around the prefix.
        let steps = store
            .state()
            .connection
            .prepare_cached(LIST_FROM)
            .unwrap()
            .get_status(rusqlite::StatementStatus::VmStep);
        assert!(
            steps < 200,
            "{steps} VM steps for two listings of three keys"
        );
    }

    #[test]
    fn commits_sweep_expired_rows_out_of_the_file() {
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let store = SqliteKv::open(Path::new(":memory:"), clock.clone(), Commits::Grouped).unwrap();
        let rows = |store: &SqliteKv| -> Vec<String> {
            let state = store.state();
            let mut statement = state
                .connection
                .prepare("SELECT key FROM kv ORDER BY key")
                .unwrap();
            let keys = statement.query_map([], |row| row.get(0)).unwrap();
            keys.collect::<rusqlite::Result<_>>().unwrap()
        };
        // More keys than one sweep looks at: each sweep goes on from where
        // the last one stopped.
        for n in 0..SWEEP_ROWS + 10 {
            store.set(&format!("a:{n:05}"), b"v", Some(1)).unwrap();
        }
        store.set("b:kept", b"v", None).unwrap();
        store.set("c:later", b"v", Some(60)).unwrap();
        let first = store.batch();
        // The first sweep looks at the first SWEEP_ROWS keys: none expired.
        store.commit(first..=store.batch()).unwrap();
        assert_eq!(rows(&store).len(), SWEEP_ROWS + 12);

        clock.0.fetch_add(2_000, Ordering::SeqCst);
        store.commit(first..=store.batch()).unwrap();
        assert_eq!(
            rows(&store).len(),
            SWEEP_ROWS + 2,
            "the rest of the keys swept"
        );
        store.commit(first..=store.batch()).unwrap();
        assert_eq!(
            rows(&store).len(),
            SWEEP_ROWS + 2,
            "the next sweep waits a second"
        );
        clock.0.fetch_add(SWEEP_EVERY_MILLIS, Ordering::SeqCst);
        store.commit(first..=store.batch()).unwrap();
        assert_eq!(rows(&store), ["b:kept", "c:later"]);
    }

    #[test]
    fn grouped_writes_are_visible_at_once_and_durable_after_commit() {
        let dir = std::env::temp_dir().join(format!("wats-kv-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite3");
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let store = SqliteKv::open(&path, clock.clone(), Commits::Grouped).unwrap();
        let first = store.batch();
        store.set("a", b"1", None).unwrap();
        assert_eq!(
            store.get("a").unwrap().as_deref(),
            Some(&b"1"[..]),
            "read back before commit"
        );
        let reader = SqliteKv::open(&path, clock.clone(), Commits::PerWrite).unwrap();
        assert_eq!(reader.get("a").unwrap(), None, "not committed yet");
        store.commit(first..=store.batch()).unwrap();
        assert_eq!(reader.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.batch() > first, "the next write joins a new batch");
        // What was written last is committed when the store is dropped.
        store.set("b", b"2", None).unwrap();
        drop(store);
        assert_eq!(reader.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        drop(reader);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
