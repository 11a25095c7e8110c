//! The SQLite store of `wats serve`: a thread of its own owns the
//! connection (with grouped commits; `wats spin`'s, whose writes commit one
//! by one, runs in the caller under a lock), and requests hand it work (kv batches, listings, commits)
//! through a queue. Writes join one open transaction; the thread commits
//! it once for every commit asked since its last (real group commit), so
//! requests wait for a commit only in the queue, never on a lock, and
//! tokio's workers never block on SQLite. A second thread, with a
//! connection of its own, checkpoints the WAL after every 1,000 written
//! keys, so that the copy into the database and its fsyncs never stall
//! the store's thread; expired rows are swept out after commits.

use super::{check_sizes, expiry, list_start, page, SWEEP_EVERY_MILLIS};
use crate::services::{BoxFuture, Clock, KvFailure, KvStore};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use wats::KvOp;

pub struct SqliteKv {
    runner: Runner,
    /// The batch a write made now joins: the open transaction's number, or
    /// the next one's. Changed only by the store's thread.
    batch: Arc<AtomicU64>,
}

/// When writes reach the disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Commits {
    /// Each write is its own transaction (a host that never calls `commit`).
    PerWrite,
    /// Writes join one open transaction until the next `commit`: the host
    /// commits before a Graph call and at the end of each request, and
    /// every commit asked while the thread was busy is one commit
    /// (docs/kv-schema.md, "Group commit").
    Grouped,
}

/// Where the connection's work runs.
enum Runner {
    /// Grouped commits: on the store's thread (`serve`). The queue is
    /// closed on drop, after which the thread commits what is open and ends.
    Thread {
        jobs: Option<mpsc::Sender<Job>>,
        thread: Option<std::thread::JoinHandle<()>>,
        /// Ends after the store's thread, which holds its wake-up.
        checkpointer: Option<std::thread::JoinHandle<()>>,
    },
    /// Each write commits at once (`wats spin`, whose component makes a
    /// call per key): nothing to group, so the caller runs it under a lock
    /// instead of paying two thread hops per call.
    Inline(std::sync::Mutex<Sqlite>),
}

type Work = Box<dyn FnOnce(&mut Sqlite) + Send>;

enum Job {
    Work(Work),
    /// Make these batches durable, then call back with the outcome.
    Commit {
        batches: RangeInclusive<u64>,
        done: Box<dyn FnOnce(Result<(), KvFailure>) + Send>,
    },
}

/// The connection and its group commit, owned by the store's thread.
struct Sqlite {
    connection: Connection,
    commits: Commits,
    /// Whether a transaction is open (batch `SqliteKv::batch`).
    open: bool,
    batch: Arc<AtomicU64>,
    /// Recent batches that were rolled back instead of committed.
    lost: VecDeque<u64>,
    /// Where the next sweep of expired rows starts, and when it is due.
    sweep: Sweep,
    clock: Arc<dyn Clock>,
    /// Wakes the checkpointer (a file's grouped store only).
    checkpoints: Option<Checkpoints>,
}

/// Keys written since the checkpointer was last woken, and its wake-up.
struct Checkpoints {
    wake: mpsc::SyncSender<()>,
    written: usize,
}

/// Written keys between checkpoints: about as many WAL pages, as each key
/// of a delivery lands on a page of its own (SQLite's default is 1,000).
const CHECKPOINT_AFTER_WRITES: usize = 1_000;
/// SQLite's own checkpoint on the store's thread, should the checkpointer
/// fall behind: a bound on the WAL (pages of 4 KiB).
const WAL_BACKSTOP_PAGES: u32 = 20_000;

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

fn stopped() -> KvFailure {
    KvFailure::Unavailable("sqlite: the store's thread stopped".into())
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
                 PRAGMA wal_autocheckpoint = 1000;
                 PRAGMA journal_size_limit = 16777216;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -16384;
                 CREATE TABLE IF NOT EXISTS kv (
                     key TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL,
                     expires_at INTEGER
                 ) WITHOUT ROWID;",
            )
            .map_err(unavailable)?;
        let batch = Arc::new(AtomicU64::new(0));
        let mut sqlite = Sqlite {
            connection,
            commits,
            open: false,
            batch: batch.clone(),
            lost: VecDeque::new(),
            sweep: Sweep::default(),
            clock,
            checkpoints: None,
        };
        let runner = match commits {
            Commits::PerWrite => Runner::Inline(std::sync::Mutex::new(sqlite)),
            Commits::Grouped => {
                let checkpointer = match path.to_str() {
                    Some(":memory:") => None,
                    _ => Some(start_checkpointer(path, &mut sqlite)?),
                };
                let (jobs, queue) = mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("wats-sqlite".into())
                    .spawn(move || serve(sqlite, queue))
                    .map_err(|_| {
                        KvFailure::Unavailable("sqlite: cannot start its thread".into())
                    })?;
                Runner::Thread {
                    jobs: Some(jobs),
                    thread: Some(thread),
                    checkpointer,
                }
            }
        };
        Ok(SqliteKv { runner, batch })
    }

    fn inline(db: &std::sync::Mutex<Sqlite>) -> std::sync::MutexGuard<'_, Sqlite> {
        db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn submit(&self, job: Job) -> Result<(), KvFailure> {
        match &self.runner {
            Runner::Thread {
                jobs: Some(jobs), ..
            } => jobs.send(job).map_err(|_| stopped()),
            Runner::Thread { jobs: None, .. } => Err(stopped()),
            Runner::Inline(db) => {
                let mut db = Self::inline(db);
                match job {
                    Job::Work(work) => work(&mut db),
                    Job::Commit { batches, done } => {
                        db.commit_open();
                        done(db.outcome(&batches));
                    }
                }
                Ok(())
            }
        }
    }

    /// Runs `work` on the store's thread and waits for it here.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Sqlite) -> Result<T, KvFailure> + Send + 'static,
    ) -> Result<T, KvFailure> {
        if let Runner::Inline(db) = &self.runner {
            return work(&mut Self::inline(db));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(Job::Work(Box::new(move |db| {
            let _ = reply.send(work(db));
        })))?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Runs `work` on the store's thread; the future waits for it without
    /// holding a thread.
    fn call_async<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Sqlite) -> Result<T, KvFailure> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, KvFailure>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let submitted = self.submit(Job::Work(Box::new(move |db| {
            let _ = reply.send(work(db));
        })));
        Box::pin(async move {
            submitted?;
            answer.await.map_err(|_| stopped())?
        })
    }
}

/// Starts the checkpointer on its own connection, and hands the store's
/// thread its wake-up in place of SQLite's own checkpoints (kept only as a
/// backstop). A passive checkpoint never blocks the writer: it copies the
/// committed pages no reader still needs, and the writer's next
/// transaction starts the WAL over once all of them are copied.
fn start_checkpointer(
    path: &Path,
    sqlite: &mut Sqlite,
) -> Result<std::thread::JoinHandle<()>, KvFailure> {
    let connection = Connection::open(path).map_err(unavailable)?;
    connection
        .execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(unavailable)?;
    sqlite
        .connection
        .pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
        .map_err(unavailable)?;
    let (wake, woken) = mpsc::sync_channel(1);
    sqlite.checkpoints = Some(Checkpoints { wake, written: 0 });
    std::thread::Builder::new()
        .name("wats-checkpoint".into())
        .spawn(move || {
            for () in woken {
                // A failure leaves the pages in the WAL for the next try
                // (or the backstop); it loses nothing.
                let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .map_err(|_| KvFailure::Unavailable("sqlite: cannot start its checkpointer".into()))
}

/// The store's thread: runs jobs in order; after each run of jobs that
/// were waiting, one commit answers every commit asked among them.
fn serve(mut db: Sqlite, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Work(work) => work(&mut db),
                Job::Commit { batches, done } => waiting.push((batches, done)),
            }
            next = jobs.try_recv().ok();
        }
        if !waiting.is_empty() {
            db.commit_open();
            for (batches, done) in waiting {
                done(db.outcome(&batches));
            }
        }
    }
    // The store was dropped: commit what the last requests wrote (closing
    // the connection would roll it back).
    db.commit_open();
}

impl Sqlite {
    fn now(&self) -> i64 {
        self.clock.now_millis() as i64
    }

    /// Ends the open transaction's batch, remembering it if it was lost.
    fn close_batch(&mut self, committed: bool) {
        if !committed {
            self.lost.push_back(self.batch.load(Ordering::SeqCst));
            if self.lost.len() > LOST_REMEMBERED {
                self.lost.pop_front();
            }
        }
        self.open = false;
        self.batch.fetch_add(1, Ordering::SeqCst);
    }

    /// Opens the group's transaction if commits are grouped and none is.
    fn begin_group(&mut self) -> Result<(), KvFailure> {
        if self.commits == Commits::Grouped && !self.open {
            self.connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(unavailable)?;
            self.open = true;
        }
        Ok(())
    }

    /// One transaction: a batch of writes lands whole or not at all. With
    /// grouped commits it is a savepoint inside the group's transaction,
    /// so a failed batch leaves the other requests' writes alone.
    fn apply(&mut self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        let now = self.now();
        let clock = self.clock.clone();
        let expiry = |ttl: Option<u32>| expiry(&*clock, ttl).map(|at| at as i64);
        if ops.iter().all(|op| matches!(op, KvOp::Get(_))) {
            let connection = &self.connection;
            let answers = ops.iter().map(|op| run_op(connection, op, now, expiry));
            return answers
                .collect::<rusqlite::Result<_>>()
                .map_err(unavailable);
        }
        let grouped = self.commits == Commits::Grouped;
        // One write on its own is one statement: its own transaction.
        if let ([op], false) = (ops, grouped) {
            let answer = run_op(&self.connection, op, now, expiry).map_err(unavailable)?;
            return Ok(vec![answer]);
        }
        self.begin_group()?;
        let begin = if grouped {
            "SAVEPOINT batch"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.connection.execute_batch(begin).map_err(unavailable)?;
        let answers = ops
            .iter()
            .map(|op| run_op(&self.connection, op, now, expiry))
            .collect::<rusqlite::Result<Vec<_>>>();
        let end = match (&answers, grouped) {
            (Ok(_), true) => "RELEASE batch",
            (Ok(_), false) => "COMMIT",
            (Err(_), true) => "ROLLBACK TO batch; RELEASE batch",
            (Err(_), false) => "ROLLBACK",
        };
        let ended = self.connection.execute_batch(end);
        // Some failures (I/O, a full disk) roll the whole transaction back.
        if grouped && self.open && self.connection.is_autocommit() {
            self.close_batch(false);
        }
        let answers = answers.map_err(unavailable)?;
        ended.map_err(unavailable)?;
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.written += ops.len();
        }
        Ok(answers)
    }

    fn list(
        &mut self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        let now = self.now();
        let mut statement = self
            .connection
            .prepare_cached(LIST_FROM)
            .map_err(unavailable)?;
        let after = cursor.unwrap_or("");
        let rows = statement
            .query_map(params![list_start(prefix, after), now], |row| {
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

    /// Commits the open transaction, if any, then sweeps if a sweep is due.
    fn commit_open(&mut self) {
        if self.open {
            let committed = self.connection.execute_batch("COMMIT").is_ok();
            if !committed {
                let _ = self.connection.execute_batch("ROLLBACK");
            }
            self.close_batch(committed);
            if let Some(checkpoints) = &mut self.checkpoints {
                // A full wake-up slot means a checkpoint is due anyway.
                if checkpoints.written >= CHECKPOINT_AFTER_WRITES {
                    let _ = checkpoints.wake.try_send(());
                    checkpoints.written = 0;
                }
            }
        }
        // After the commit, so that a failed sweep costs no request its writes.
        let now = self.clock.now_millis();
        if !self.open && now >= self.sweep.due_at {
            self.sweep.due_at = now + SWEEP_EVERY_MILLIS;
            if sweep(self, now as i64).is_err() {
                let _ = self.connection.execute_batch("ROLLBACK");
            }
        }
    }

    /// Whether these batches are durable: none of them was lost.
    fn outcome(&self, batches: &RangeInclusive<u64>) -> Result<(), KvFailure> {
        if self.lost.iter().any(|batch| batches.contains(batch)) {
            return Err(KvFailure::Unavailable("sqlite: commit failed".into()));
        }
        Ok(())
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

impl Drop for SqliteKv {
    /// Commits what is open: closes the queue and waits for the thread to
    /// commit and end.
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Thread {
                jobs,
                thread,
                checkpointer,
            } => {
                jobs.take();
                for thread in [thread.take(), checkpointer.take()].into_iter().flatten() {
                    let _ = thread.join();
                }
            }
            Runner::Inline(db) => Self::inline(db).commit_open(),
        }
    }
}

impl KvStore for SqliteKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        let mut found = self.apply(&[KvOp::Get(key.into())])?;
        Ok(found.pop().flatten())
    }

    fn set(&self, key: &str, value: &[u8], ttl_seconds: Option<u32>) -> Result<(), KvFailure> {
        self.apply(&[KvOp::set(key, value, ttl_seconds)]).map(drop)
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvFailure> {
        let answers = self.apply(&[KvOp::set_if_absent(key, value, ttl_seconds)])?;
        Ok(answers.first().is_some_and(Option::is_none))
    }

    fn remove(&self, key: &str) -> Result<(), KvFailure> {
        self.apply(&[KvOp::Remove(key.into())]).map(drop)
    }

    fn apply(&self, ops: &[KvOp]) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
        check_sizes(ops)?;
        let ops = ops.to_vec();
        self.call(move |db| db.apply(&ops))
    }

    fn apply_async(
        &self,
        ops: Vec<KvOp>,
    ) -> BoxFuture<'_, Result<Vec<Option<Vec<u8>>>, KvFailure>> {
        if let Err(failure) = check_sizes(&ops) {
            return Box::pin(std::future::ready(Err(failure)));
        }
        self.call_async(move |db| db.apply(&ops))
    }

    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvFailure> {
        let (prefix, cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        self.call(move |db| db.list(&prefix, cursor.as_deref(), limit))
    }

    fn batch(&self) -> u64 {
        self.batch.load(Ordering::SeqCst)
    }

    fn commit(&self, batches: RangeInclusive<u64>) -> Result<(), KvFailure> {
        let (reply, answer) = mpsc::sync_channel(1);
        let done = Box::new(move |outcome| {
            let _ = reply.send(outcome);
        });
        self.submit(Job::Commit { batches, done })?;
        answer.recv().map_err(|_| stopped())?
    }

    fn commit_async(&self, batches: RangeInclusive<u64>) -> BoxFuture<'_, Result<(), KvFailure>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let done = Box::new(move |outcome| {
            let _ = reply.send(outcome);
        });
        let submitted = self.submit(Job::Commit { batches, done });
        Box::pin(async move {
            submitted?;
            answer.await.map_err(|_| stopped())?
        })
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
            .call(|db| {
                let statement = db
                    .connection
                    .prepare_cached(LIST_FROM)
                    .map_err(unavailable)?;
                Ok(statement.get_status(rusqlite::StatementStatus::VmStep))
            })
            .unwrap();
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
            store
                .call(|db| {
                    let mut statement = db
                        .connection
                        .prepare("SELECT key FROM kv ORDER BY key")
                        .map_err(unavailable)?;
                    let keys = statement
                        .query_map([], |row| row.get(0))
                        .map_err(unavailable)?;
                    keys.collect::<rusqlite::Result<_>>().map_err(unavailable)
                })
                .unwrap()
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

    /// A directory of its own for a test's state file, removed after it.
    struct TempState(std::path::PathBuf);

    impl TempState {
        fn new(name: &str) -> TempState {
            let dir = std::env::temp_dir().join(format!("wats-kv-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempState(dir)
        }
    }

    impl Drop for TempState {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_checkpointer_copies_the_wal_into_the_database_while_the_store_runs() {
        let state = TempState::new("checkpoint");
        let path = state.0.join("state.sqlite3");
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let store = SqliteKv::open(&path, clock, Commits::Grouped).unwrap();
        let database_bytes = || std::fs::metadata(&path).map_or(0, |file| file.len());
        let empty = database_bytes();
        // More written keys than wake the checkpointer, far fewer pages
        // than SQLite's own backstop: only the checkpointer copies them.
        let value = vec![7u8; 1024];
        for n in 0..CHECKPOINT_AFTER_WRITES + 100 {
            let first = store.batch();
            store.set(&format!("k:{n:05}"), &value, None).unwrap();
            store.commit(first..=store.batch()).unwrap();
        }
        // The checkpointer runs on its own thread: wait for its copy (the
        // file only grows through checkpoints while the store is open).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while database_bytes() < 1 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            database_bytes() >= 1 << 20,
            "database file {} bytes (was {empty}): the WAL was not checkpointed",
            database_bytes()
        );
    }

    #[test]
    fn grouped_writes_are_visible_at_once_and_durable_after_commit() {
        let state = TempState::new("group");
        let path = state.0.join("state.sqlite3");
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
    }
}
