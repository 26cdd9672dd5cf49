//! The database, behind one interface for the rules ([`Db`]) and two
//! engines: one SQLite file on this machine (the default), or one
//! PostgreSQL database shared by every host of a fleet
//! (`[store] backend = "postgresql"`).
//!
//! Every write goes through [`Store::run`], which queues a closure for the
//! writer ([`writer`]). The writer takes whatever jobs are queued, runs each
//! in its own savepoint inside one transaction and commits them together
//! (group commit): one fsync serves many concurrent logins, and no answer
//! leaves before its change is durable (SQLite `synchronous=FULL`;
//! PostgreSQL's commit). Within one daemon jobs never interleave; between
//! daemons sharing PostgreSQL, a code is used up by a compare-and-set on its
//! row, so that of two hosts given the same code one matches the row and
//! the other matches nothing, and an attempt takes its account's row
//! before it reads the failure limit, so that the limit is checked and
//! the failure counted as one step on every host.
//!
//! Reads that decide nothing by themselves (what a login is about to ask,
//! [`Store::read`]) need not queue behind the writer's fsync: with SQLite
//! they run on a small pool of read-only connections, off the async
//! workers' other tasks ([`crate::blocking`]), each in its own read
//! transaction; with PostgreSQL on a second
//! connection with a thread of its own, in read-only transactions. A code
//! is still checked and used up only in the writer.

pub mod copy;
pub mod db;
mod files;
mod postgresql;
mod readers;
mod resealing;
pub mod schema;
mod sqlite;
mod writer;

pub use files::LOCK_FILE;
use files::{lock_dir, prepare_dir, prepare_file};
use postgresql::prepare_postgresql;
use readers::Readers;
use resealing::{replace_value, sealed_values, SEALED};
use sqlite::{prepare_sqlite, prewrite_wal};
use writer::{in_transaction, writer, Backend, Lane, Postgres, Sqlite, TypedJob, Writer};

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

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "twofactor.db";

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

/// A handle to the store and its writer. Cheap to clone. When the last
/// handle goes, the writer thread runs what is still queued and ends, and
/// the state directory's lock is released before the drop returns.
#[derive(Clone)]
pub struct Store {
    // Field order: the writer thread's waker goes before the thread is
    // joined, and the lane (with the engine and the directory's lock)
    // after.
    wake: mpsc::Sender<()>,
    commits: Arc<AtomicU64>,
    /// SQLite's read-only connections; None for an in-memory database.
    readers: Option<Arc<Readers>>,
    /// PostgreSQL's reader: a second connection and thread, whose
    /// batches are read-only transactions.
    reader: Option<Box<Store>>,
    /// Shared by the daemons of many hosts (PostgreSQL).
    shared: bool,
    _writer: Arc<Writer>,
    lane: Arc<Lane>,
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
        prewrite_wal(&conn, &path);
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
        let (wake, woken) = mpsc::channel::<()>();
        let commits = Arc::new(AtomicU64::new(0));
        let lane = Arc::new(Lane::new(backend, keys, lock, commits.clone()));
        let theirs = lane.clone();
        let handle = std::thread::Builder::new()
            .name("twofactord-store".into())
            .spawn(move || writer(&theirs, woken))
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("<writer thread>"),
                source,
            })?;
        Ok(Store {
            wake,
            commits,
            readers: None,
            reader: None,
            shared: false,
            _writer: Arc::new(Writer(std::sync::Mutex::new(Some(handle)))),
            lane,
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
        self.lane.push(Box::new(TypedJob { f, reply }));
        // An idle engine runs the job here and now; a busy one's holder
        // runs it after what it runs (group commit).
        let left = if self.lane.idle() {
            let lane = self.lane.clone();
            crate::blocking::run(move || lane.lead_once())
                .await
                .unwrap_or(true)
        } else {
            false
        };
        if left {
            // What queued meanwhile is the writer thread's.
            self.wake.send(()).map_err(|_| StoreError::Closed)?;
        }
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
        crate::blocking::run(move || readers.read(f))
            .await
            .map_err(|e| StoreError::Failed(format!("a read did not finish: {e}")))?
    }

    /// `first`, which may block (a name-service look-up), then the read it
    /// asks for, if any, as [`Store::read`]; both off the async workers'
    /// other tasks ([`crate::blocking`]). Where reads run on this
    /// process's own connections (a SQLite file) both run in one piece of
    /// blocking work. Returns what `first` gave and the read's outcome;
    /// the error is only `first` not finishing.
    pub async fn read_after<T, R, G>(
        &self,
        first: impl FnOnce() -> (T, Option<G>) + Send + 'static,
    ) -> Result<(T, Option<Result<R, StoreError>>), StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        G: FnOnce(&Db) -> db::Result<R> + Send + 'static,
    {
        let unfinished = |e: crate::blocking::Unfinished| {
            StoreError::Failed(format!("a look-up before a read did not finish: {e}"))
        };
        if let Some(readers) = self.readers.clone() {
            return crate::blocking::run(move || {
                let (value, read) = first();
                (value, read.map(|g| readers.read(g)))
            })
            .await
            .map_err(unfinished);
        }
        let (value, read) = crate::blocking::run(first).await.map_err(unfinished)?;
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

    /// Trust given before devices recorded the password (schema 9) has
    /// nothing to compare with: it ends at the upgrade.
    #[test]
    fn trust_from_before_password_digests_ends_at_the_upgrade() {
        let dir = fresh_dir("devices10");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let keys = keys();
        {
            let mut c = Connection::open(dir.join(DB_FILE)).unwrap();
            for (i, m) in schema::MIGRATIONS.iter().enumerate() {
                c.execute_batch(m).unwrap();
                c.pragma_update(None, "user_version", i as i64 + 1).unwrap();
            }
            let db = Db::new(&mut c, &keys);
            db.execute(
                "INSERT INTO accounts(username, created) VALUES ('bob', 0)",
                params![],
            )
            .unwrap();
            db.execute(
                "INSERT INTO devices(id, username, identity, label, address, added, last_used,
                     expires) VALUES ('0000aaaa', 'bob', ?1, ?2, ?3, 0, 0, ?4)",
                params![
                    db.seal("bob", "devices.identity", b"id").unwrap(),
                    db.seal("bob", "devices.label", b"label").unwrap(),
                    db.seal("bob", "devices.address", b"").unwrap(),
                    i64::MAX
                ],
            )
            .unwrap();
        }
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let rt = rt();
        let store = Store::open(&dir, keys, Mode::Existing).unwrap();
        let left = rt
            .block_on(store.run(|c| crate::rules::trusted_devices::count(c, "bob", 0)))
            .unwrap();
        assert_eq!(left, 0);
        rt.block_on(store.verify_sealed()).unwrap();
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

    /// An account `c` whose failure count the concurrency tests raise.
    async fn seed_counter(store: &Store) {
        store
            .run(|c| {
                c.execute(
                    "INSERT INTO accounts(username, created) VALUES ('c', 0)",
                    params![],
                )
            })
            .await
            .unwrap();
    }

    /// `c`'s failure count, as committed.
    async fn counter(store: &Store) -> i64 {
        store
            .read(|c| {
                c.query_row(
                    "SELECT failures FROM accounts WHERE username='c'",
                    params![],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap()
    }

    /// Jobs from many tasks at once on the daemon's kind of runtime: each
    /// runs once, none is left behind by a task that found the engine
    /// taken, and they share commits (group commit) while some ran on
    /// the thread of the task that queued them.
    #[test]
    fn jobs_at_once_all_run_and_share_commits() {
        let rt = rt();
        let dir = fresh_dir("lane");
        let store = Arc::new(Store::open(&dir, keys(), Mode::Create).unwrap());
        rt.block_on(async {
            seed_counter(&store).await;
            let before = store.commits();
            let mut handles = Vec::new();
            for _ in 0..200 {
                let s = store.clone();
                handles.push(tokio::spawn(async move {
                    let thread = std::thread::current().id();
                    s.run(move |c| {
                        c.execute(
                            "UPDATE accounts SET failures = failures + 1 WHERE username='c'",
                            params![],
                        )?;
                        Ok(std::thread::current().id() == thread)
                    })
                    .await
                }));
            }
            let mut here = 0;
            for h in handles {
                if h.await.unwrap().unwrap() {
                    here += 1;
                }
            }
            assert_eq!(counter(&store).await, 200);
            let commits = store.commits() - before;
            assert!(commits < 200, "{commits} commits for 200 jobs");
            assert!(here > 0, "no job ran on its own task's thread");
        });
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The write-ahead log is written out when the store opens (commits
    /// then write into space that is there), and what was committed
    /// before and after reads back after a reopen.
    #[test]
    fn the_log_is_written_out_at_open_and_changes_survive_it() {
        let rt = rt();
        let dir = fresh_dir("wal");
        let wal = dir.join(format!("{DB_FILE}-wal"));
        for (round, mode) in [(1, Mode::Create), (2, Mode::Existing)] {
            let store = Store::open(&dir, keys(), mode).unwrap();
            let len = std::fs::metadata(&wal).unwrap().len();
            assert!(len >= 1000 * 4096, "the log is {len} bytes");
            let n: i64 = rt.block_on(async {
                store
                    .run(move |c| {
                        c.execute(
                            "INSERT INTO accounts(username, created) VALUES (?1, 0)",
                            [format!("u{round}")],
                        )?;
                        c.query_row("SELECT count(*) FROM accounts", params![], |r| r.get(0))
                    })
                    .await
                    .unwrap()
            });
            assert_eq!(n, round);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A job that panics takes the engine with it (its transaction's state
    /// is unknown): later jobs fail at once instead of waiting forever.
    #[test]
    fn after_a_job_panics_later_jobs_fail_instead_of_hanging() {
        let rt = rt();
        let store = Store::open_in_memory().unwrap();
        rt.block_on(async {
            let s = store.clone();
            let panicked = tokio::spawn(async move {
                s.run(|_| -> DbResult<()> { panic!("a bug in a job") })
                    .await
            })
            .await;
            assert!(matches!(panicked, Err(_) | Ok(Err(_))));
            let later =
                tokio::time::timeout(std::time::Duration::from_secs(10), store.run(|_| Ok(())))
                    .await
                    .expect("a later job is answered");
            assert!(later.is_err(), "the engine is not used again");
        });
    }

    #[test]
    fn concurrent_jobs_are_serialised() {
        let rt = rt();
        let store = Arc::new(Store::open_in_memory().unwrap());
        rt.block_on(async {
            seed_counter(&store).await;
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
            assert_eq!(
                counter(&store).await,
                100,
                "read-modify-write jobs must not interleave"
            );
        });
    }
}
