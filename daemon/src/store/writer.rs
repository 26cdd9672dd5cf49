//! The writer: jobs queued by [`Store::run`], run each in its own
//! savepoint inside one transaction and committed together (group commit),
//! on either engine ([`Backend`]).
//!
//! A batch is run by whoever finds the engine free ([`Lane`]): the task
//! that queued a job, on its own thread ([`crate::blocking`]), when the
//! engine is idle (a login one at a time: no hand-off to another thread
//! and back), or the writer thread, which takes what queues while a batch
//! commits (many logins at once: one commit for all of them). Whoever
//! lets the engine go looks at the queue afterwards, so that a job queued
//! meanwhile is never left behind.

use super::*;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Largest number of jobs committed together.
pub(super) const MAX_BATCH: usize = 256;

pub(super) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A unit of work for the writer: run it (then complete it after the
/// commit), or fail it without running.
pub(super) trait Job: Send {
    fn run(self: Box<Self>, db: &Db) -> Completion;
    fn fail(self: Box<Self>, message: String);
}

pub(super) struct TypedJob<R, F> {
    pub(super) f: F,
    pub(super) reply: oneshot::Sender<Result<R, String>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Db) -> db::Result<R> + Send + 'static,
{
    fn run(self: Box<Self>, db: &Db) -> Completion {
        let TypedJob { f, reply } = *self;
        let result = in_savepoint(db, f);
        Box::new(move |commit: Result<(), String>| {
            let outcome = match (commit, result) {
                (Ok(()), Ok(r)) => Ok(r),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            let _ = reply.send(outcome);
        })
    }
    fn fail(self: Box<Self>, message: String) {
        let _ = self.reply.send(Err(message));
    }
}

/// The writer thread, joined when the last [`Store`] is dropped.
pub(super) struct Writer(pub(super) std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Writer {
    fn drop(&mut self) {
        let handle = self.0.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// Where the writer's batches run.
pub(super) trait Backend: Send {
    /// The engine for the next batch: connected, its schema current.
    fn engine(&mut self, keys: &Keys) -> Result<&mut dyn Engine, StoreError>;
    /// What opens a batch's transaction.
    fn begin(&self) -> &'static str;
    /// After a failure: let a failed connection go (the next batch opens
    /// another); whether one was let go.
    fn settle(&mut self) -> bool {
        false
    }
}

/// The SQLite file (or memory): one connection for the daemon's life.
pub(super) struct Sqlite(pub(super) Connection);

impl Backend for Sqlite {
    fn engine(&mut self, _: &Keys) -> Result<&mut dyn Engine, StoreError> {
        Ok(&mut self.0)
    }
    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }
}

/// PostgreSQL: a connection opened when needed, again after a failure.
pub(super) struct Postgres {
    pub(super) config: StoreConfig,
    pub(super) mode: Mode,
    pub(super) conn: Option<postgresql::Connection>,
    /// Batches of reads only (`BEGIN READ ONLY`): the store's reader.
    pub(super) read_only: bool,
}

impl Backend for Postgres {
    fn engine(&mut self, keys: &Keys) -> Result<&mut dyn Engine, StoreError> {
        self.settle();
        if self.conn.is_none() {
            let mut conn = postgresql::connect(&self.config)
                .map_err(|e| StoreError::Unreachable(e.to_string()))?;
            prepare_postgresql(&mut conn, keys, self.mode)?;
            // Created once; every later connection finds it.
            self.mode = Mode::Existing;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(StoreError::Closed),
        }
    }
    fn begin(&self) -> &'static str {
        if self.read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        }
    }
    fn settle(&mut self) -> bool {
        let closed = self.conn.as_ref().is_some_and(|c| c.is_closed());
        if closed {
            self.conn = None;
        }
        closed
    }
}

/// `f` inside one transaction opened with `begin`: committed when it
/// succeeds, rolled back when it fails.
pub(super) fn in_transaction<R, E: From<DbError>>(
    db: &Db,
    begin: &str,
    f: impl FnOnce() -> Result<R, E>,
) -> Result<R, E> {
    db.execute_batch(begin)?;
    match f() {
        Ok(r) => {
            db.execute_batch("COMMIT")?;
            Ok(r)
        }
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

pub(super) fn in_savepoint<R>(db: &Db, f: impl FnOnce(&Db) -> db::Result<R>) -> Result<R, String> {
    db.execute_batch("SAVEPOINT job")
        .map_err(|e| e.to_string())?;
    match f(db) {
        Ok(r) => {
            db.execute_batch("RELEASE SAVEPOINT job")
                .map_err(|e| e.to_string())?;
            Ok(r)
        }
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job");
            Err(e.to_string())
        }
    }
}

/// Opens a batch's transaction. A connection that died while idle (the
/// database restarted) is seen only when used: if BEGIN fails on it,
/// nothing of the batch has run, so it is tried once more on a new
/// connection. Both failures are told (the first is usually the cause).
pub(super) fn begin_batch<'a>(
    backend: &'a mut dyn Backend,
    keys: &Keys,
) -> Result<&'a mut dyn Engine, String> {
    let begin = backend.begin();
    let first = match backend.engine(keys) {
        Ok(engine) => match engine.batch(begin) {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        },
        Err(e) => return Err(e.to_string()),
    };
    if let Some(first) = first {
        if !backend.settle() {
            return Err(first);
        }
        let engine = backend
            .engine(keys)
            .map_err(|e| format!("{first}; then: {e}"))?;
        engine
            .batch(begin)
            .map_err(|e| format!("{first}; then: {e}"))?;
        return Ok(engine);
    }
    backend.engine(keys).map_err(|e| e.to_string())
}

/// The engine and what must live as long as it.
pub(super) struct EngineSlot {
    backend: Box<dyn Backend>,
    keys: Arc<Keys>,
    /// The state directory's lock (SQLite), held while the engine lives.
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// A store's queue of jobs and the one engine that runs them.
pub(super) struct Lane {
    queue: Mutex<VecDeque<Box<dyn Job>>>,
    engine: Mutex<EngineSlot>,
    commits: Arc<AtomicU64>,
}

/// What a job is told when the engine was lost to a panic in an earlier
/// job (its transaction's state is unknown: nothing runs on it again).
const ENGINE_LOST: &str = "the store's writer stopped after an internal failure";

impl Lane {
    pub(super) fn new(
        backend: Box<dyn Backend>,
        keys: Arc<Keys>,
        lock: Option<nix::fcntl::Flock<std::fs::File>>,
        commits: Arc<AtomicU64>,
    ) -> Lane {
        Lane {
            queue: Mutex::new(VecDeque::new()),
            engine: Mutex::new(EngineSlot {
                backend,
                keys,
                _lock: lock,
            }),
            commits,
        }
    }

    /// Queues `job`.
    pub(super) fn push(&self, job: Box<dyn Job>) {
        self.queue_guard().push_back(job);
    }

    /// Whether the engine is free now (a hint: it may be taken the next
    /// moment, and whoever takes it runs what is queued).
    pub(super) fn idle(&self) -> bool {
        !matches!(self.engine.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// Runs one batch of what is queued here, on this thread, if the
    /// engine is free (else whoever holds it runs the batch). Whether jobs
    /// are queued still: those are the writer thread's.
    pub(super) fn lead_once(&self) -> bool {
        match self.engine.try_lock() {
            Ok(mut engine) => {
                self.run_batch(&mut engine);
            }
            Err(TryLockError::Poisoned(_)) => self.fail_queued(),
            Err(TryLockError::WouldBlock) => {}
        }
        self.pending()
    }

    /// The writer thread's turn: batches until nothing is queued.
    fn drain(&self) {
        loop {
            match self.engine.lock() {
                Ok(mut engine) => while self.run_batch(&mut engine) {},
                Err(_) => self.fail_queued(),
            }
            // Looked at after the engine is let go: a job queued while it
            // was held, by a task that found it taken, is run now.
            if !self.pending() {
                return;
            }
        }
    }

    fn queue_guard(&self) -> MutexGuard<'_, VecDeque<Box<dyn Job>>> {
        // The queue is only pushed to and drained: a panic cannot leave
        // it half-changed.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pending(&self) -> bool {
        !self.queue_guard().is_empty()
    }

    fn fail_queued(&self) {
        let jobs: Vec<_> = self.queue_guard().drain(..).collect();
        for job in jobs {
            job.fail(ENGINE_LOST.to_string());
        }
    }

    /// Takes up to [`MAX_BATCH`] queued jobs and runs them in one
    /// transaction, then answers each; false when nothing was queued.
    fn run_batch(&self, slot: &mut EngineSlot) -> bool {
        let batch: Vec<Box<dyn Job>> = {
            let mut queue = self.queue_guard();
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect()
        };
        if batch.is_empty() {
            return false;
        }
        let EngineSlot { backend, keys, .. } = slot;
        let engine = match begin_batch(backend.as_mut(), keys) {
            Ok(engine) => engine,
            Err(message) => {
                for job in batch {
                    job.fail(message.clone());
                }
                return true;
            }
        };
        let db = Db::new(engine, keys);
        let completions: Vec<Completion> = batch.into_iter().map(|job| job.run(&db)).collect();
        let commit = db.execute_batch("COMMIT").map_err(|e| e.to_string());
        self.commits.fetch_add(1, Ordering::Relaxed);
        if commit.is_err() {
            let _ = db.execute_batch("ROLLBACK");
        }
        backend.settle();
        for done in completions {
            done(commit.clone());
        }
        true
    }
}

/// The writer thread: runs what is queued each time it is woken, and
/// once more when the last handle is gone.
pub(super) fn writer(lane: &Lane, wake: mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        lane.drain();
    }
    lane.drain();
}
