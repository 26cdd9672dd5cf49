//! The PostgreSQL engine: one database shared by the daemons of many hosts.
//!
//! Each daemon keeps one connection for its writer (jobs of a batch share a
//! transaction and its commit, as with SQLite). Statements are prepared
//! once per connection. Correctness across hosts does not rest on the
//! single writer: every use of a code is a compare-and-set on its row
//! (`UPDATE … WHERE last_step < ?2`, `… WHERE used_at IS NULL`), and
//! PostgreSQL's row locks make the second of two hosts see the first's
//! change and match no row. The failure limit's check and count are one
//! step the same way: every attempt first updates its account's row, so
//! an attempt on another host waits for that row and then reads the
//! counts this one committed (`rules::ratelimit::attempt`).
//!
//! A connection that fails is dropped; the next job connects again (the
//! daemon recovers by itself when the database comes back). Until then
//! every job fails, so logins are refused: nothing is decided from a copy.
//! Every call to the server runs under a deadline kept here, in the
//! daemon, besides the server's own statement and lock timeouts and the
//! kernel's TCP timeouts: a server that accepts the bytes and never
//! answers (hung, or behind a partition that still acknowledges) costs
//! the batch at most `statement_timeout_seconds` and the connection,
//! never a hung writer.

use super::db::{DbError, Engine, Result, Row, Value, ValueRef};
use super::resealing::check_key;
use super::Optional;
use super::{in_transaction, schema, Db, Keys, Mode, StoreError};
use crate::adapters::named_files;
use crate::config::{SslMode, StoreConfig};
use crate::params;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};
use zeroize::Zeroizing;

/// A connection and the statements prepared on it.
pub struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
    // Last: dropping its runtime drops the connection's task and closes
    // the socket.
    calls: Calls,
}

/// What drives the calls of a connection: a runtime of the writer's
/// thread, and the deadline of each call.
struct Calls {
    runtime: tokio::runtime::Runtime,
    /// The longest any call may take.
    deadline: Duration,
    /// A call ran past its deadline: the connection is given up.
    broken: bool,
}

impl Calls {
    /// Runs one call to the server to its end, or fails it (and gives the
    /// connection up) at the deadline.
    fn run<T>(
        &mut self,
        call: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        // The timer is made inside the runtime, which it needs.
        let deadline = self.deadline;
        match self
            .runtime
            .block_on(async move { tokio::time::timeout(deadline, call).await })
        {
            Ok(result) => Ok(result?),
            Err(_) => {
                self.broken = true;
                Err(DbError::Other(format!(
                    "the database did not answer within {} s",
                    self.deadline.as_secs()
                )))
            }
        }
    }
}

impl Connection {
    /// Whether the connection has failed (the next job opens another).
    pub fn is_closed(&self) -> bool {
        self.calls.broken || self.client.is_closed()
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.calls.run(self.client.prepare(&dialect(sql)))?;
        self.statements.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }
}

/// `?N` parameters as PostgreSQL writes them (`$N`); quoted text is left
/// as it is.
fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

impl ToSql for ValueRef<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("an integer for a parameter of type {ty}").into()),
            },
            ValueRef::Text(t) if <&str as ToSql>::accepts(ty) => t.to_sql(ty, out),
            ValueRef::Blob(b) if <&[u8] as ToSql>::accepts(ty) => b.to_sql(ty, out),
            ValueRef::Text(_) | ValueRef::Blob(_) => {
                Err(format!("text or bytes for a parameter of type {ty}").into())
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn value(row: &tokio_postgres::Row, i: usize) -> Result<Value> {
    let ty = row.columns().get(i).map(|c| c.type_().clone());
    let value = match ty {
        Some(Type::INT8) => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Some(Type::INT4) => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(Type::INT2) => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(Type::BOOL) => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(Type::BYTEA) => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        Some(ref t) if <String as tokio_postgres::types::FromSql>::accepts(t) => {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        other => {
            return Err(DbError::Type {
                column: i,
                message: format!("unsupported type {other:?}"),
            })
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

fn bind<'a>(params: &'a [ValueRef<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Engine for Connection {
    fn query(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        let rows = self
            .calls
            .run(self.client.query(&statement, &bind(params)))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| value(r, i))
                    .collect::<Result<Vec<_>>>()
            })
            .map(|values| values.map(Row::new))
            .collect()
    }

    fn execute(&mut self, sql: &str, params: &[ValueRef<'_>]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.calls
            .run(self.client.execute(&statement, &bind(params)))
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.calls.run(self.client.batch_execute(sql))
    }
}

/// Opens a connection as `[store]` says: the password read from its file
/// now (so a changed password needs no restart), TLS with the server's
/// certificate and name checked.
pub fn connect(config: &StoreConfig) -> Result<Connection> {
    let mut pg = tokio_postgres::Config::new();
    let timeout = Duration::from_secs(config.connect_timeout_seconds.into());
    let statement_ms = u64::from(config.statement_timeout_seconds) * 1000;
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.dbname)
        .user(&config.user)
        .application_name("twofactord")
        .connect_timeout(timeout)
        // A partition: unacknowledged data fails the connection after the
        // statement timeout; an idle one is probed every second.
        .tcp_user_timeout(Duration::from_millis(statement_ms))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .options(format!(
            "-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} \
             -c idle_in_transaction_session_timeout={}",
            statement_ms * 2
        ));
    // The files first, by the same code as `--check-config`.
    let files = files(config)?;
    if let Some(password) = &files.password {
        pg.password(password.as_bytes());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DbError::Other(format!("cannot start the database client: {e}")))?;
    // The connect timeout bounds the socket's connection; this, the
    // whole (TLS and the start-up exchange included).
    let limit = timeout;
    let late = || DbError::Other(format!("no connection within {} s", limit.as_secs()));
    // `files` made the TLS configuration for `verify-full`, none for
    // `disable`.
    let client = match files.tls {
        None => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = runtime
                .block_on(async {
                    tokio::time::timeout(limit, pg.connect(tokio_postgres::NoTls)).await
                })
                .map_err(|_| late())??;
            runtime.spawn(connection);
            client
        }
        Some(tls) => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, connection) = runtime
                .block_on(async { tokio::time::timeout(limit, pg.connect(tls)).await })
                .map_err(|_| late())??;
            runtime.spawn(connection);
            client
        }
    };
    Ok(Connection {
        client,
        statements: HashMap::new(),
        calls: Calls {
            runtime,
            // The server's statement timeout, and a second for the answer
            // to travel: the server's own error is the clearer one.
            deadline: Duration::from_millis(statement_ms + 1000),
            broken: false,
        },
    })
}

/// What a connection reads from the files `[store]` names, before it
/// reaches for the server.
struct Files {
    /// From `password_file`; none when it is empty.
    password: Option<Zeroizing<String>>,
    /// With `sslmode = "verify-full"`: the server's certificate checked
    /// against `ca_file` (or the system's CA store); none with `disable`.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Reads and checks the files `[store]` names, as every connection does
/// first ([`connect`]) and `twofactord --check-config` does without
/// connecting ([`StoreConfig::check_files`]): one path, so the two never
/// disagree.
fn files(config: &StoreConfig) -> Result<Files> {
    let password = if config.password_file.as_os_str().is_empty() {
        None
    } else {
        Some(read_password(&config.password_file)?)
    };
    let tls = match config.sslmode {
        SslMode::Disable => None,
        SslMode::VerifyFull => Some(tls(&config.ca_file)?),
    };
    Ok(Files { password, tls })
}

impl StoreConfig {
    /// Checks the files of `[store]` exactly as a connection would read
    /// them, without connecting: `password_file` (a regular file of the
    /// daemon's user, nothing for group or others, a password on its
    /// first line) and, with `verify-full`, `ca_file` (PEM with at least
    /// one certificate rustls accepts; empty: the system's CA store). The
    /// error names the key and the file, never the password.
    pub fn check_files(&self) -> Result<()> {
        files(self).map(drop)
    }
}

/// An error about the file of a `[store]` key, the key and the file named.
fn file_error(key: &str, path: &Path, what: impl std::fmt::Display) -> DbError {
    DbError::Other(format!("[store] {key} {}: {what}", path.display()))
}

/// The database password: the first line of a regular file of the
/// daemon's user (root) that group and others cannot open (0600 or 0400).
fn read_password(path: &Path) -> Result<Zeroizing<String>> {
    let bad = |what: String| file_error("password_file", path, what);
    named_files::owner_only(path).map_err(bad)?;
    // The error of a read says why, never what was read.
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(bad("its first line, the password, is empty".into()));
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// TLS that checks the server's certificate against `ca_file` (or the
/// system's CA store when empty) and its name against `host`.
fn tls(ca_file: &Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.as_os_str().is_empty() {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(DbError::Other(
                "[store] ca_file is empty and the system's CA store has no certificate to \
                 check the database server's certificate with"
                    .into(),
            ));
        }
    } else {
        roots = named_files::roots(ca_file).map_err(|e| file_error("ca_file", ca_file, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The advisory lock a PostgreSQL store is created and migrated under, so
/// that of several hosts starting at once one migrates and the others
/// wait ("2FA" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x0032_4641;

/// A new connection's schema: created (`--init`), migrated under an
/// advisory lock (hosts starting at once migrate one after another), or
/// refused when newer than this daemon; then the key is checked.
pub(super) fn prepare_postgresql(
    conn: &mut Connection,
    keys: &Keys,
    mode: Mode,
) -> std::result::Result<(), StoreError> {
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
                    path: std::path::PathBuf::from("the PostgreSQL database"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_must_be_the_daemons_own_and_closed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-password");
        let shown = format!("[store] password_file {}: ", path.display());
        std::fs::write(&path, "s3cret-pass\nignored\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_password(&path).unwrap_err().to_string();
            assert!(e.starts_with(&shown), "{mode:o}: {e}");
            assert!(e.contains(&format!("mode {mode:04o}")), "{mode:o}: {e}");
            assert!(e.contains("0600 or 0400"), "{mode:o}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_password(&path).unwrap().as_str(), "s3cret-pass");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Another user's file, however closed (needs root to give it away).
        if nix::unistd::geteuid().is_root() {
            let other = nix::unistd::Uid::from_raw(65534);
            nix::unistd::chown(&path, Some(other), None).unwrap();
            let e = read_password(&path).unwrap_err().to_string();
            assert!(e.starts_with(&shown) && e.contains("uid 65534"), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
            nix::unistd::chown(&path, Some(nix::unistd::geteuid()), None).unwrap();
        }
        for empty in ["", "\nsecond line\n"] {
            std::fs::write(&path, empty).unwrap();
            let e = read_password(&path).unwrap_err().to_string();
            assert!(e.starts_with(&shown) && e.contains("empty"), "{e}");
        }
        let missing = dir.path().join("missing");
        let e = read_password(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("[store] password_file {}: ", missing.display())),
            "{e}"
        );
        // A directory (or a FIFO, a device) is not read.
        let e = read_password(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn the_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("db-ca.pem");
        let shown = format!("[store] ca_file {}: ", ca.display());
        let refused = |path: &Path| match tls(path) {
            Ok(_) => panic!("{} accepted", path.display()),
            Err(e) => e.to_string(),
        };
        // Missing.
        let e = refused(&ca);
        assert!(e.starts_with(&shown), "{e}");
        // Not PEM, or PEM without a certificate.
        for text in [
            "not a certificate\n",
            "",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            std::fs::write(&ca, text).unwrap();
            let e = refused(&ca);
            assert!(e.starts_with(&shown) && e.contains("no certificate"), "{e}");
        }
        // A certificate block rustls cannot parse.
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = refused(&ca);
        assert!(e.starts_with(&shown) && e.contains("certificate 1"), "{e}");
        let e = refused(dir.path());
        assert!(e.contains("not a regular file"), "{e}");
        // The system's bundle is a good one, where it is installed.
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if bundle.exists() {
            assert!(tls(bundle).is_ok());
        }
    }

    /// `--check-config`'s check is the connection's: the password file
    /// whenever named, the CA file only with `verify-full`.
    #[test]
    fn check_files_reads_what_a_connection_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("db-password");
        std::fs::write(&password, "s3cret-pass\n").unwrap();
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
        let missing_ca = dir.path().join("missing-ca.pem");
        let mut config = StoreConfig {
            password_file: password.clone(),
            ca_file: missing_ca.clone(),
            ..StoreConfig::default()
        };
        let e = config.check_files().unwrap_err().to_string();
        assert!(
            e.contains("[store] password_file") && e.contains("0644"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = config.check_files().unwrap_err().to_string();
        assert!(e.contains("[store] ca_file"), "{e}");
        config.sslmode = SslMode::Disable;
        assert!(config.check_files().is_ok());
        config.password_file = std::path::PathBuf::new();
        assert!(config.check_files().is_ok());
    }

    #[test]
    fn parameters_are_written_the_postgresql_way_outside_quotes() {
        assert_eq!(
            dialect("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d > ?10"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d > $10"
        );
    }
}
