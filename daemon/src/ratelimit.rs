//! Failure counting and waits, per account, across all sessions and
//! services. Wrong codes, replayed codes and wrong passwords count; answers
//! that are not codes at all do not. After `max_failures` failures each
//! further attempt must wait: `lockout_seconds`, doubling with every further
//! failure, at most `max_lockout_seconds`. A success resets the count.

use crate::config::LimitsConfig;
use rusqlite::{params, Connection, OptionalExtension};

/// Whether an attempt may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Seconds left to wait.
    Wait(i64),
}

/// Reads the account's lock. An account without a row is open.
pub fn gate(conn: &Connection, user: &str, now: i64) -> rusqlite::Result<Gate> {
    let until: Option<i64> = conn
        .query_row(
            "SELECT locked_until FROM accounts WHERE user = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match until {
        Some(t) if t > now => Gate::Wait(t - now),
        _ => Gate::Open,
    })
}

/// The wait imposed after the `failures`-th consecutive failure.
pub fn wait_after(failures: u32, limits: &LimitsConfig) -> Option<i64> {
    if failures < limits.max_failures {
        return None;
    }
    let doublings = (failures - limits.max_failures).min(30);
    let wait = i64::from(limits.lockout_seconds).saturating_mul(1i64 << doublings);
    Some(wait.min(i64::from(limits.max_lockout_seconds)))
}

/// Counts one failure (the account row must exist). Returns the wait now
/// imposed, if any.
pub fn record_failure(
    conn: &Connection,
    user: &str,
    now: i64,
    limits: &LimitsConfig,
) -> rusqlite::Result<Option<i64>> {
    let failures: i64 = conn.query_row(
        "UPDATE accounts SET failures = failures + 1 WHERE user = ?1 RETURNING failures",
        [user],
        |r| r.get(0),
    )?;
    let wait = wait_after(u32::try_from(failures).unwrap_or(u32::MAX), limits);
    if let Some(w) = wait {
        conn.execute(
            "UPDATE accounts SET locked_until = ?2 WHERE user = ?1",
            params![user, now + w],
        )?;
    }
    Ok(wait)
}

/// Gives back one attempt that was counted before it was checked and
/// turned out right (a password re-check): the count goes down by one, and
/// a lock that attempt imposed is lifted.
pub fn refund(conn: &Connection, user: &str, limits: &LimitsConfig) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET failures = failures - 1,
                locked_until = CASE WHEN failures - 1 < ?2 THEN 0 ELSE locked_until END
         WHERE user = ?1 AND failures > 0",
        params![user, limits.max_failures],
    )
    .map(|_| ())
}

pub fn record_success(conn: &Connection, user: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET failures = 0, locked_until = 0 WHERE user = ?1",
        [user],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_failures: 3,
            lockout_seconds: 10,
            max_lockout_seconds: 35,
        }
    }

    #[test]
    fn waits_double_and_cap() {
        let l = limits();
        assert_eq!(wait_after(1, &l), None);
        assert_eq!(wait_after(2, &l), None);
        assert_eq!(wait_after(3, &l), Some(10));
        assert_eq!(wait_after(4, &l), Some(20));
        assert_eq!(wait_after(5, &l), Some(35));
        assert_eq!(wait_after(u32::MAX, &l), Some(35));
    }

    #[test]
    fn failures_lock_then_success_resets() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::MIGRATIONS[0])
            .unwrap();
        c.execute("INSERT INTO accounts(user, created) VALUES ('u', 0)", [])
            .unwrap();
        let l = limits();
        assert_eq!(record_failure(&c, "u", 100, &l).unwrap(), None);
        assert_eq!(record_failure(&c, "u", 100, &l).unwrap(), None);
        assert_eq!(gate(&c, "u", 100).unwrap(), Gate::Open);
        assert_eq!(record_failure(&c, "u", 100, &l).unwrap(), Some(10));
        assert_eq!(gate(&c, "u", 104).unwrap(), Gate::Wait(6));
        assert_eq!(gate(&c, "u", 110).unwrap(), Gate::Open);
        record_success(&c, "u").unwrap();
        assert_eq!(record_failure(&c, "u", 200, &l).unwrap(), None);
        assert_eq!(gate(&c, "nobody", 0).unwrap(), Gate::Open);
    }
}
