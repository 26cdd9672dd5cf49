//! Recovery codes from an administrator's reset: one per user, single use,
//! valid 24 hours, bound to the user, stored only as an argon2id hash.
//! Owns the `recovery_codes` table.
//!
//! A code is 16 characters of the backup-code alphabet (79 bits), shown as
//! `abcd-efgh-jkmn-pqrs`; its length tells it apart from app codes (6
//! digits) and backup codes (12 letters) at the same prompt.
//!
//! A verified code is *claimed* by the login that typed it, until that
//! login's session would expire; it is consumed only when the new method is
//! stored. So concurrent logins with one code go on once, and an enrolment
//! that fails or is abandoned leaves the code usable for the next login
//! (within its 24 hours) instead of leaving the account without a second
//! factor.

use crate::params;
use crate::random::{Random, RandomError};
use crate::rules::backup_codes::{Code, ALPHABET};
use crate::store::{Db, DbResult, Optional};
use zeroize::Zeroizing;

pub const LEN: usize = 16;
pub const VALID_SECONDS: i64 = 24 * 3600;

/// Reads an answer as a recovery code (case and separators ignored).
pub fn parse(answer: &str) -> Option<Code> {
    let canon: Zeroizing<String> = Zeroizing::new(
        answer
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    (canon.len() == LEN && canon.bytes().all(|b| ALPHABET.contains(&b)))
        .then(|| Code::from_canonical(canon))
}

pub fn generate(rng: &dyn Random) -> Result<Code, RandomError> {
    crate::rules::backup_codes::random_code(rng, LEN)
}

/// Stores a new code for the user; an earlier unused one is voided.
pub fn replace(conn: &Db, user: &str, hash: &str, now: i64, by: &str) -> DbResult<()> {
    conn.execute(
        "INSERT INTO recovery_codes(username, hash, created, expires, created_by) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(username) DO UPDATE SET hash = excluded.hash, created = excluded.created,
             expires = excluded.expires, created_by = excluded.created_by",
        params![user, hash, now, now + VALID_SECONDS, by],
    )
    .map(|_| ())
}

/// The user's unexpired code hash, if any.
pub fn pending(conn: &Db, user: &str, now: i64) -> DbResult<Option<String>> {
    conn.query_row(
        "SELECT hash FROM recovery_codes WHERE username = ?1 AND expires > ?2",
        params![user, now],
        |r| r.get(0),
    )
    .optional()
}

/// Claims the code with this hash for `session` until `until`: true for
/// exactly one login at a time.
pub fn claim(
    conn: &Db,
    user: &str,
    hash: &str,
    session: &str,
    until: i64,
    now: i64,
) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE recovery_codes SET claimed_by = ?3, claimed_until = ?4
         WHERE username = ?1 AND hash = ?2 AND expires > ?5 AND claimed_until <= ?5",
        params![user, hash, session, until, now],
    )? == 1)
}

/// Gives a claimed code back (the login failed or was cancelled).
pub fn release(conn: &Db, user: &str, session: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE recovery_codes SET claimed_by = NULL, claimed_until = 0
         WHERE username = ?1 AND claimed_by = ?2",
        params![user, session],
    )
    .map(|_| ())
}

/// Uses up the code `session` claimed: false if the claim was lost (it
/// expired and another login took the code, or a new reset replaced it).
pub fn consume_claimed(conn: &Db, user: &str, session: &str, now: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM recovery_codes WHERE username = ?1 AND claimed_by = ?2 AND claimed_until > ?3",
        params![user, session, now],
    )? == 1)
}

pub fn remove(conn: &Db, user: &str) -> DbResult<()> {
    conn.execute("DELETE FROM recovery_codes WHERE username = ?1", [user])
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn format_and_parse() {
        let c = generate(&OsRandom).unwrap();
        let shown = c.display();
        assert_eq!(shown.len(), 19);
        assert_eq!(parse(&shown.to_uppercase()).unwrap().display(), shown);
        assert!(
            parse("abcd-efgh-jkmn").is_none(),
            "a backup code is not a recovery code"
        );
        assert!(
            crate::rules::backup_codes::parse(&shown).is_none(),
            "and the reverse"
        );
        let bits = (LEN as f64) * (ALPHABET.len() as f64).log2();
        assert!(bits >= 64.0);
    }

    #[test]
    fn single_use_expiring_replaced() {
        let c = crate::store::testing::connection();
        c.execute(
            "INSERT INTO accounts(username, created) VALUES ('u', 0)",
            params![],
        )
        .unwrap();
        replace(&c, "u", "h1", 100, "root").unwrap();
        assert_eq!(pending(&c, "u", 100).unwrap().as_deref(), Some("h1"));
        let day = 100 + VALID_SECONDS;
        assert_eq!(pending(&c, "u", day).unwrap(), None, "expired at 24 h");
        assert!(!claim(&c, "u", "h1", "s0", day + 300, day + 1).unwrap());
        replace(&c, "u", "h2", 200, "root").unwrap();
        assert!(
            !claim(&c, "u", "h1", "s1", 500, 201).unwrap(),
            "the earlier code is void"
        );
        assert!(claim(&c, "u", "h2", "s1", 500, 201).unwrap());
        assert!(
            !claim(&c, "u", "h2", "s2", 500, 202).unwrap(),
            "one login at a time"
        );
        release(&c, "u", "s1").unwrap();
        assert!(
            claim(&c, "u", "h2", "s2", 500, 203).unwrap(),
            "released: usable again"
        );
        assert!(
            claim(&c, "u", "h2", "s3", 900, 501).unwrap(),
            "an expired claim lapses"
        );
        assert!(
            !consume_claimed(&c, "u", "s2", 502).unwrap(),
            "a lapsed claim cannot consume"
        );
        assert!(consume_claimed(&c, "u", "s3", 502).unwrap());
        assert_eq!(pending(&c, "u", 503).unwrap(), None, "single use");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::rules::backup_codes::proptests::near_codes;
    use proptest::prelude::*;

    /// The documented rule: spaces, `-` and ASCII case are ignored; what is
    /// left is exactly LEN letters of the alphabet.
    fn model(answer: &str) -> Option<String> {
        let canon: String = answer
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (canon.chars().count() == LEN && canon.bytes().all(|b| ALPHABET.contains(&b)))
            .then_some(canon)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_matches_the_model_on_any_string(answer in any::<String>()) {
            let got = parse(&answer).map(|c| c.display().replace('-', ""));
            prop_assert_eq!(got, model(&answer));
        }

        #[test]
        fn parse_matches_the_model_near_codes(answer in near_codes(30)) {
            let got = parse(&answer).map(|c| c.display().replace('-', ""));
            prop_assert_eq!(got, model(&answer));
        }
    }
}
