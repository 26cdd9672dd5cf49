//! Failure counting and waits, per account **and source**, across all
//! sessions and services. Wrong codes, replayed codes and wrong passwords
//! count; answers that are not codes at all do not.
//!
//! - A source is where attempts come from: the remote host of the login
//!   (`PAM_RHOST`), or for a local login its terminal ([`source_of`]).
//!   After `max_failures` failures from one source, each further attempt
//!   from it must wait: `lockout_seconds`, doubling with every further
//!   failure, at most `max_lockout_seconds`. Other sources are not slowed
//!   down: a flood of wrong codes from one address does not lock the owner
//!   out from another.
//! - The account counts its consecutive failures from all sources
//!   together. At `account_max_failures` (at most 100, NIST SP 800-63B)
//!   every source must wait `max_lockout_seconds`, again after each further
//!   failure: the bound on guessing for an attacker with many addresses.
//! - A success resets the account's count and its source's count (not
//!   other sources': the owner's success does not unlock an attacker).

use crate::config::LimitsConfig;
use crate::origin::Origin;
use crate::params;
use crate::store::{Db, DbResult, Optional};

/// Whether an attempt may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Seconds left to wait.
    Wait(i64),
}

/// Longest source string kept (a PAM_RHOST is at most 1024 bytes).
const MAX_SOURCE_LEN: usize = 256;
/// Source rows older than this, and not locked, are forgotten.
const FORGET_AFTER_SECONDS: i64 = 86_400;

/// The source of a login's attempts: `host:RHOST` for a remote login,
/// `tty:TTY` for a local one (`local` without either).
pub fn source_of(origin: &Origin) -> String {
    let source = if !origin.rhost.is_empty() {
        format!("host:{}", origin.rhost)
    } else if !origin.tty.is_empty() {
        format!("tty:{}", origin.tty)
    } else {
        "local".to_string()
    };
    source.chars().take(MAX_SOURCE_LEN).collect()
}

/// The source of password re-checks (`twofactorctl` as the user).
pub const REAUTH_SOURCE: &str = "reauth";

/// Reads the account's and the source's locks; the longer wait wins. An
/// account without a row is open.
pub fn gate(conn: &Db, user: &str, source: &str, now: i64) -> DbResult<Gate> {
    let account: Option<i64> = conn
        .query_row(
            "SELECT locked_until FROM accounts WHERE username = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    let from_source: Option<i64> = conn
        .query_row(
            "SELECT locked_until FROM source_failures WHERE username = ?1 AND source = ?2",
            params![user, source],
            |r| r.get(0),
        )
        .optional()?;
    let until = account.unwrap_or(0).max(from_source.unwrap_or(0));
    Ok(if until > now {
        Gate::Wait(until - now)
    } else {
        Gate::Open
    })
}

/// The wait imposed on a source after its `failures`-th consecutive
/// failure.
pub fn wait_after(failures: u32, limits: &LimitsConfig) -> Option<i64> {
    if failures < limits.max_failures {
        return None;
    }
    let doublings = (failures - limits.max_failures).min(30);
    let wait = i64::from(limits.lockout_seconds).saturating_mul(1i64 << doublings);
    Some(wait.min(i64::from(limits.max_lockout_seconds)))
}

/// The wait imposed on every source after the account's `failures`-th
/// consecutive failure.
pub fn account_wait_after(failures: u32, limits: &LimitsConfig) -> Option<i64> {
    (failures >= limits.account_max_failures).then(|| i64::from(limits.max_lockout_seconds))
}

/// Counts one failure of `user` from `source` (the account row must
/// exist). Returns the wait now imposed on that source, if any.
pub fn record_failure(
    conn: &Db,
    user: &str,
    source: &str,
    now: i64,
    limits: &LimitsConfig,
) -> DbResult<Option<i64>> {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let account: i64 = conn.query_row(
        "UPDATE accounts SET failures = failures + 1 WHERE username = ?1 RETURNING failures",
        [user],
        |r| r.get(0),
    )?;
    conn.execute(
        "DELETE FROM source_failures WHERE username = ?1 AND locked_until <= ?2 AND last < ?3",
        params![user, now, now - FORGET_AFTER_SECONDS],
    )?;
    let from_source: i64 = conn.query_row(
        "INSERT INTO source_failures(username, source, failures, last) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT(username, source) DO UPDATE
             SET failures = source_failures.failures + 1, last = ?3
         RETURNING failures",
        params![user, source, now],
        |r| r.get(0),
    )?;
    let source_wait = wait_after(count(from_source), limits);
    if let Some(w) = source_wait {
        conn.execute(
            "UPDATE source_failures SET locked_until = ?3 WHERE username = ?1 AND source = ?2",
            params![user, source, now + w],
        )?;
    }
    let account_wait = account_wait_after(count(account), limits);
    if let Some(w) = account_wait {
        conn.execute(
            "UPDATE accounts SET locked_until = ?2 WHERE username = ?1",
            params![user, now + w],
        )?;
    }
    Ok(match (source_wait, account_wait) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    })
}

/// Gives back one attempt that was counted before it was checked and
/// turned out right (a password re-check): the counts go down by one, and
/// a lock that attempt imposed is lifted.
pub fn refund(conn: &Db, user: &str, source: &str, limits: &LimitsConfig) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET failures = failures - 1,
                locked_until = CASE WHEN failures - 1 < ?2 THEN 0 ELSE locked_until END
         WHERE username = ?1 AND failures > 0",
        params![user, limits.account_max_failures],
    )?;
    conn.execute(
        "UPDATE source_failures SET failures = failures - 1,
                locked_until = CASE WHEN failures - 1 < ?3 THEN 0 ELSE locked_until END
         WHERE username = ?1 AND source = ?2 AND failures > 0",
        params![user, source, limits.max_failures],
    )
    .map(|_| ())
}

/// A right code or password from `source`: the account's count and that
/// source's count start over.
pub fn record_success(conn: &Db, user: &str, source: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET failures = 0, locked_until = 0 WHERE username = ?1",
        [user],
    )?;
    conn.execute(
        "DELETE FROM source_failures WHERE username = ?1 AND source = ?2",
        params![user, source],
    )
    .map(|_| ())
}

/// Clears every count and lock of the account (an administrator's unlock
/// or reset, a new method set up).
pub fn clear(conn: &Db, user: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET failures = 0, locked_until = 0 WHERE username = ?1",
        [user],
    )?;
    conn.execute("DELETE FROM source_failures WHERE username = ?1", [user])
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
            account_max_failures: 7,
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

    fn db() -> Db<'static> {
        let c = crate::store::testing::connection();
        c.execute(
            "INSERT INTO accounts(username, created) VALUES ('u', 0)",
            params![],
        )
        .unwrap();
        c
    }

    #[test]
    fn failures_lock_then_success_resets() {
        let c = db();
        let l = limits();
        assert_eq!(record_failure(&c, "u", "a", 100, &l).unwrap(), None);
        assert_eq!(record_failure(&c, "u", "a", 100, &l).unwrap(), None);
        assert_eq!(gate(&c, "u", "a", 100).unwrap(), Gate::Open);
        assert_eq!(record_failure(&c, "u", "a", 100, &l).unwrap(), Some(10));
        assert_eq!(gate(&c, "u", "a", 104).unwrap(), Gate::Wait(6));
        assert_eq!(gate(&c, "u", "a", 110).unwrap(), Gate::Open);
        record_success(&c, "u", "a").unwrap();
        assert_eq!(record_failure(&c, "u", "a", 200, &l).unwrap(), None);
        assert_eq!(gate(&c, "nobody", "a", 0).unwrap(), Gate::Open);
    }

    #[test]
    fn one_source_is_slowed_down_not_the_others() {
        let c = db();
        let l = limits();
        for _ in 0..3 {
            record_failure(&c, "u", "host:attacker", 100, &l).unwrap();
        }
        assert_eq!(gate(&c, "u", "host:attacker", 100).unwrap(), Gate::Wait(10));
        assert_eq!(gate(&c, "u", "host:owner", 100).unwrap(), Gate::Open);
        // The owner's success does not unlock the attacker.
        record_success(&c, "u", "host:owner").unwrap();
        assert_eq!(gate(&c, "u", "host:attacker", 100).unwrap(), Gate::Wait(10));
    }

    #[test]
    fn the_account_ceiling_bounds_many_sources() {
        let c = db();
        let l = limits();
        for i in 0..6 {
            assert_eq!(
                record_failure(&c, "u", &format!("host:{i}"), 100, &l).unwrap(),
                None
            );
        }
        // The 7th consecutive failure of the account, from a 7th source,
        // makes every source wait the longest wait.
        assert_eq!(
            record_failure(&c, "u", "host:6", 100, &l).unwrap(),
            Some(35)
        );
        assert_eq!(gate(&c, "u", "host:owner", 100).unwrap(), Gate::Wait(35));
        clear(&c, "u").unwrap();
        assert_eq!(gate(&c, "u", "host:6", 100).unwrap(), Gate::Open);
    }

    #[test]
    fn sources_are_named_by_host_else_terminal() {
        let o = |rhost: &str, tty: &str| Origin {
            ssh_auth_info: String::new(),
            user: "u".into(),
            service: "s".into(),
            rhost: rhost.into(),
            tty: tty.into(),
        };
        assert_eq!(source_of(&o("192.0.2.1", "ssh")), "host:192.0.2.1");
        assert_eq!(source_of(&o("", "/dev/pts/3")), "tty:/dev/pts/3");
        assert_eq!(source_of(&o("", "")), "local");
        assert_eq!(source_of(&o(&"x".repeat(2000), "")).len(), MAX_SOURCE_LEN);
    }
}
