//! The writer thread: jobs queued by [`Store::run`], run each in its own
//! savepoint inside one transaction and committed together (group commit),
//! on either engine ([`Backend`]).

use super::*;

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

/// The writer loop: take a batch, run it in one transaction, commit, answer.
pub(super) fn writer(
    mut backend: Box<dyn Backend>,
    keys: &Keys,
    rx: mpsc::Receiver<Box<dyn Job>>,
    commits: &AtomicU64,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let engine = match begin_batch(backend.as_mut(), keys) {
            Ok(engine) => engine,
            Err(message) => {
                for job in batch {
                    job.fail(message.clone());
                }
                continue;
            }
        };
        let db = Db::new(engine, keys);
        let completions: Vec<Completion> = batch.into_iter().map(|job| job.run(&db)).collect();
        let commit = db.execute_batch("COMMIT").map_err(|e| e.to_string());
        commits.fetch_add(1, Ordering::Relaxed);
        if commit.is_err() {
            let _ = db.execute_batch("ROLLBACK");
        }
        backend.settle();
        for done in completions {
            done(commit.clone());
        }
    }
}
