//! An account as its owner (or an administrator) sees it: one read across
//! the tables of every concept (methods, pending set-ups, backup codes,
//! trusted devices, locks).

use crate::store::{Db, DbResult, Optional};
use twofactor_proto::AccountStatus;

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
