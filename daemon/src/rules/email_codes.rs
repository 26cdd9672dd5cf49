//! The email method: a 6-digit code sent to the user's confirmed address.
//! Tables `email` (the confirmed address, sealed) and `email_codes` (the
//! code last sent for a purpose to a source, as a sealed salted SHA-256,
//! with its expiry), and `email_sends` (when codes were sent, from which
//! source and what for: the limits).
//!
//! A code is single use: it is checked and deleted in one store job, so of
//! any number of concurrent logins answering it, exactly one succeeds. A new
//! code for the same purpose and source replaces (voids) the previous one;
//! another source's code stays valid.
//!
//! Sends are counted like failures (`ratelimit`), per account **and
//! source**, because the prompt that sends a code may follow a wrong
//! password: a stranger's source cannot spend the owner's budget. The
//! account as a whole has a larger ceiling ([`ACCOUNT_SENDS_FACTOR`]
//! times the per-source limit) so that many sources together cannot flood
//! the mailbox. An address typed at the login prompt (enrolment) is mailed
//! at most once per source every [`ENROL_SEND_SECONDS`], whatever the
//! user name.

use crate::config::EmailConfig;
use crate::message::Mail;
use crate::params;
use crate::random::{Random, RandomError};
use crate::store::{Db, DbResult, Optional};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Digits in an email code.
pub const DIGITS: usize = 6;
/// Salt bytes before the digest.
const SALT: usize = 16;
/// Wrong answers a confirmation code takes before it is dropped (at login,
/// the account's failure limit applies instead).
pub const CONFIRM_TRIES: i64 = 5;
/// The account's hourly ceiling, in per-source limits.
pub const ACCOUNT_SENDS_FACTOR: u32 = 10;
/// One mail to an address typed at the login prompt per source, this often.
pub const ENROL_SEND_SECONDS: i64 = 600;
/// The source of `twofactorctl`'s sends (its own budget).
pub const CTL_SOURCE: &str = "twofactorctl";

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A login's second factor, sent to the confirmed address.
    Login,
    /// Confirming a new address (`twofactorctl enable email`).
    Confirm,
    /// Confirming an address typed at the login prompt (enrolment): the
    /// login keeps the code's digest; nothing is stored here.
    Enrol,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Confirm => "confirm",
            Purpose::Enrol => "enrol",
        }
    }
}

/// A fresh code: 6 digits from the OS random source, uniform.
pub fn generate(rng: &dyn Random) -> Result<Zeroizing<String>, RandomError> {
    // 2^32 - (2^32 mod 10^6) keeps the draw uniform.
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000) - 1;
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b)?;
        let n = u32::from_le_bytes(b);
        if n <= LIMIT {
            return Ok(Zeroizing::new(format!("{:06}", n % 1_000_000)));
        }
    }
}

/// Salt followed by SHA-256(salt ‖ code): what is stored (sealed).
pub fn digest(rng: &dyn Random, code: &str) -> Result<Vec<u8>, RandomError> {
    let mut salt = [0u8; SALT];
    rng.fill(&mut salt)?;
    Ok(salted(&salt, code))
}

fn salted(salt: &[u8], code: &str) -> Vec<u8> {
    let mut out = salt.to_vec();
    out.extend_from_slice(
        &Sha256::new()
            .chain_update(salt)
            .chain_update(code)
            .finalize(),
    );
    out
}

/// Whether `code` is the code of a stored digest (constant time).
pub fn matches(stored: &[u8], code: &str) -> bool {
    if stored.len() != SALT + 32 {
        return false;
    }
    let (salt, _) = stored.split_at(SALT);
    bool::from(salted(salt, code).ct_eq(stored))
}

/// The user's confirmed address, if they have the method.
pub fn address(conn: &Db, user: &str) -> DbResult<Option<String>> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT address FROM email WHERE username = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    sealed
        .map(|b| conn.unseal_text(user, "email.address", &b))
        .transpose()
}

pub fn is_enrolled(conn: &Db, user: &str) -> DbResult<bool> {
    conn.query_row(
        "SELECT 1 FROM email WHERE username = ?1",
        [user],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Removes the method and any code in flight; false if there was none.
pub fn remove(conn: &Db, user: &str) -> DbResult<bool> {
    conn.execute("DELETE FROM email_codes WHERE username = ?1", [user])?;
    Ok(conn.execute("DELETE FROM email WHERE username = ?1", [user])? > 0)
}

/// Sets (or replaces) the confirmed address.
pub fn activate(conn: &Db, user: &str, address: &str, now: i64) -> DbResult<()> {
    conn.execute(
        "INSERT INTO email(username, address, created) VALUES (?1, ?2, ?3)
         ON CONFLICT(username) DO UPDATE SET address = excluded.address, created = excluded.created",
        params![user, conn.seal(user, "email.address", address.as_bytes())?, now],
    )
    .map(|_| ())
}

/// Whether a confirmation is waiting (for status).
pub fn has_pending(conn: &Db, user: &str, now: i64) -> DbResult<bool> {
    conn.query_row(
        "SELECT 1 FROM email_codes WHERE username = ?1 AND purpose = 'confirm' AND expires > ?2",
        params![user, now],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// The address a confirmation code was sent to (for a resend).
pub fn pending_address(conn: &Db, user: &str, now: i64) -> DbResult<Option<String>> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT address FROM email_codes
             WHERE username = ?1 AND purpose = 'confirm' AND expires > ?2",
            params![user, now],
            |r| r.get(0),
        )
        .optional()?;
    sealed
        .map(|b| conn.unseal_text(user, "email_codes.address", &b))
        .transpose()
}

/// Counts a send for `purpose` from `source`, if every limit has room:
/// `max_per_hour` for the account from this source, [`ACCOUNT_SENDS_FACTOR`]
/// times that for the account from all sources, and for an address typed
/// at the prompt one per source every [`ENROL_SEND_SECONDS`]. Err(seconds)
/// until the limit that is reached has room again.
pub fn count_send(
    conn: &Db,
    user: &str,
    purpose: Purpose,
    source: &str,
    now: i64,
    max_per_hour: u32,
) -> DbResult<Result<(), i64>> {
    let hour_ago = now - 3600;
    conn.execute("DELETE FROM email_sends WHERE at <= ?1", params![hour_ago])?;
    let wait_from =
        |oldest: Option<i64>, window: i64| (oldest.unwrap_or(now) + window - now).max(1);
    if purpose == Purpose::Enrol {
        let last: Option<i64> = conn.query_row(
            "SELECT MAX(at) FROM email_sends WHERE source = ?1 AND purpose = ?2 AND at > ?3",
            params![source, purpose.name(), now - ENROL_SEND_SECONDS],
            |r| r.get(0),
        )?;
        if last.is_some() {
            return Ok(Err(wait_from(last, ENROL_SEND_SECONDS)));
        }
    }
    let (from_source, oldest): (u32, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(at) FROM email_sends WHERE username = ?1 AND source = ?2",
        params![user, source],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if from_source >= max_per_hour {
        return Ok(Err(wait_from(oldest, 3600)));
    }
    let (all, oldest): (u32, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(at) FROM email_sends WHERE username = ?1",
        [user],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if all >= max_per_hour.saturating_mul(ACCOUNT_SENDS_FACTOR) {
        return Ok(Err(wait_from(oldest, 3600)));
    }
    conn.execute(
        "INSERT INTO email_sends(username, source, purpose, at) VALUES (?1, ?2, ?3, ?4)",
        params![user, source, purpose.name(), now],
    )?;
    Ok(Ok(()))
}

/// Whether a code for `purpose` sent to `source` is still valid.
pub fn has_live_code(
    conn: &Db,
    user: &str,
    purpose: Purpose,
    source: &str,
    now: i64,
) -> DbResult<bool> {
    conn.query_row(
        "SELECT 1 FROM email_codes
         WHERE username = ?1 AND purpose = ?2 AND source = ?3 AND expires > ?4",
        params![user, purpose.name(), source, now],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Stores a new code for `purpose` sent to `source` (replacing the
/// previous one of that purpose and source) to `address`, valid until
/// `expires`.
pub fn store_code(
    conn: &Db,
    user: &str,
    (purpose, source): (Purpose, &str),
    address: &str,
    digest: &[u8],
    expires: i64,
) -> DbResult<()> {
    conn.execute(
        "INSERT INTO email_codes(username, purpose, source, address, digest, expires, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)
         ON CONFLICT(username, purpose, source) DO UPDATE SET address = excluded.address,
             digest = excluded.digest, expires = excluded.expires, attempts = 0",
        params![
            user,
            purpose.name(),
            source,
            conn.seal(user, "email_codes.address", address.as_bytes())?,
            conn.seal(user, "email_codes.digest", digest)?,
            expires
        ],
    )
    .map(|_| ())
}

/// What checking an email code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCheck {
    /// Right: the code is used up; the address it was sent to.
    Accepted(String),
    Wrong,
    /// Past its time (and now deleted).
    Expired,
    /// No code was sent (or it was used, or replaced and used).
    NoCode,
    /// Too many wrong answers to a confirmation code: it is dropped.
    Dropped,
}

/// Checks `code` against the code for `purpose` sent to `source`, using
/// it up when right (in the caller's transaction: only one concurrent check
/// can succeed).
pub fn check(
    conn: &Db,
    user: &str,
    (purpose, source): (Purpose, &str),
    code: &str,
    now: i64,
) -> DbResult<EmailCheck> {
    let row: Option<(Vec<u8>, Vec<u8>, i64, i64)> = conn
        .query_row(
            "SELECT digest, address, expires, attempts
             FROM email_codes WHERE username = ?1 AND purpose = ?2 AND source = ?3",
            params![user, purpose.name(), source],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((sealed_digest, address, expires, attempts)) = row else {
        return Ok(EmailCheck::NoCode);
    };
    let digest = conn.unseal(user, "email_codes.digest", &sealed_digest)?;
    let delete = || {
        conn.execute(
            "DELETE FROM email_codes WHERE username = ?1 AND purpose = ?2 AND source = ?3",
            params![user, purpose.name(), source],
        )
    };
    if expires <= now {
        delete()?;
        return Ok(EmailCheck::Expired);
    }
    if matches(&digest, code) {
        // Used up by a compare-and-set on this very code: of two logins
        // (or two hosts) that both read it, one deletes it, the other
        // deletes nothing and is refused.
        let used = conn.execute(
            "DELETE FROM email_codes
             WHERE username = ?1 AND purpose = ?2 AND source = ?3 AND digest = ?4",
            params![user, purpose.name(), source, sealed_digest],
        )?;
        if used != 1 {
            return Ok(EmailCheck::NoCode);
        }
        let address = conn.unseal(user, "email_codes.address", &address)?;
        return Ok(EmailCheck::Accepted(
            String::from_utf8_lossy(&address).into_owned(),
        ));
    }
    if purpose == Purpose::Confirm {
        if attempts + 1 >= CONFIRM_TRIES {
            delete()?;
            return Ok(EmailCheck::Dropped);
        }
        conn.execute(
            "UPDATE email_codes SET attempts = attempts + 1
             WHERE username = ?1 AND purpose = ?2 AND source = ?3",
            params![user, purpose.name(), source],
        )?;
    }
    Ok(EmailCheck::Wrong)
}

/// `template` with each `{key}` of `values` replaced, in one pass (a
/// value is never scanned for placeholders itself).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match values
            .iter()
            .find(|(key, _)| after[1..].starts_with(key) && after[1 + key.len()..].starts_with('}'))
        {
            Some((key, value)) => {
                out.push_str(value);
                rest = &after[key.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The mail that carries a code to `to`: subject and body from `[email]`.
pub fn code_mail(config: &EmailConfig, to: &str, code: &str, service: &str) -> Mail {
    let host = crate::config::hostname();
    let minutes = config.code_minutes.to_string();
    let service = if service.is_empty() {
        "a login"
    } else {
        service
    };
    let values = [
        ("code", code),
        ("host", host.as_str()),
        ("service", service),
        ("minutes", minutes.as_str()),
    ];
    Mail {
        to: to.to_string(),
        subject: fill(&config.subject, &values),
        body: fill(&config.body, &values),
    }
}

/// What became of a code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Sent,
    /// A limit was reached: seconds until another may be sent, and whether
    /// the code sent earlier to the same source still works.
    TooMany {
        wait: i64,
        earlier_works: bool,
    },
    Failed,
}

/// A code on its way: for whom, what for and to which source.
#[derive(Debug, Clone, Copy)]
pub struct Send<'a> {
    pub user: &'a str,
    pub purpose: Purpose,
    pub source: &'a str,
}

/// The store's part of sending a code: counts the send against the limits
/// ([`count_send`]; `Err(TooMany)` when one is reached) and, unless the
/// login keeps it ([`Purpose::Enrol`]), stores the code's digest, voiding
/// the previous one of the same purpose and source (the account row is
/// made if missing).
pub fn record_send(
    conn: &Db,
    send: Send,
    (address, digest): (&str, &[u8]),
    (now, expires): (i64, i64),
    max_per_hour: u32,
) -> DbResult<Result<(), Sent>> {
    let Send {
        user,
        purpose,
        source,
    } = send;
    if let Err(wait) = count_send(conn, user, purpose, source, now, max_per_hour)? {
        let earlier_works = has_live_code(conn, user, purpose, source, now)?;
        return Ok(Err(Sent::TooMany {
            wait,
            earlier_works,
        }));
    }
    if purpose != Purpose::Enrol {
        crate::rules::bookkeeping::ensure(conn, user, now)?;
        store_code(conn, user, (purpose, source), address, digest, expires)?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn conn() -> Db<'static> {
        let c = crate::store::testing::connection();
        crate::rules::bookkeeping::ensure(&c, "u", 0).unwrap();
        c
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| generate(&OsRandom).unwrap().to_string())
            .collect();
        assert!(codes.len() > 190);
        assert!(codes
            .iter()
            .all(|c| c.len() == DIGITS && c.bytes().all(|b| b.is_ascii_digit())));
    }

    #[test]
    fn single_use_expiring_and_replaced_by_a_new_one() {
        let c = conn();
        let d = digest(&OsRandom, "123456").unwrap();
        store_code(&c, "u", (Purpose::Login, "s"), "u@example.com", &d, 600).unwrap();
        assert_eq!(
            check(&c, "u", (Purpose::Login, "s"), "654321", 10).unwrap(),
            EmailCheck::Wrong
        );
        assert_eq!(
            check(&c, "u", (Purpose::Login, "s"), "123456", 10).unwrap(),
            EmailCheck::Accepted("u@example.com".into())
        );
        assert_eq!(
            check(&c, "u", (Purpose::Login, "s"), "123456", 11).unwrap(),
            EmailCheck::NoCode
        );
        // Expired at its time.
        store_code(&c, "u", (Purpose::Login, "s"), "u@example.com", &d, 600).unwrap();
        assert_eq!(
            check(&c, "u", (Purpose::Login, "s"), "123456", 600).unwrap(),
            EmailCheck::Expired
        );
        // A new code voids the previous one.
        store_code(&c, "u", (Purpose::Login, "s"), "u@example.com", &d, 600).unwrap();
        let d2 = digest(&OsRandom, "777777").unwrap();
        store_code(&c, "u", (Purpose::Login, "s"), "u@example.com", &d2, 600).unwrap();
        assert_eq!(
            check(&c, "u", (Purpose::Login, "s"), "123456", 10).unwrap(),
            EmailCheck::Wrong
        );
        assert!(matches!(
            check(&c, "u", (Purpose::Login, "s"), "777777", 10).unwrap(),
            EmailCheck::Accepted(_)
        ));
    }

    #[test]
    fn stored_sealed_never_in_clear() {
        let c = conn();
        let d = digest(&OsRandom, "123456").unwrap();
        store_code(
            &c,
            "u",
            (Purpose::Confirm, "s"),
            "secret.person@example.com",
            &d,
            600,
        )
        .unwrap();
        activate(&c, "u", "secret.person@example.com", 0).unwrap();
        for (table, col) in [
            ("email_codes", "address"),
            ("email_codes", "digest"),
            ("email", "address"),
        ] {
            let raw: Vec<u8> = c
                .query_row(&format!("SELECT {col} FROM {table}"), params![], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(crate::adapters::sealing::is_sealed(&raw), "{table}.{col}");
            assert!(!String::from_utf8_lossy(&raw).contains("secret.person"));
        }
        assert_eq!(
            address(&c, "u").unwrap().as_deref(),
            Some("secret.person@example.com")
        );
    }

    #[test]
    fn a_confirmation_code_takes_five_wrong_answers() {
        let c = conn();
        let d = digest(&OsRandom, "123456").unwrap();
        store_code(&c, "u", (Purpose::Confirm, "s"), "u@example.com", &d, 600).unwrap();
        for _ in 0..CONFIRM_TRIES - 1 {
            assert_eq!(
                check(&c, "u", (Purpose::Confirm, "s"), "000000", 1).unwrap(),
                EmailCheck::Wrong
            );
        }
        assert_eq!(
            check(&c, "u", (Purpose::Confirm, "s"), "000000", 1).unwrap(),
            EmailCheck::Dropped
        );
        assert_eq!(
            check(&c, "u", (Purpose::Confirm, "s"), "123456", 1).unwrap(),
            EmailCheck::NoCode
        );
    }

    #[test]
    fn templates_fill_once() {
        let v = [("code", "123456"), ("service", "{code}")];
        assert_eq!(
            fill("{code} for {service} {x} {", &v),
            "123456 for {code} {x} {"
        );
        let m = code_mail(&EmailConfig::default(), "a@example.com", "042042", "sshd");
        assert!(m.body.contains("042042") && m.body.contains("sshd"));
        assert!(!m.subject.contains("042042"));
    }

    fn send(c: &Db, source: &str, at: i64) -> Result<(), i64> {
        count_send(c, "u", Purpose::Login, source, at, 3).unwrap()
    }

    #[test]
    fn sends_are_limited_per_hour_and_source() {
        let c = conn();
        for i in 0..3 {
            assert_eq!(send(&c, "host:192.0.2.9", 100 + i), Ok(()));
        }
        assert_eq!(send(&c, "host:192.0.2.9", 200), Err(3500));
        // A stranger's source spent its own budget, not the owner's.
        assert_eq!(send(&c, "host:198.51.100.1", 200), Ok(()));
        assert_eq!(send(&c, "host:192.0.2.9", 3700), Ok(()));
    }

    #[test]
    fn the_account_has_a_ceiling_over_all_sources() {
        let c = conn();
        let ceiling = 3 * ACCOUNT_SENDS_FACTOR;
        for i in 0..ceiling {
            let source = format!("host:10.0.0.{}", i / 3);
            assert_eq!(send(&c, &source, 100 + i64::from(i)), Ok(()), "{i}");
        }
        assert_eq!(send(&c, "host:10.9.9.9", 500), Err(3200));
    }

    #[test]
    fn a_typed_address_is_mailed_once_per_source_and_ten_minutes() {
        let c = conn();
        let enrol = |user: &str, source: &str, at: i64| {
            count_send(&c, user, Purpose::Enrol, source, at, 3).unwrap()
        };
        assert_eq!(enrol("u", "host:192.0.2.9", 100), Ok(()));
        // Whatever the name typed: the source is what is limited.
        assert_eq!(enrol("v", "host:192.0.2.9", 200), Err(500));
        assert_eq!(enrol("v", "host:198.51.100.1", 200), Ok(()));
        assert_eq!(enrol("w", "host:192.0.2.9", 700), Ok(()));
    }

    #[test]
    fn a_new_code_voids_only_its_own_sources() {
        let c = conn();
        let mine = digest(&OsRandom, "111111").unwrap();
        let theirs = digest(&OsRandom, "222222").unwrap();
        let owner = (Purpose::Login, "host:192.0.2.9");
        let stranger = (Purpose::Login, "host:198.51.100.1");
        store_code(&c, "u", owner, "u@example.com", &mine, 600).unwrap();
        store_code(&c, "u", stranger, "u@example.com", &theirs, 600).unwrap();
        // A code is good only where it was sent.
        assert_eq!(
            check(&c, "u", stranger, "111111", 10).unwrap(),
            EmailCheck::Wrong
        );
        assert!(matches!(
            check(&c, "u", owner, "111111", 10).unwrap(),
            EmailCheck::Accepted(_)
        ));
        assert!(has_live_code(&c, "u", Purpose::Login, "host:198.51.100.1", 10).unwrap());
        assert!(!has_live_code(&c, "u", Purpose::Login, "host:192.0.2.9", 10).unwrap());
    }
}
