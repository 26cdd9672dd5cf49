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
//!
//! Checking the limit and counting the attempt are one atomic step,
//! [`attempt`], however many daemons share the store: the attempt first
//! takes its account's row (an `UPDATE` of it, [`take_turn`]), then reads
//! the locks, checks, and counts, all in one store job. With PostgreSQL
//! that row lock is held until the job's transaction commits, so an
//! attempt on another host waits at its own `UPDATE` and then reads the
//! count and lock this one left; with SQLite the one writer runs the jobs
//! one after another. Either way an answer is checked only if the limit
//! was not reached when it took its turn, and no lock is read before the
//! failures that impose it are counted.

use crate::config::LimitsConfig;
use crate::origin::Origin;
use crate::params;
use crate::rules::bookkeeping;
use crate::store::{Db, DbResult, Optional};

/// Whether an attempt may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// Seconds left to wait.
    Wait(i64),
}

/// An attempt after the gate: counted (with the wait that count imposed,
/// if any) and its check's result, or refused unchecked.
pub enum Counted<T> {
    /// Refused without a check: the source or the account must wait this
    /// many seconds.
    Locked(i64),
    Checked {
        lock: Option<i64>,
        found: T,
    },
}

/// One attempt of `user` from `source` (`origin`), as one atomic step for
/// every host sharing the store; run it inside one store job. A locked
/// source or account is refused unchecked (`check` does not run and
/// nothing is counted). Otherwise `check` runs, holding the account's turn
/// ([`take_turn`]), and the attempt is counted as a failure in the same job
/// unless `accepted` says `check` accepted it (it then reset the counts
/// itself, [`record_success`]). An attempt verified after the job (argon2,
/// PAM) is never `accepted` here: it is counted before it is verified.
pub fn attempt<T>(
    conn: &Db,
    origin: (&str, &str),
    now: i64,
    limits: &LimitsConfig,
    check: impl FnOnce(&Db) -> DbResult<T>,
    accepted: impl FnOnce(&T) -> bool,
) -> DbResult<Counted<T>> {
    let (user, source) = origin;
    if let Gate::Wait(s) = take_turn(conn, user, source, now)? {
        return Ok(Counted::Locked(s));
    }
    let found = check(conn)?;
    let lock = if accepted(&found) {
        None
    } else {
        record_failure(conn, user, source, now, limits)?
    };
    Ok(Counted::Checked { lock, found })
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

/// Takes the account's turn for one attempt, then reads the account's and
/// the source's locks; the longer wait wins. The turn is an `UPDATE` of
/// the account's row (created if missing), which changes nothing: what
/// matters is its row lock, held until the job's transaction ends. Every
/// attempt on the account, on every host, takes it before it reads a
/// lock, and holds it while it checks and counts: the locks read here
/// include every failure counted before, and no other attempt counts
/// meanwhile. (SQLite's one writer already runs jobs one at a time;
/// PostgreSQL makes a second host's `UPDATE` wait, and its next statements
/// then see what the first committed.)
fn take_turn(conn: &Db, user: &str, source: &str, now: i64) -> DbResult<Gate> {
    bookkeeping::ensure(conn, user, now)?;
    let account: i64 = conn.query_row(
        "UPDATE accounts SET failures = failures WHERE username = ?1 RETURNING locked_until",
        [user],
        |r| r.get(0),
    )?;
    let from_source: Option<i64> = conn
        .query_row(
            "SELECT locked_until FROM source_failures WHERE username = ?1 AND source = ?2",
            params![user, source],
            |r| r.get(0),
        )
        .optional()?;
    let until = account.max(from_source.unwrap_or(0));
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
/// exist), in the job that took the turn ([`attempt`]). Returns the wait
/// now imposed on that source, if any.
fn record_failure(
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
        assert_eq!(take_turn(&c, "u", "a", 100).unwrap(), Gate::Open);
        assert_eq!(record_failure(&c, "u", "a", 100, &l).unwrap(), Some(10));
        assert_eq!(take_turn(&c, "u", "a", 104).unwrap(), Gate::Wait(6));
        assert_eq!(take_turn(&c, "u", "a", 110).unwrap(), Gate::Open);
        record_success(&c, "u", "a").unwrap();
        assert_eq!(record_failure(&c, "u", "a", 200, &l).unwrap(), None);
        assert_eq!(take_turn(&c, "nobody", "a", 0).unwrap(), Gate::Open);
    }

    /// `attempt` with a check that reports whether it ran and says `right`.
    fn try_once(c: &Db, source: &str, right: bool) -> (bool, Counted<()>) {
        let mut ran = false;
        let counted = attempt(
            c,
            ("u", source),
            100,
            &limits(),
            |_| {
                ran = true;
                Ok(())
            },
            |_| right,
        )
        .unwrap();
        (ran, counted)
    }

    fn failures(c: &Db) -> i64 {
        c.query_row(
            "SELECT failures FROM accounts WHERE username = 'u'",
            params![],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn an_attempt_is_checked_and_counted_only_while_open() {
        let c = db();
        // Wrong: checked and counted; the third imposes the wait.
        for lock in [None, None, Some(10)] {
            let (ran, counted) = try_once(&c, "a", false);
            assert!(ran);
            assert!(matches!(counted, Counted::Checked { lock: l, .. } if l == lock));
        }
        // Locked: not checked, not counted, whatever the answer.
        for right in [false, true] {
            let (ran, counted) = try_once(&c, "a", right);
            assert!(!ran, "a locked attempt was checked");
            assert!(matches!(counted, Counted::Locked(10)));
            assert_eq!(failures(&c), 3);
        }
        // Another source is open; an accepted attempt is not counted here.
        let (ran, counted) = try_once(&c, "b", true);
        assert!(ran);
        assert!(matches!(counted, Counted::Checked { lock: None, .. }));
        assert_eq!(failures(&c), 3);
    }

    #[test]
    fn one_source_is_slowed_down_not_the_others() {
        let c = db();
        let l = limits();
        for _ in 0..3 {
            record_failure(&c, "u", "host:attacker", 100, &l).unwrap();
        }
        assert_eq!(
            take_turn(&c, "u", "host:attacker", 100).unwrap(),
            Gate::Wait(10)
        );
        assert_eq!(take_turn(&c, "u", "host:owner", 100).unwrap(), Gate::Open);
        // The owner's success does not unlock the attacker.
        record_success(&c, "u", "host:owner").unwrap();
        assert_eq!(
            take_turn(&c, "u", "host:attacker", 100).unwrap(),
            Gate::Wait(10)
        );
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
        assert_eq!(
            take_turn(&c, "u", "host:owner", 100).unwrap(),
            Gate::Wait(35)
        );
        clear(&c, "u").unwrap();
        assert_eq!(take_turn(&c, "u", "host:6", 100).unwrap(), Gate::Open);
    }

    #[test]
    fn sources_are_named_by_host_else_terminal() {
        let o = |rhost: &str, tty: &str| Origin {
            ssh_auth_info: String::new(),
            security_keys: false,
            commit_report: false,
            forwarded: None,
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
