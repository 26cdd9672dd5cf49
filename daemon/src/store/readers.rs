//! SQLite's read-only connections: opened when needed, a few kept for the
//! next read, each read in its own transaction.

use super::*;

/// Read-only connections kept open between reads.
pub(super) const MAX_IDLE_READERS: usize = 8;

/// Read-only connections to the database file, opened when needed and
/// kept (a few) for the next read.
pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) keys: Arc<Keys>,
    pub(super) idle: std::sync::Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn take(&self) -> Result<Connection, rusqlite::Error> {
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

    pub(super) fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }

    /// `f` inside one read transaction on a read-only connection.
    pub(super) fn read<R>(&self, f: impl FnOnce(&Db) -> db::Result<R>) -> Result<R, StoreError> {
        let mut conn = self.take()?;
        let db = Db::new(&mut conn, &self.keys);
        let value = in_transaction(&db, "BEGIN DEFERRED", || f(&db))?;
        self.give_back(conn);
        Ok(value)
    }
}
