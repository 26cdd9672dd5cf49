//! The database: one SQLite file in WAL mode, owned by one writer thread.
//!
//! Every read and write goes through [`Store::run`], which hands a closure to
//! the writer thread. The writer takes whatever jobs are queued, runs each in
//! its own savepoint inside one `BEGIN IMMEDIATE` transaction and commits
//! them together (group commit): one fsync serves many concurrent logins,
//! and no answer leaves before its change is durable (`synchronous=FULL`).
//! Because there is only one writer, jobs never interleave: two logins with
//! the same code are two jobs in sequence, and the second sees the first's
//! accepted step.

pub mod schema;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 256;
/// File name of the database inside the state directory.
pub const DB_FILE: &str = "twofactor.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A unit of work for the writer: run it (then complete it after the
/// commit), or fail it without running.
trait Job: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Completion;
    fn fail(self: Box<Self>, message: String);
}

struct TypedJob<R, F> {
    f: F,
    reply: oneshot::Sender<Result<R, String>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Completion {
        let TypedJob { f, reply } = *self;
        let result = in_savepoint(conn, f);
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

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Box<dyn Job>>,
    commits: Arc<AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) `state_dir/twofactor.db`, checks the
    /// directory and file permissions, migrates, and starts the writer.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        prepare_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        prepare_file(&path)?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Store::start(conn)
    }

    /// A private in-memory database (unit tests).
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::start(Connection::open_in_memory()?)
    }

    fn start(mut conn: Connection) -> Result<Store, StoreError> {
        configure(&conn)?;
        migrate(&mut conn)?;
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        std::thread::Builder::new()
            .name("twofactord-store".into())
            .spawn(move || writer(conn, rx, &counter))
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("<writer thread>"),
                source,
            })?;
        Ok(Store { jobs, commits })
    }

    /// Runs `f` in the writer, inside a transaction that is committed
    /// durably before this returns. If `f` fails, its changes are rolled
    /// back (other jobs of the batch are unaffected). If the commit fails,
    /// the result is an error even though `f` succeeded.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
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
    /// Transactions committed so far (each may carry many jobs).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, rusqlite::Error>,
) -> Result<R, String> {
    conn.execute_batch("SAVEPOINT job")
        .map_err(|e| e.to_string())?;
    match f(conn) {
        Ok(r) => {
            conn.execute_batch("RELEASE job")
                .map_err(|e| e.to_string())?;
            Ok(r)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e.to_string())
        }
    }
}

/// The writer loop: take a batch, run it in one transaction, commit, answer.
fn writer(conn: Connection, rx: mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let message = e.to_string();
            for job in batch {
                job.fail(message.clone());
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job.run(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        commits.fetch_add(1, Ordering::Relaxed);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = schema::current_version();
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (i, sql) in schema::MIGRATIONS
        .iter()
        .enumerate()
        .skip(found.max(0) as usize)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The state directory must be a real directory owned by us and closed to
/// everyone else. A missing one is created 0700.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    let unsafe_dir = |message: String| StoreError::Unsafe {
        path: dir.to_path_buf(),
        message,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
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

    #[test]
    fn migrates_and_persists() {
        let dir = std::env::temp_dir().join(format!("tf-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = rt();
        {
            let store = Store::open(&dir).unwrap();
            rt.block_on(
                store.run(|c| c.execute("INSERT INTO accounts(user, created) VALUES ('a', 1)", [])),
            )
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
        let store = Store::open(&dir).unwrap();
        let n: i64 = rt
            .block_on(store.run(|c| c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))))
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = rt
            .block_on(store.run(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0))))
            .unwrap();
        assert_eq!(v, schema::current_version());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_open_directory_and_newer_schema() {
        let dir = std::env::temp_dir().join(format!("tf-store-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::Unsafe { .. })));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        {
            let c = Connection::open(dir.join(DB_FILE)).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(matches!(
            Store::open(&dir),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_job_rolls_back_only_itself() {
        let rt = rt();
        let store = Store::open_in_memory().unwrap();
        let s2 = store.clone();
        rt.block_on(async move {
            let bad = s2.run(|c| {
                c.execute("INSERT INTO accounts(user, created) VALUES ('x', 1)", [])?;
                c.execute("INSERT INTO nosuchtable VALUES (1)", [])
            });
            let good =
                s2.run(|c| c.execute("INSERT INTO accounts(user, created) VALUES ('y', 1)", []));
            let (b, g) = tokio::join!(bad, good);
            assert!(b.is_err());
            assert!(g.is_ok());
            let users: Vec<String> = s2
                .run(|c| {
                    let mut st = c.prepare("SELECT user FROM accounts ORDER BY user")?;
                    let rows = st.query_map([], |r| r.get(0))?;
                    rows.collect()
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
                .run(|c| c.execute("INSERT INTO accounts(user, created) VALUES ('c', 0)", []))
                .await
                .unwrap();
            let mut handles = Vec::new();
            for _ in 0..100 {
                let s = store.clone();
                handles.push(tokio::spawn(async move {
                    s.run(|c| {
                        let n: i64 =
                            c.query_row("SELECT failures FROM accounts WHERE user='c'", [], |r| {
                                r.get(0)
                            })?;
                        c.execute("UPDATE accounts SET failures=?1 WHERE user='c'", [n + 1])
                    })
                    .await
                }));
            }
            for h in handles {
                h.await.unwrap().unwrap();
            }
            let n: i64 = store
                .run(|c| {
                    c.query_row("SELECT failures FROM accounts WHERE user='c'", [], |r| {
                        r.get(0)
                    })
                })
                .await
                .unwrap();
            assert_eq!(n, 100, "read-modify-write jobs must not interleave");
        });
    }
}
