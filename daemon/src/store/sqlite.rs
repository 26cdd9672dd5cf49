//! The SQLite engine: statements compiled once per connection (compiling
//! them on every login was a fifth of the daemon's CPU per login, see
//! docs/performance.md).

use super::db::{DbError, Engine, Result, Row, Value, ValueRef};
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
