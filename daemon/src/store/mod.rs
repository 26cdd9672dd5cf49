//! The database, behind one interface for the rules ([`Db`]) and two
//! engines: one SQLite file on this machine (the default), or one
//! PostgreSQL database shared by every host of a fleet
//! (`[store] backend = "postgresql"`).
//!
//! Every write goes through [`Store::run`], which hands a closure to the
//! writer thread. The writer takes whatever jobs are queued, runs each in
//! its own savepoint inside one transaction and commits them together
//! (group commit): one fsync serves many concurrent logins, and no answer
//! leaves before its change is durable (SQLite `synchronous=FULL`;
//! PostgreSQL's commit). Within one daemon jobs never interleave; between
//! daemons sharing PostgreSQL, a code is used up by a compare-and-set on its
//! row, so that of two hosts given the same code one matches the row and
//! the other matches nothing.
//!
//! Reads that decide nothing by themselves (what a login is about to ask,
//! [`Store::read`]) need not queue behind the writer's fsync: with SQLite
//! they run on a small pool of read-only connections, on a blocking
//! thread, each in its own read transaction; with PostgreSQL on a second
//! connection with a thread of its own, in read-only transactions. A code
//! is still checked and used up only in the writer.

pub mod copy;
pub mod db;
mod postgresql;
pub mod schema;
mod sqlite;

pub use db::{Db, DbError, FromValue, Optional, Params, Row, ToValue};
/// What a statement, or a job of statements, returns.
pub type DbResult<T> = db::Result<T>;
use crate::params;

use crate::adapters::sealing::Keys;
use crate::config::{self as cfg, StoreConfig};
use db::Engine;
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 256;
/// Read-only connections kept open between reads.
const MAX_IDLE_READERS: usize = 8;
/// File name of the database inside the state directory.
pub const DB_FILE: &str = "twofactor.db";
/// The advisory lock a PostgreSQL store is created and migrated under, so
/// that of several hosts starting at once one migrates and the others
/// wait ("2FA" in ASCII).
const MIGRATION_LOCK: i64 = 0x0032_4641;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("{path}: {message}")]
    Unsafe { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database is at schema version {found}, newer than this twofactord ({known}); refusing to touch it")]
    TooNew { found: i64, known: i64 },
    #[error("the database failed its integrity check: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Failed(String),
    #[error("the database writer has stopped")]
    Closed,
    #[error(
        "{path} does not exist. If this is a new installation, create it once with \
         `twofactord --init`; if it existed, restore it from a backup (starting with an \
         empty database would let every enrolled user in without a code)"
    )]
    Missing { path: PathBuf },
    #[error(
        "the database is empty (it was truncated or replaced). Restore it from a backup; \
         to start afresh on purpose, remove it and run `twofactord --init`"
    )]
    Empty,
    #[error(
        "values in the database do not open with this key file; restore the key file that \
         belongs to this database"
    )]
    WrongKey,
    #[error("{path} exists already; --init only creates a new database")]
    Exists { path: PathBuf },
    #[error("{path}: another twofactord (or a key rotation) is using this state directory")]
    Busy { path: PathBuf },
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
}

impl From<crate::adapters::sealing::SealError> for StoreError {
    fn from(e: crate::adapters::sealing::SealError) -> Self {
        StoreError::Failed(e.to_string())
    }
}

/// Every sealed column: (table, column); each table has a `username`
/// column, the user the value is sealed for.
const SEALED: [(&str, &str); 10] = [
    ("totp", "secret"),
    ("totp_pending", "secret"),
    ("backup_codes", "selector"),
    ("backup_codes", "hash"),
    ("email", "address"),
    ("email_codes", "address"),
    ("email_codes", "digest"),
    ("devices", "identity"),
    ("devices", "label"),
    ("devices", "address"),
];

/// The values of one sealed column, with the users they belong to.
fn sealed_values(
    db: &Db,
    table: &str,
    column: &str,
    limit: Option<u32>,
) -> db::Result<Vec<(String, Vec<u8>)>> {
    let sql = match limit {
        Some(n) => format!("SELECT username, {column} FROM {table} LIMIT {n}"),
        None => format!("SELECT username, {column} FROM {table}"),
    };
    db.query_map(&sql, params![], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Replaces one stored value of a sealed column (the value itself finds
/// the row: sealed values differ by their random nonce).
fn replace_value(
    db: &Db,
    table: &str,
    column: &str,
    user: &str,
    old: &[u8],
    new: &[u8],
) -> db::Result<u64> {
    db.execute(
        &format!("UPDATE {table} SET {column} = ?3 WHERE username = ?1 AND {column} = ?2"),
        params![user, old, new],
    )
}

/// Opens one sealed value of each column: the key file must be the
/// database's own, or the daemon would refuse every login it serves.
fn check_key(db: &Db) -> Result<(), StoreError> {
    for (table, column) in SEALED {
        for (user, value) in sealed_values(db, table, column, Some(1))? {
            if crate::adapters::sealing::is_sealed(&value)
                && db
                    .unseal(&user, &format!("{table}.{column}"), &value)
                    .is_err()
            {
                return Err(StoreError::WrongKey);
            }
        }
    }
    Ok(())
}

/// Seals values an older version stored in clear.
fn seal_legacy(db: &Db) -> Result<(), StoreError> {
    for (table, column) in SEALED {
        let name = format!("{table}.{column}");
        for (user, value) in sealed_values(db, table, column, None)? {
            if !crate::adapters::sealing::is_sealed(&value) {
                let sealed = db.seal(&user, &name, &value)?;
                replace_value(db, table, column, &user, &value, &sealed)?;
            }
        }
    }
    Ok(())
}

/// Takes the state directory's lock (flock on `twofactor.lock`), or fails
/// at once if another process holds it. The lock lasts as long as the
/// returned value.
fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| StoreError::Busy { path })
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A unit of work for the writer: run it (then complete it after the
/// commit), or fail it without running.
trait Job: Send {
    fn run(self: Box<Self>, db: &Db) -> Completion;
    fn fail(self: Box<Self>, message: String);
}

struct TypedJob<R, F> {
    f: F,
    reply: oneshot::Sender<Result<R, String>>,
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

/// A handle to the writer thread. Cheap to clone. When the last handle
/// goes, the writer finishes the queued jobs and ends, and the state
/// directory's lock is released before the drop returns.
#[derive(Clone)]
pub struct Store {
    // Field order: the job sender goes before the writer is joined.
    jobs: mpsc::Sender<Box<dyn Job>>,
    commits: Arc<AtomicU64>,
    /// SQLite's read-only connections; None for an in-memory database.
    readers: Option<Arc<Readers>>,
    /// PostgreSQL's reader: a second connection and thread, whose
    /// batches are read-only transactions.
    reader: Option<Box<Store>>,
    /// Shared by the daemons of many hosts (PostgreSQL).
    shared: bool,
    _writer: Arc<Writer>,
}

/// Read-only connections to the database file, opened when needed and
/// kept (a few) for the next read.
struct Readers {
    path: PathBuf,
    keys: Arc<Keys>,
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection, rusqlite::Error> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(sqlite::STATEMENT_CACHE);
        conn.execute_batch("PRAGMA foreign_keys=ON;")?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }

    /// `f` inside one read transaction on a read-only connection.
    fn read<R>(&self, f: impl FnOnce(&Db) -> db::Result<R>) -> Result<R, StoreError> {
        let mut conn = self.take()?;
        let db = Db::new(&mut conn, &self.keys);
        let value = in_transaction(&db, "BEGIN DEFERRED", || f(&db))?;
        self.give_back(conn);
        Ok(value)
    }
}

/// The writer thread, joined when the last [`Store`] is dropped.
struct Writer(std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Writer {
    fn drop(&mut self) {
        let handle = self.0.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// Whether opening may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The database must exist: a missing one is an error, never a silent
    /// fresh start (every enrolled user would log in without a code).
    Existing,
    /// First installation (`twofactord --init`): the database must not
    /// exist yet.
    Create,
}

/// The lock file that one process at a time holds on a state directory
/// (the daemon while it runs, a key rotation while it re-seals).
pub const LOCK_FILE: &str = "twofactor.lock";

/// Where the writer's batches run.
trait Backend: Send {
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
struct Sqlite(Connection);

impl Backend for Sqlite {
    fn engine(&mut self, _: &Keys) -> Result<&mut dyn Engine, StoreError> {
        Ok(&mut self.0)
    }
    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }
}

/// PostgreSQL: a connection opened when needed, again after a failure.
struct Postgres {
    config: StoreConfig,
    mode: Mode,
    conn: Option<postgresql::Connection>,
    /// Batches of reads only (`BEGIN READ ONLY`): the store's reader.
    read_only: bool,
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

/// A new connection's schema: created (`--init`), migrated under an
/// advisory lock (hosts starting at once migrate one after another), or
/// refused when newer than this daemon; then the key is checked.
fn prepare_postgresql(
    conn: &mut postgresql::Connection,
    keys: &Keys,
    mode: Mode,
) -> Result<(), StoreError> {
    let db = Db::new(conn, keys);
    in_transaction(&db, "BEGIN", || {
        db.execute("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK])?;
        let exists: bool = db.query_row(
            "SELECT to_regclass('twofactor_schema') IS NOT NULL",
            params![],
            |r| r.get(0),
        )?;
        let found: i64 = if exists {
            db.query_row("SELECT version FROM twofactor_schema", params![], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0)
        } else {
            0
        };
        let known = schema::current_version();
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        match (found, mode) {
            (0, Mode::Existing) => return Err(StoreError::Empty),
            (0, Mode::Create) => {
                db.execute_batch(schema::POSTGRESQL_BASE)?;
                db.execute_batch("CREATE TABLE twofactor_schema (version BIGINT NOT NULL)")?;
                db.execute(
                    "INSERT INTO twofactor_schema(version) VALUES (?1)",
                    [schema::POSTGRESQL_BASE_VERSION],
                )?;
            }
            (_, Mode::Create) => {
                return Err(StoreError::Exists {
                    path: PathBuf::from("the PostgreSQL database"),
                })
            }
            (_, Mode::Existing) => {}
        }
        let from = found.max(schema::POSTGRESQL_BASE_VERSION);
        for (i, (_, sql)) in schema::LATER.iter().enumerate() {
            let version = schema::POSTGRESQL_BASE_VERSION + i as i64 + 1;
            if version > from {
                db.execute_batch(sql)?;
                db.execute("UPDATE twofactor_schema SET version = ?1", [version])?;
            }
        }
        Ok(())
    })?;
    check_key(&db)
}

impl Store {
    /// Opens the store `[store]` names: the SQLite file in `state_dir`,
    /// or the PostgreSQL database (see [`Store::open_postgresql`]).
    pub fn open_configured(
        config: &crate::config::Config,
        keys: Arc<Keys>,
        mode: Mode,
    ) -> Result<Store, StoreError> {
        match config.store.backend {
            cfg::Backend::Sqlite => Store::open(&config.state_dir, keys, mode),
            cfg::Backend::Postgresql => Store::open_postgresql(&config.store, keys, mode),
        }
    }

    /// A store in a PostgreSQL database. With [`Mode::Create`] the schema
    /// is created now (an error if it exists). Otherwise nothing is
    /// checked yet: the writer connects for its first job and again after
    /// any failure, so that the daemon starts while the database is down
    /// and recovers when it is back ([`Store::probe`] tells how it is).
    pub fn open_postgresql(
        config: &StoreConfig,
        keys: Arc<Keys>,
        mode: Mode,
    ) -> Result<Store, StoreError> {
        let mut backend = Postgres {
            config: config.clone(),
            mode,
            conn: None,
            read_only: false,
        };
        if mode == Mode::Create {
            backend.engine(&keys)?;
        }
        let reader = Postgres {
            config: config.clone(),
            mode: Mode::Existing,
            conn: None,
            read_only: true,
        };
        let mut store = Store::start(Box::new(backend), keys.clone(), None)?;
        store.reader = Some(Box::new(Store::start(Box::new(reader), keys, None)?));
        store.shared = true;
        Ok(store)
    }

    /// Opens `state_dir/twofactor.db` (or creates it, with
    /// [`Mode::Create`]), checks the directory and file permissions, takes
    /// the directory's lock, migrates, seals what was stored in clear by
    /// an older version, and starts the writer.
    pub fn open(state_dir: &Path, keys: Arc<Keys>, mode: Mode) -> Result<Store, StoreError> {
        let path = state_dir.join(DB_FILE);
        match (mode, std::fs::symlink_metadata(&path)) {
            (Mode::Existing, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { path });
            }
            (Mode::Create, Ok(_)) => {
                return Err(StoreError::Exists { path });
            }
            _ => {}
        }
        prepare_dir(state_dir, mode)?;
        let lock = lock_dir(state_dir)?;
        prepare_file(&path, mode)?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let conn = prepare_sqlite(conn, &keys, mode)?;
        let mut store = Store::start(Box::new(Sqlite(conn)), keys.clone(), Some(lock))?;
        store.readers = Some(Arc::new(Readers {
            path,
            keys,
            idle: std::sync::Mutex::new(Vec::new()),
        }));
        Ok(store)
    }

    /// A private in-memory database with a fresh key (unit tests).
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let keys = Arc::new(Keys::generate().map_err(|e| StoreError::Failed(e.to_string()))?);
        let conn = prepare_sqlite(Connection::open_in_memory()?, &keys, Mode::Create)?;
        Store::start(Box::new(Sqlite(conn)), keys, None)
    }

    fn start(
        backend: Box<dyn Backend>,
        keys: Arc<Keys>,
        lock: Option<nix::fcntl::Flock<std::fs::File>>,
    ) -> Result<Store, StoreError> {
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let handle = std::thread::Builder::new()
            .name("twofactord-store".into())
            .spawn(move || {
                // The directory stays locked while the writer runs.
                let _lock = lock;
                writer(backend, &keys, rx, &counter)
            })
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("<writer thread>"),
                source,
            })?;
        Ok(Store {
            jobs,
            commits,
            readers: None,
            reader: None,
            shared: false,
            _writer: Arc::new(Writer(std::sync::Mutex::new(Some(handle)))),
        })
    }

    /// Other daemons connected to a shared store now (always 0 for a
    /// SQLite file, which one process at a time holds): a key rotation or
    /// a copy must not run beside them.
    pub async fn other_daemons(&self) -> Result<i64, StoreError> {
        if !self.shared {
            return Ok(0);
        }
        self.run(|db| {
            db.query_row(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'twofactord' \
                 AND datname = current_database() AND pid <> pg_backend_pid()",
                params![],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Whether the database can be used now (PostgreSQL: connects if need
    /// be); the error says why not.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(|_| Ok(())).await
    }

    /// Opens every sealed value once: an error when one does not open with
    /// these keys (the key file is not the database's own).
    pub async fn verify_sealed(&self) -> Result<(), StoreError> {
        self.run(|db| {
            for (table, column) in SEALED {
                let name = format!("{table}.{column}");
                for (user, value) in sealed_values(db, table, column, None)? {
                    db.unseal(&user, &name, &value)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| StoreError::WrongKey)
    }

    /// Seals every secret again with the key that seals now (a key
    /// rotation, while the keys that sealed before can still open). Returns
    /// how many values were sealed again.
    pub async fn reseal(&self) -> Result<usize, StoreError> {
        self.run(|db| {
            let mut n = 0;
            for (table, column) in SEALED {
                let name = format!("{table}.{column}");
                for (user, value) in sealed_values(db, table, column, None)? {
                    let plain = db.unseal(&user, &name, &value)?;
                    let sealed = db.seal(&user, &name, &plain)?;
                    n += replace_value(db, table, column, &user, &value, &sealed)? as usize;
                }
            }
            Ok(n)
        })
        .await
    }

    /// Runs `f` in the writer, inside a transaction that is committed
    /// durably before this returns. If `f` fails, its changes are rolled
    /// back (other jobs of the batch are unaffected). If the commit fails,
    /// the result is an error even though `f` succeeded.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Db) -> db::Result<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<R, String>>();
        self.jobs
            .send(Box::new(TypedJob { f, reply }))
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => Err(StoreError::Failed(message)),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl Store {
    /// Runs `f` on a read-only connection in one read transaction, beside
    /// the writer rather than behind it: for reads whose result decides
    /// nothing by itself. `f` sees what was committed when it started; a
    /// write in `f` fails. (In memory, where there is one connection, `f`
    /// runs in the writer with `query_only` on: a write fails there too.
    /// With PostgreSQL, `f` runs on the reader's connection, in a
    /// read-only transaction.)
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Db) -> db::Result<R> + Send + 'static,
    {
        if let Some(reader) = &self.reader {
            return reader.run(f).await;
        }
        let Some(readers) = self.readers.clone() else {
            // In memory: in the writer, with writes refused as on a
            // read-only connection, so that tests see what the file would.
            return self
                .run(move |db| {
                    db.execute_batch("PRAGMA query_only=ON")?;
                    let result = f(db);
                    let off = db.execute_batch("PRAGMA query_only=OFF");
                    let value = result?;
                    off?;
                    Ok(value)
                })
                .await;
        };
        tokio::task::spawn_blocking(move || readers.read(f))
            .await
            .map_err(|e| StoreError::Failed(format!("a read did not finish: {e}")))?
    }

    /// `first` on a blocking thread (it may block: a name-service
    /// look-up), then the read it asks for, if any, as [`Store::read`].
    /// Where reads run on this process's own connections (a SQLite file)
    /// both run in one blocking job: two hand-offs between threads fewer,
    /// about 70 µs of a login's `Begin` on a 2-CPU machine
    /// (docs/performance.md). Returns what `first` gave and the read's
    /// outcome; the error is only `first` not finishing.
    pub async fn read_after<T, R, G>(
        &self,
        first: impl FnOnce() -> (T, Option<G>) + Send + 'static,
    ) -> Result<(T, Option<Result<R, StoreError>>), StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        G: FnOnce(&Db) -> db::Result<R> + Send + 'static,
    {
        let unfinished = |e: tokio::task::JoinError| {
            StoreError::Failed(format!("a look-up before a read did not finish: {e}"))
        };
        if let Some(readers) = self.readers.clone() {
            return tokio::task::spawn_blocking(move || {
                let (value, read) = first();
                (value, read.map(|g| readers.read(g)))
            })
            .await
            .map_err(unfinished);
        }
        let (value, read) = tokio::task::spawn_blocking(first)
            .await
            .map_err(unfinished)?;
        let read = match read {
            Some(g) => Some(self.read(g).await),
            None => None,
        };
        Ok((value, read))
    }

    /// Transactions committed so far (each may carry many jobs).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// `f` inside one transaction opened with `begin`: committed when it
/// succeeds, rolled back when it fails.
fn in_transaction<R, E: From<DbError>>(
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

fn in_savepoint<R>(db: &Db, f: impl FnOnce(&Db) -> db::Result<R>) -> Result<R, String> {
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
fn begin_batch<'a>(
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
fn writer(
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

/// A SQLite connection made ready: configured, migrated, its key checked,
/// values from before sealing sealed.
fn prepare_sqlite(mut conn: Connection, keys: &Keys, mode: Mode) -> Result<Connection, StoreError> {
    configure(&conn)?;
    migrate(&mut conn, mode)?;
    {
        let db = Db::new(&mut conn, keys);
        check_key(&db)?;
        in_transaction(&db, "BEGIN IMMEDIATE", || seal_legacy(&db))?;
    }
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(sqlite::STATEMENT_CACHE);
    // WAL for concurrent reads, FULL so that a commit survives power loss,
    // secure_delete so that removed secrets are overwritten on disk.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if mode != "wal" && mode != "memory" {
        return Err(StoreError::Failed(format!(
            "cannot switch the database to WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
    )?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(check));
    }
    Ok(())
}

fn migrate(conn: &mut Connection, mode: Mode) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = schema::current_version();
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    if found == 0 && mode == Mode::Existing {
        // An emptied file is a new database to SQLite: refuse, as for a
        // missing one.
        return Err(StoreError::Empty);
    }
    let all = schema::MIGRATIONS
        .iter()
        .copied()
        .chain(schema::LATER.iter().map(|(sqlite, _)| *sqlite));
    for (i, sql) in all.enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The state directory must be a real directory owned by us and closed to
/// everyone else. A missing one is created 0700.
fn prepare_dir(dir: &Path, mode: Mode) -> Result<(), StoreError> {
    let unsafe_dir = |message: String| StoreError::Unsafe {
        path: dir.to_path_buf(),
        message,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == Mode::Create => {
            std::fs::DirBuilder::new()
                .recursive(false)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            Ok(())
        }
        Err(source) => Err(StoreError::Io {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(unsafe_dir(
                    "is not a directory (symlinks are refused)".into(),
                ));
            }
            if meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(unsafe_dir(format!(
                    "is owned by uid {}, not by the daemon's uid {}",
                    meta.uid(),
                    nix::unistd::geteuid()
                )));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(unsafe_dir(format!(
                    "has mode {:o}; it must be 0700 (chmod 0700 {})",
                    meta.permissions().mode() & 0o7777,
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

/// Creates the database file 0600 if missing, and refuses a symlink or a
/// file others can read.
fn prepare_file(path: &Path, mode: Mode) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(mode == Mode::Create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "has mode {:o}; it must be a regular file with mode 0600",
                meta.permissions().mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// A bare database for unit tests of the modules that own tables: in
/// memory, every migration applied, sealing with a fresh key.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A database handle for a unit test (left for the process to free).
    pub fn connection() -> Db<'static> {
        let keys: &'static Keys = Box::leak(Box::new(Keys::generate().expect("a key")));
        let conn = prepare_sqlite(
            Connection::open_in_memory().expect("in-memory database"),
            keys,
            Mode::Create,
        )
        .expect("schema");
        let conn: &'static mut Connection = Box::leak(Box::new(conn));
        Db::new(conn, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn keys() -> Arc<Keys> {
        Arc::new(Keys::generate().unwrap())
    }

    fn fresh_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tf-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn migrates_and_persists() {
        let dir = fresh_dir("persist");
        let rt = rt();
        let keys = keys();
        {
            let store = Store::open(&dir, keys.clone(), Mode::Create).unwrap();
            rt.block_on(store.run(|c| {
                c.execute(
                    "INSERT INTO accounts(username, created) VALUES ('a', 1)",
                    params![],
                )
            }))
            .unwrap();
        }
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(dir.join(DB_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // Reopen: migrations are not re-run, data is there.
        let store = Store::open(&dir, keys, Mode::Existing).unwrap();
        let n: i64 = rt
            .block_on(
                store
                    .run(|c| c.query_row("SELECT count(*) FROM accounts", params![], |r| r.get(0))),
            )
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = rt
            .block_on(store.run(|c| c.query_row("PRAGMA user_version", params![], |r| r.get(0))))
            .unwrap();
        assert_eq!(v, schema::current_version());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_emptied_database_is_refused_not_recreated() {
        let dir = fresh_dir("missing");
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::Missing { .. })
        ));
        assert!(!dir.exists(), "nothing was created");
        drop(Store::open(&dir, keys(), Mode::Create).unwrap());
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Create),
            Err(StoreError::Exists { .. })
        ));
        // Emptied (truncated) in place: refused too.
        std::fs::write(dir.join(DB_FILE), b"").unwrap();
        let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}-wal")));
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::Empty)
        ));
        // Deleted: refused.
        std::fs::remove_file(dir.join(DB_FILE)).unwrap();
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::Missing { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_process_at_a_time_per_state_directory() {
        let dir = fresh_dir("lock");
        let first = Store::open(&dir, keys(), Mode::Create).unwrap();
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::Busy { .. })
        ));
        drop(first);
        drop(Store::open(&dir, keys(), Mode::Existing).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_sealed_at_rest_and_open_only_with_their_key() {
        let dir = fresh_dir("sealed");
        let rt = rt();
        let keys = keys();
        let secret = b"\x01\x02secret-bytes-of-20".to_vec();
        let store = Store::open(&dir, keys.clone(), Mode::Create).unwrap();
        let s = secret.clone();
        rt.block_on(store.run(move |c| {
            crate::rules::bookkeeping::ensure(c, "alice", 0)?;
            crate::rules::totp::activate(
                c,
                "alice",
                &crate::rules::totp::Secret::from_bytes(s),
                0,
                0,
            )?;
            crate::rules::backup_codes::replace_set(
                c,
                "alice",
                &[("4821".into(), "$argon2id$v=19$m=19456,t=2,p=1$x$y".into())],
                0,
            )
        }))
        .unwrap();
        drop(store);
        let mut raw = std::fs::read(dir.join(DB_FILE)).unwrap();
        raw.extend(std::fs::read(dir.join(format!("{DB_FILE}-wal"))).unwrap_or_default());
        for clear in [&secret[..], b"4821", b"$argon2id$"] {
            assert!(
                !raw.windows(clear.len()).any(|w| w == clear),
                "{:?} in clear in the database file",
                String::from_utf8_lossy(clear)
            );
        }
        // Another key: refused at once (nothing sealed would open).
        assert!(matches!(
            Store::open(&dir, super::tests::keys(), Mode::Existing),
            Err(StoreError::WrongKey)
        ));
        let store = Store::open(&dir, keys, Mode::Existing).unwrap();
        rt.block_on(store.verify_sealed()).unwrap();
        let (loaded, _) = rt
            .block_on(store.run(|c| crate::rules::totp::load(c, "alice")))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.bytes(), &secret[..]);
        let found = rt
            .block_on(store.run(|c| crate::rules::backup_codes::candidate(c, "alice", "4821")))
            .unwrap();
        assert!(found.is_some_and(|(_, h)| h.starts_with("$argon2id$")));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn values_stored_in_clear_by_an_older_version_are_sealed_when_opened() {
        let dir = fresh_dir("legacy");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        {
            // A database as version 5 of the schema left it, in clear.
            let c = Connection::open(dir.join(DB_FILE)).unwrap();
            for (i, m) in schema::MIGRATIONS.iter().take(5).enumerate() {
                c.execute_batch(m).unwrap();
                c.pragma_update(None, "user_version", i as i64 + 1).unwrap();
            }
            c.execute_batch(
                "INSERT INTO accounts(user, created) VALUES ('bob', 0);
                 INSERT INTO totp(user, secret, created, last_step)
                     VALUES ('bob', X'3132333435363738393031323334353637383930', 0, 0);
                 INSERT INTO backup_codes(user, selector, hash, created)
                     VALUES ('bob', '1234', '$argon2id$legacy', 0);",
            )
            .unwrap();
        }
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let rt = rt();
        let store = Store::open(&dir, keys(), Mode::Existing).unwrap();
        let (secret, _) = rt
            .block_on(store.run(|c| crate::rules::totp::load(c, "bob")))
            .unwrap()
            .unwrap();
        assert_eq!(secret.bytes(), b"12345678901234567890");
        let found = rt
            .block_on(store.run(|c| crate::rules::backup_codes::candidate(c, "bob", "1234")))
            .unwrap();
        assert_eq!(found.map(|(_, h)| h), Some("$argon2id$legacy".to_string()));
        let stored: Vec<Vec<u8>> = rt
            .block_on(
                store.run(|c| c.query_map("SELECT secret FROM totp", params![], |r| r.get(0))),
            )
            .unwrap();
        assert!(stored
            .iter()
            .all(|v| crate::adapters::sealing::is_sealed(v)));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_open_directory_and_newer_schema() {
        let dir = fresh_dir("open");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        {
            let c = Connection::open(dir.join(DB_FILE)).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::Unsafe { .. })
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            Store::open(&dir, keys(), Mode::Existing),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_in_a_read_fails_in_memory_as_on_the_file() {
        let rt = rt();
        let dir = fresh_dir("read-only");
        let file = Store::open(&dir, keys(), Mode::Create).unwrap();
        let memory = Store::open_in_memory().unwrap();
        for store in [&file, &memory] {
            let write = |db: &Db| {
                db.execute(
                    "INSERT INTO accounts(username, created) VALUES ('r', 1)",
                    params![],
                )
            };
            assert!(rt.block_on(store.read(write)).is_err());
            let n: i64 = rt
                .block_on(store.read(|db| {
                    db.query_row("SELECT count(*) FROM accounts", params![], |r| r.get(0))
                }))
                .unwrap();
            assert_eq!(n, 0);
            // The writer still writes after it.
            rt.block_on(store.run(write)).unwrap();
        }
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_after_a_look_up_runs_only_when_asked_and_cannot_write() {
        let rt = rt();
        let dir = fresh_dir("read-after");
        let file = Store::open(&dir, keys(), Mode::Create).unwrap();
        let memory = Store::open_in_memory().unwrap();
        for store in [&file, &memory] {
            rt.block_on(store.run(|db| {
                db.execute(
                    "INSERT INTO accounts(username, created) VALUES ('a', 1)",
                    params![],
                )
            }))
            .unwrap();
            let count = |db: &Db| -> db::Result<i64> {
                db.query_row("SELECT count(*) FROM accounts", params![], |r| r.get(0))
            };
            let (found, read) = rt
                .block_on(store.read_after(move || ("looked up", Some(count))))
                .unwrap();
            assert_eq!(found, "looked up");
            assert_eq!(read.unwrap().unwrap(), 1);
            // Nothing asked, nothing read.
            let (found, read) = rt
                .block_on(store.read_after(|| (7, None::<fn(&Db) -> db::Result<i64>>)))
                .unwrap();
            assert_eq!(found, 7);
            assert!(read.is_none());
            // A write in the read fails, and is told apart from the look-up.
            let write = |db: &Db| {
                db.execute(
                    "INSERT INTO accounts(username, created) VALUES ('w', 1)",
                    params![],
                )
            };
            let (found, read) = rt
                .block_on(store.read_after(move || (1, Some(write))))
                .unwrap();
            assert_eq!(found, 1);
            assert!(read.unwrap().is_err());
            assert_eq!(rt.block_on(store.read(count)).unwrap(), 1);
        }
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_job_rolls_back_only_itself() {
        let rt = rt();
        let store = Store::open_in_memory().unwrap();
        let s2 = store.clone();
        rt.block_on(async move {
            let bad = s2.run(|c| {
                c.execute(
                    "INSERT INTO accounts(username, created) VALUES ('x', 1)",
                    params![],
                )?;
                c.execute("INSERT INTO nosuchtable VALUES (1)", params![])
            });
            let good = s2.run(|c| {
                c.execute(
                    "INSERT INTO accounts(username, created) VALUES ('y', 1)",
                    params![],
                )
            });
            let (b, g) = tokio::join!(bad, good);
            assert!(b.is_err());
            assert!(g.is_ok());
            let users: Vec<String> = s2
                .run(|c| {
                    c.query_map(
                        "SELECT username FROM accounts ORDER BY username",
                        params![],
                        |r| r.get(0),
                    )
                })
                .await
                .unwrap();
            assert_eq!(users, vec!["y".to_string()]);
        });
    }

    #[test]
    fn concurrent_jobs_are_serialised() {
        let rt = rt();
        let store = Arc::new(Store::open_in_memory().unwrap());
        rt.block_on(async {
            store
                .run(|c| {
                    c.execute(
                        "INSERT INTO accounts(username, created) VALUES ('c', 0)",
                        params![],
                    )
                })
                .await
                .unwrap();
            let mut handles = Vec::new();
            for _ in 0..100 {
                let s = store.clone();
                handles.push(tokio::spawn(async move {
                    s.run(|c| {
                        let n: i64 = c.query_row(
                            "SELECT failures FROM accounts WHERE username='c'",
                            params![],
                            |r| r.get(0),
                        )?;
                        c.execute(
                            "UPDATE accounts SET failures=?1 WHERE username='c'",
                            [n + 1],
                        )
                    })
                    .await
                }));
            }
            for h in handles {
                h.await.unwrap().unwrap();
            }
            let n: i64 = store
                .run(|c| {
                    c.query_row(
                        "SELECT failures FROM accounts WHERE username='c'",
                        params![],
                        |r| r.get(0),
                    )
                })
                .await
                .unwrap();
            assert_eq!(n, 100, "read-modify-write jobs must not interleave");
        });
    }
}
