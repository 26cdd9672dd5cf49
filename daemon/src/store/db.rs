//! The handle the rules get: statements in one SQL dialect (what SQLite and
//! PostgreSQL both understand; parameters written `?1`, `?2`…), typed
//! values in and out, and sealing of secret columns. Each engine
//! ([`super::sqlite`], [`super::postgresql`]) runs the statements; no rule
//! names an engine.
//!
//! The dialect, in short: `INTEGER` values are 64-bit, `BLOB` values bytes,
//! no engine's own functions (two-argument `MAX`, `IFNULL`, `INSERT OR`…),
//! `ON CONFLICT … DO` for upserts, and a row is used up by a
//! compare-and-set (`UPDATE … WHERE last_step < ?2`, then the row count),
//! never by a read followed by a write, so that two daemons sharing one
//! database cannot both use it. A read that decides what a job may do
//! with rows other daemons change too (the failure limit's counts and
//! locks) comes after the job took a row that every such job takes first,
//! with an `UPDATE` that changes nothing (`SET failures = failures`; not
//! `SELECT … FOR UPDATE`, which SQLite does not know): each engine then
//! runs those jobs one at a time, SQLite by its one writer, PostgreSQL by
//! that row's lock, held to the end of the transaction
//! (`rules::ratelimit::attempt`).

use crate::adapters::sealing::Keys;
use std::cell::RefCell;
use zeroize::Zeroizing;

/// An error from the database or from a value in it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A statement that must return a row returned none.
    #[error("no row")]
    NoRows,
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error with its causes (the server's message, the I/O
    /// error), which `postgres::Error` alone does not print.
    #[error("{}", chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A value of another type than the rule reads.
    #[error("column {column}: {message}")]
    Type { column: usize, message: String },
    /// A sealed value that does not open with the key file.
    #[error("a sealed value does not open with this key file")]
    Unseal,
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, DbError>;

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Result<T>` of a statement that returns at most one row.
pub trait Optional<T> {
    /// `None` for no row, instead of [`DbError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// What can be bound to a parameter.
pub trait ToValue {
    fn to_value(&self) -> ValueRef<'_>;
}

impl ToValue for i64 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Int(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}
impl ToValue for String {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> ValueRef<'_> {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_value(),
            None => ValueRef::Null,
        }
    }
}

/// The parameters of one statement: `params![a, b]`, or `[a]` for values
/// of one type.
pub trait Params {
    fn values(&self) -> Vec<ValueRef<'_>>;
}

impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.iter().map(ToValue::to_value).collect()
    }
}

impl ToValue for Value {
    fn to_value(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A row read from one store, bound as it is to another
/// (`--copy-store-to`).
impl Params for &[Value] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.iter().map(ToValue::to_value).collect()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

/// The parameters of a statement, of any types: `params![user, now]`.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::store::ToValue),*] as &[&dyn $crate::store::ToValue]
    };
}

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", kind(other))),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", kind(other))),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, found {}", kind(other))),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// One row of a result.
#[derive(Debug, Default)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub(super) fn new(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// Every column, as read.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Column `i` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.values.get(i).ok_or_else(|| DbError::Type {
            column: i,
            message: "no such column".into(),
        })?;
        T::from_value(v).map_err(|message| DbError::Type { column: i, message })
    }
}

/// How an engine runs one statement.
pub(super) trait Engine {
    /// Runs `sql` and returns its rows.
    fn query(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<Vec<Row>>;
    /// Runs `sql` and returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<u64>;
    /// Runs statements without parameters or results (transaction control).
    fn batch(&mut self, sql: &str) -> Result<()>;
}

/// The database as a job sees it: inside the job's transaction (or, for a
/// read, a read-only snapshot).
pub struct Db<'a> {
    engine: RefCell<&'a mut dyn Engine>,
    keys: &'a Keys,
}

impl<'a> Db<'a> {
    pub(super) fn new(engine: &'a mut dyn Engine, keys: &'a Keys) -> Db<'a> {
        Db {
            engine: RefCell::new(engine),
            keys,
        }
    }

    fn engine(&self) -> Result<std::cell::RefMut<'_, &'a mut dyn Engine>> {
        self.engine
            .try_borrow_mut()
            .map_err(|_| DbError::Other("a statement ran inside another".into()))
    }

    /// Runs a statement; how many rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<u64> {
        self.engine()?.execute(sql, &params.values())
    }

    /// The first row of a query through `f`, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let rows = self.engine()?.query(sql, &params.values())?;
        rows.first().ok_or(DbError::NoRows).and_then(f)
    }

    /// Every row of a query through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = self.engine()?.query(sql, &params.values())?;
        rows.iter().map(f).collect()
    }

    /// Statements without parameters (transaction control, test set-up).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.engine()?.batch(sql)
    }

    /// `plain` sealed for `user`'s `column` (`"table.column"`): what is
    /// stored in a secret column.
    pub fn seal(&self, user: &str, column: &str, plain: &[u8]) -> Result<Vec<u8>> {
        self.keys
            .seal(user, column, plain)
            .map_err(|e| DbError::Other(e.to_string()))
    }

    /// A secret column's value opened; an error if it was not sealed for
    /// this user and column with one of the key file's keys.
    pub fn unseal(&self, user: &str, column: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.keys
            .open(user, column, sealed)
            .map_err(|_| DbError::Unseal)
    }

    /// [`Db::unseal`] of a value that is text.
    pub fn unseal_text(&self, user: &str, column: &str, sealed: &[u8]) -> Result<String> {
        let plain = self.unseal(user, column, sealed)?;
        String::from_utf8(plain.to_vec()).map_err(|_| DbError::Unseal)
    }
}
