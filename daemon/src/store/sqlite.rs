//! The SQLite engine: statements compiled once per connection (compiling
//! them on every login was a fifth of the daemon's CPU per login, see
//! docs/performance.md).

use super::db::{DbError, Engine, Result, Row, Value, ValueRef};
use super::resealing::{check_key, seal_legacy};
use super::{in_transaction, schema, Db, Keys, Mode, StoreError};
use rusqlite::types::{ToSqlOutput, ValueRef as SqlRef};
use rusqlite::Connection;

/// Statements each connection keeps compiled (rusqlite's default is 16;
/// the daemon has about 70 distinct ones).
pub const STATEMENT_CACHE: usize = 128;

impl rusqlite::ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            ValueRef::Null => SqlRef::Null,
            ValueRef::Int(i) => SqlRef::Integer(i),
            ValueRef::Text(t) => SqlRef::Text(t.as_bytes()),
            ValueRef::Blob(b) => SqlRef::Blob(b),
        }))
    }
}

fn value(v: SqlRef<'_>, column: usize) -> Result<Value> {
    Ok(match v {
        SqlRef::Null => Value::Null,
        SqlRef::Integer(i) => Value::Int(i),
        SqlRef::Text(t) => {
            Value::Text(String::from_utf8(t.to_vec()).map_err(|_| DbError::Type {
                column,
                message: "text is not UTF-8".into(),
            })?)
        }
        SqlRef::Blob(b) => Value::Blob(b.to_vec()),
        SqlRef::Real(_) => {
            return Err(DbError::Type {
                column,
                message: "a real number".into(),
            })
        }
    })
}

impl Engine for Connection {
    fn query(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<Vec<Row>> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(value(row.get_ref(i)?, i)?);
            }
            out.push(Row::new(values));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<u64> {
        let n = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params.iter()))?;
        Ok(n as u64)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.execute_batch(sql)?)
    }
}

/// Writes the write-ahead log out to the size it reaches between two
/// checkpoints (zeros past what it holds), once, when the daemon opens the
/// store. A commit that appends to the log grows the file, and its
/// fdatasync must then commit the file system's journal as well (on this
/// project's ext4 test machine 230 against 160 µs for one 4 KiB block:
/// docs/performance.md); a commit into space already written does not.
/// SQLite writes the log from its start again after each checkpoint and
/// never shrinks it while open (`journal_size_limit` stays -1), so from
/// here on a commit writes into space that is there, unless the log
/// outgrows a checkpoint (a reader held it back). Zeros are no frames: a
/// recovery stops at the first frame whose checksum does not follow.
/// Best effort: a log that could not be extended (a full disk) works as
/// before.
pub(super) fn prewrite_wal(conn: &Connection, db_path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let page: u64 = match conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)) {
        Ok(n) => n.max(512) as u64,
        Err(_) => return,
    };
    let frames: u64 = match conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get::<_, i64>(0))
    {
        Ok(n) if n > 0 => n as u64,
        _ => return,
    };
    // The header, then a checkpoint's worth of frames and one more batch.
    let target = 32 + (frames + 256) * (page + 24);
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&wal) else {
        return;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    let zeros = vec![0u8; 64 * 1024];
    let mut at = len;
    while at < target {
        let n = (target - at).min(zeros.len() as u64) as usize;
        if file.write_all_at(&zeros[..n], at).is_err() {
            return;
        }
        at += n as u64;
    }
    if at > len {
        let _ = file.sync_all();
    }
}

/// A SQLite connection made ready: configured, migrated, its key checked,
/// values from before sealing sealed.
pub(super) fn prepare_sqlite(
    mut conn: Connection,
    keys: &Keys,
    mode: Mode,
) -> std::result::Result<Connection, StoreError> {
    configure(&conn)?;
    migrate(&mut conn, mode)?;
    {
        let db = Db::new(&mut conn, keys);
        check_key(&db)?;
        in_transaction(&db, "BEGIN IMMEDIATE", || seal_legacy(&db))?;
    }
    Ok(conn)
}

pub(super) fn configure(conn: &Connection) -> std::result::Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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

pub(super) fn migrate(conn: &mut Connection, mode: Mode) -> std::result::Result<(), StoreError> {
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
