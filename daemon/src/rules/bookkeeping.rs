//! The `accounts` table: one row per user the daemon knows, with the login
//! bookkeeping that is not specific to a method.

use crate::params;
use crate::store::{Db, DbResult, Optional};

/// Creates the account row if missing.
pub fn ensure(conn: &Db, user: &str, now: i64) -> DbResult<()> {
    conn.execute(
        "INSERT INTO accounts(username, created) VALUES (?1, ?2) ON CONFLICT(username) DO NOTHING",
        params![user, now],
    )
    .map(|_| ())
}

/// Records a successful second factor, and the host it was on (a store
/// may be shared by many).
pub fn record_login(conn: &Db, user: &str, method: &str, now: i64, host: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET last_login = ?2, last_method = ?3, last_host = ?4 WHERE username = ?1",
        params![user, now, method, host],
    )
    .map(|_| ())
}

/// The host of the user's last successful login ("" if none recorded).
pub fn last_host(conn: &Db, user: &str) -> DbResult<String> {
    Ok(conn
        .query_row(
            "SELECT last_host FROM accounts WHERE username = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default())
}

/// Sets the method a login asks first ("" for none).
pub fn set_preferred(conn: &Db, user: &str, method: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET preferred = ?2 WHERE username = ?1",
        params![user, method],
    )
    .map(|_| ())
}

/// The user's preferred method and the method of their last successful
/// login (names; empty when unset).
pub fn method_choice(conn: &Db, user: &str) -> DbResult<(String, String)> {
    Ok(conn
        .query_row(
            "SELECT preferred, last_method FROM accounts WHERE username = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or_default())
}
