//! The `accounts` table: one row per user the daemon knows, with the login
//! bookkeeping that is not specific to a method.

use crate::params;
use crate::store::{Db, DbResult, Optional};
use twofactor_proto::AccountStatus;

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

/// The account as its owner (or an admin) sees it.
pub fn status(conn: &Db, user: &str, now: i64) -> DbResult<AccountStatus> {
    let mut status = conn
        .query_row(
            // The longest lock in force: the account's own, or one of a
            // source of its logins (see ratelimit).
            "SELECT preferred, last_method, last_login, failures, locked_until,
                    COALESCE((SELECT MAX(locked_until) FROM source_failures s
                              WHERE s.username = a.username), 0)
             FROM accounts a WHERE username = ?1",
            [user],
            |r| {
                Ok(AccountStatus {
                    user: user.to_string(),
                    preferred: r.get(0)?,
                    last_method: r.get(1)?,
                    last_login: r.get(2)?,
                    failures: r.get(3)?,
                    locked_until: r.get::<i64>(4)?.max(r.get(5)?),
                    ..AccountStatus::default()
                })
            },
        )
        .optional()?
        .unwrap_or_else(|| AccountStatus {
            user: user.to_string(),
            ..AccountStatus::default()
        });
    if status.locked_until <= now {
        status.locked_until = 0;
    }
    status.methods = crate::rules::methods::enrolled(conn, user)?
        .into_iter()
        .map(|m| m.name().to_string())
        .collect();
    status.enrolment_pending = crate::rules::totp::has_pending(conn, user, now)?
        || crate::rules::email_codes::has_pending(conn, user, now)?;
    status.backup_codes_left = crate::rules::backup_codes::remaining(conn, user)?.unwrap_or(0);
    status.trusted_devices = crate::rules::trusted_devices::count(conn, user, now)?;
    Ok(status)
}
