//! The authenticator-app method: TOTP (RFC 6238) with SHA-1, 6 digits and
//! 30-second steps, secrets of 160 bits. Owns the `totp` and `totp_pending`
//! tables.
//!
//! A code is accepted for a step only if that step is later than the last
//! accepted one, so a code (and any earlier one) is never accepted twice.

use crate::params;
use crate::random::{Random, RandomError};
use crate::store::{Db, DbResult, Optional};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use twofactor_proto::names::MAX_ANSWER_BYTES;
use zeroize::Zeroizing;

pub const SECRET_BYTES: usize = 20;
pub const DIGITS: usize = 6;
pub const STEP_SECONDS: i64 = 30;
/// How long an unconfirmed enrolment stays usable.
pub const PENDING_SECONDS: i64 = 600;
/// Wrong confirmation codes before an enrolment is dropped.
pub const PENDING_ATTEMPTS: i64 = 5;

/// A TOTP secret. Wiped from memory on drop; never printed.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn generate(rng: &dyn Random) -> Result<Secret, RandomError> {
        let mut b = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rng.fill(&mut b)?;
        Ok(Secret(b))
    }
    pub fn from_bytes(b: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(b))
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn totp(&self, digits: usize, issuer: Option<String>, label: String) -> TOTP {
        TOTP::new_unchecked(
            Algorithm::SHA1,
            digits,
            0,
            STEP_SECONDS as u64,
            self.0.to_vec(),
            issuer,
            label,
        )
    }
    /// Base32 without padding, as apps expect for manual entry.
    pub fn base32(&self) -> String {
        self.totp(DIGITS, None, String::new()).get_secret_base32()
    }
    /// `otpauth://totp/ISSUER:LABEL?secret=...&issuer=ISSUER`
    pub fn uri(&self, issuer: &str, label: &str) -> String {
        self.totp(
            DIGITS,
            Some(issuer.replace(':', "-")),
            label.replace(':', "-"),
        )
        .get_url()
    }
    /// The code for the step containing unix time `t`.
    pub fn code_at(&self, t: i64, digits: usize) -> String {
        self.totp(digits, None, String::new())
            .generate(u64::try_from(t).unwrap_or(0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why an answer is not a code. None of these counts as a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Empty,
    TooLong,
    NotUtf8,
    NotSixDigits,
}

impl Malformed {
    pub fn message(self) -> &'static str {
        match self {
            Malformed::Empty => "No code was entered.",
            Malformed::TooLong => "That answer is too long; a code has 6 digits.",
            Malformed::NotUtf8 | Malformed::NotSixDigits => {
                "Type the 6-digit code (0-9), or a backup code."
            }
        }
    }
}

/// Strict syntax: after removing spaces, exactly 6 ASCII digits. `+123456`,
/// fullwidth and other non-ASCII digits are refused.
pub fn parse_code(answer: &[u8]) -> Result<Zeroizing<String>, Malformed> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(Malformed::TooLong);
    }
    let text = std::str::from_utf8(answer).map_err(|_| Malformed::NotUtf8)?;
    let code: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| *c != ' ').collect());
    if code.is_empty() {
        return Err(Malformed::Empty);
    }
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::NotSixDigits);
    }
    Ok(code)
}

/// The result of checking a code against a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Right, for this step, which is later than the last accepted one.
    Accepted(i64),
    /// Right, but for a step already used (or earlier).
    Replayed,
    Wrong,
}

/// Compares `code` with the codes of the steps around `now`, in constant
/// time per step, preferring a step that was not used yet.
pub fn check(secret: &Secret, code: &str, now: i64, skew: u32, last_step: i64) -> Check {
    let current = now.div_euclid(STEP_SECONDS);
    let skew = i64::from(skew);
    let mut result = Check::Wrong;
    for step in (current - skew)..=(current + skew) {
        if step < 0 {
            continue;
        }
        let expected = secret.code_at(step * STEP_SECONDS, DIGITS);
        let same: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if same {
            if step > last_step {
                return Check::Accepted(step);
            }
            result = Check::Replayed;
        }
    }
    result
}

/// The active app secret of a user and its last accepted step.
pub fn load(conn: &Db, user: &str) -> DbResult<Option<(Secret, i64)>> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row(
            "SELECT secret, last_step FROM totp WHERE username = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(sealed, last_step)| {
        let secret = conn.unseal(user, "totp.secret", &sealed)?;
        Ok((Secret::from_bytes(secret.to_vec()), last_step))
    })
    .transpose()
}

pub fn is_enrolled(conn: &Db, user: &str) -> DbResult<bool> {
    conn.query_row("SELECT 1 FROM totp WHERE username = ?1", [user], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

/// Uses `step` of the user's app secret: a compare-and-set, true only for
/// the one caller that moved `last_step` forward. Two logins, or two hosts
/// sharing a database, that both saw an older step cannot both succeed:
/// the second one's update matches no row.
pub fn use_step(conn: &Db, user: &str, step: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE totp SET last_step = ?2 WHERE username = ?1 AND last_step < ?2",
        params![user, step],
    )? == 1)
}

/// Makes `secret` the user's app secret (replacing any earlier one);
/// `step` is the step of the confirming code, which is thereby used.
pub fn activate(conn: &Db, user: &str, secret: &Secret, step: i64, now: i64) -> DbResult<()> {
    conn.execute(
        "INSERT INTO totp(username, secret, created, last_step)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(username) DO UPDATE SET secret = excluded.secret,
             created = excluded.created, last_step = excluded.last_step",
        params![
            user,
            conn.seal(user, "totp.secret", secret.bytes())?,
            now,
            step
        ],
    )
    .map(|_| ())
}

pub fn remove(conn: &Db, user: &str) -> DbResult<bool> {
    conn.execute("DELETE FROM totp_pending WHERE username = ?1", [user])?;
    Ok(conn.execute("DELETE FROM totp WHERE username = ?1", [user])? > 0)
}

/// Stores an unconfirmed enrolment; any earlier one of the user is dropped.
pub fn add_pending(conn: &Db, id: &str, user: &str, secret: &Secret, now: i64) -> DbResult<()> {
    conn.execute(
        "DELETE FROM totp_pending WHERE username = ?1 OR expires <= ?2",
        params![user, now],
    )?;
    conn.execute(
        "INSERT INTO totp_pending(id, username, secret, expires)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            id,
            user,
            conn.seal(user, "totp_pending.secret", secret.bytes())?,
            now + PENDING_SECONDS
        ],
    )
    .map(|_| ())
}

pub fn has_pending(conn: &Db, user: &str, now: i64) -> DbResult<bool> {
    conn.query_row(
        "SELECT 1 FROM totp_pending WHERE username = ?1 AND expires > ?2",
        params![user, now],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// What confirming an enrolment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Activated,
    /// Wrong code; the enrolment stays (until too many tries).
    WrongCode {
        dropped: bool,
    },
    /// No such enrolment for this user, or it expired.
    NotFound,
}

/// Checks a confirmation code against a pending enrolment without
/// activating it (a wrong code still counts toward the enrolment's tries).
pub fn check_pending(
    conn: &Db,
    id: &str,
    user: &str,
    code: &str,
    now: i64,
    skew: u32,
) -> DbResult<Confirm> {
    confirm(conn, id, user, code, now, skew, false)
}

/// Checks a confirmation code and, if right, makes the pending secret the
/// user's app secret.
pub fn confirm_pending(
    conn: &Db,
    id: &str,
    user: &str,
    code: &str,
    now: i64,
    skew: u32,
) -> DbResult<Confirm> {
    confirm(conn, id, user, code, now, skew, true)
}

fn confirm(
    conn: &Db,
    id: &str,
    user: &str,
    code: &str,
    now: i64,
    skew: u32,
    activate_it: bool,
) -> DbResult<Confirm> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row(
            "SELECT secret, attempts
             FROM totp_pending WHERE id = ?1 AND username = ?2 AND expires > ?3",
            params![id, user, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((bytes, attempts)) = row else {
        return Ok(Confirm::NotFound);
    };
    let secret = Secret::from_bytes(conn.unseal(user, "totp_pending.secret", &bytes)?.to_vec());
    match check(&secret, code, now, skew, -1) {
        Check::Accepted(step) => {
            if activate_it {
                activate(conn, user, &secret, step, now)?;
                conn.execute("DELETE FROM totp_pending WHERE username = ?1", [user])?;
            }
            Ok(Confirm::Activated)
        }
        Check::Replayed | Check::Wrong => {
            let dropped = attempts + 1 >= PENDING_ATTEMPTS;
            if dropped {
                conn.execute("DELETE FROM totp_pending WHERE id = ?1", [id])?;
            } else {
                conn.execute(
                    "UPDATE totp_pending SET attempts = attempts + 1 WHERE id = ?1",
                    [id],
                )?;
            }
            Ok(Confirm::WrongCode { dropped })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits), and their 6-digit tails.
    #[test]
    fn rfc6238_appendix_b_sha1() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let vectors = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(secret.code_at(t, 8), code, "t={t}");
            assert_eq!(secret.code_at(t, 6), &code[2..], "t={t}");
        }
    }

    #[test]
    fn check_window_and_replay() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let now = 1111111111; // step 37037037
        let step = now / 30;
        let at = |s: i64| secret.code_at(s * 30, 6);
        assert_eq!(check(&secret, &at(step), now, 1, -1), Check::Accepted(step));
        assert_eq!(
            check(&secret, &at(step - 1), now, 1, -1),
            Check::Accepted(step - 1)
        );
        assert_eq!(
            check(&secret, &at(step + 1), now, 1, -1),
            Check::Accepted(step + 1)
        );
        assert_eq!(check(&secret, &at(step - 2), now, 1, -1), Check::Wrong);
        assert_eq!(check(&secret, &at(step - 1), now, 0, -1), Check::Wrong);
        // Used step, and any earlier step, is refused.
        assert_eq!(check(&secret, &at(step), now, 1, step), Check::Replayed);
        assert_eq!(check(&secret, &at(step - 1), now, 1, step), Check::Replayed);
        assert_eq!(
            check(&secret, &at(step + 1), now, 1, step),
            Check::Accepted(step + 1)
        );
        let window = [at(step - 1), at(step), at(step + 1)];
        let wrong = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !window.contains(c))
            .unwrap();
        assert_eq!(check(&secret, &wrong, now, 1, -1), Check::Wrong);
    }

    #[test]
    fn strict_syntax() {
        assert_eq!(parse_code(b"123456").unwrap().as_str(), "123456");
        assert_eq!(parse_code(b"123 456").unwrap().as_str(), "123456");
        assert_eq!(parse_code(b" 12 34 56 ").unwrap().as_str(), "123456");
        assert_eq!(parse_code(b"").unwrap_err(), Malformed::Empty);
        assert_eq!(parse_code(b"   ").unwrap_err(), Malformed::Empty);
        assert_eq!(parse_code(b"+12345").unwrap_err(), Malformed::NotSixDigits);
        assert_eq!(parse_code(b"+123456").unwrap_err(), Malformed::NotSixDigits);
        assert_eq!(parse_code(b"12345").unwrap_err(), Malformed::NotSixDigits);
        assert_eq!(parse_code(b"1234567").unwrap_err(), Malformed::NotSixDigits);
        assert_eq!(parse_code(b"12a456").unwrap_err(), Malformed::NotSixDigits);
        assert_eq!(
            parse_code(b"123\t456").unwrap_err(),
            Malformed::NotSixDigits
        );
        assert_eq!(
            parse_code("１２３４５６".as_bytes()).unwrap_err(),
            Malformed::NotSixDigits
        );
        assert_eq!(
            parse_code("١٢٣٤٥٦".as_bytes()).unwrap_err(),
            Malformed::NotSixDigits
        );
        assert_eq!(
            parse_code(b"12\x0034").unwrap_err(),
            Malformed::NotSixDigits
        );
        assert_eq!(
            parse_code(b"\xff\xfe123456").unwrap_err(),
            Malformed::NotUtf8
        );
        assert_eq!(parse_code(&[b'1'; 10_000]).unwrap_err(), Malformed::TooLong);
    }

    #[test]
    fn uri_and_base32() {
        let secret = Secret::from_bytes(vec![0u8; 20]);
        assert_eq!(secret.base32(), "A".repeat(32));
        let uri = secret.uri("Example Co", "alice@host1");
        assert_eq!(
            uri,
            "otpauth://totp/Example%20Co:alice%40host1?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&issuer=Example%20Co"
        );
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn generated_secrets_are_160_bits_and_distinct() {
        let a = Secret::generate(&crate::random::OsRandom).unwrap();
        let b = Secret::generate(&crate::random::OsRandom).unwrap();
        assert_eq!(a.bytes().len(), 20);
        assert_ne!(a.bytes(), b.bytes());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The rule, written independently: at most MAX_ANSWER_BYTES bytes of
    /// UTF-8 that are, without spaces, exactly 6 ASCII digits.
    fn model(answer: &[u8]) -> Option<String> {
        if answer.len() > MAX_ANSWER_BYTES {
            return None;
        }
        let text = std::str::from_utf8(answer).ok()?;
        let code: String = text.chars().filter(|c| *c != ' ').collect();
        (code.len() == 6 && code.chars().all(|c| c.is_ascii_digit())).then_some(code)
    }

    fn near_codes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => proptest::char::range('0', '9'),
            1 => Just(' '),
            1 => prop_oneof![Just('+'), Just('-'), Just('٣'), Just('３'), Just('a'), Just('\t')],
        ];
        proptest::collection::vec(piece, 0..12)
            .prop_map(|v| v.into_iter().collect::<String>().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_code_matches_the_model_on_any_bytes(answer in proptest::collection::vec(any::<u8>(), 0..300)) {
            let got = parse_code(&answer).ok().map(|c| c.to_string());
            prop_assert_eq!(got, model(&answer));
        }

        #[test]
        fn parse_code_matches_the_model_near_codes(answer in near_codes()) {
            let got = parse_code(&answer).ok().map(|c| c.to_string());
            prop_assert_eq!(got, model(&answer));
        }
    }
}
