//! Backup codes: sets of ten single-use codes for when the phone is gone.
//! Owns the `backup_codes` table.
//!
//! A code is 12 characters from a 31-letter alphabet without look-alikes
//! (no 0/O, 1/l/I), shown as `abcd-efgh-jkmn`: 59 bits. It is typed at the
//! same prompt as an app code; a 6-digit answer is always an app code, so
//! the two can never be confused. Case and separators do not matter.
//!
//! Storage: the first group is a *selector* kept in clear to find the one
//! candidate row; the whole code is kept only as an argon2id hash (OWASP's
//! minimum: 19 MiB, t=2, p=1) with its own salt. An attempt therefore costs
//! at most one argon2 verification (none when no selector matches), and a
//! stolen database leaves 40 bits behind argon2 for each code.

use crate::params;
use crate::random::{Random, RandomError};
use crate::store::{Db, DbResult};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const SET_SIZE: usize = 10;
pub const ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
pub const GROUP_LEN: usize = 4;
pub const CODE_LEN: usize = 12;
/// Scratch codes imported from google-authenticator: 8 digits (never 6,
/// so never taken for an app code).
pub const SCRATCH_LEN: usize = 8;
/// Login warns when this many or fewer codes are left.
pub const WARN_AT: u32 = 2;

/// One backup code, canonical form (12 lowercase characters). Wiped on
/// drop; never printed by `Debug`.
#[derive(Clone)]
pub struct Code(Zeroizing<String>);

impl Code {
    pub(crate) fn from_canonical(canon: Zeroizing<String>) -> Code {
        Code(canon)
    }

    /// `abcd-efgh-jkmn`.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(GROUP_LEN)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
    /// The first group, used to find the candidate row.
    pub fn selector(&self) -> &str {
        self.0.get(..GROUP_LEN).unwrap_or("")
    }
    /// The code's bytes, for its hash (never shown, never logged).
    pub fn secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// Reads an answer as a backup code: separators (space, `-`) and case are
/// ignored; what is left must be 12 letters of the alphabet, or 8 digits
/// (a scratch code imported from google-authenticator).
pub fn parse(answer: &str) -> Option<Code> {
    let canon: Zeroizing<String> = Zeroizing::new(
        answer
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let ours = canon.len() == CODE_LEN && canon.bytes().all(|b| ALPHABET.contains(&b));
    let imported = canon.len() == SCRATCH_LEN && canon.bytes().all(|b| b.is_ascii_digit());
    (ours || imported).then(|| Code(canon))
}

/// A new set of codes with distinct selectors.
pub fn generate_set(rng: &dyn Random) -> Result<Vec<Code>, RandomError> {
    let mut set: Vec<Code> = Vec::with_capacity(SET_SIZE);
    while set.len() < SET_SIZE {
        let code = generate_one(rng)?;
        if !set.iter().any(|c| c.selector() == code.selector()) {
            set.push(code);
        }
    }
    Ok(set)
}

fn generate_one(rng: &dyn Random) -> Result<Code, RandomError> {
    random_code(rng, CODE_LEN)
}

/// `len` letters of the alphabet, uniformly.
pub(crate) fn random_code(rng: &dyn Random, len: usize) -> Result<Code, RandomError> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 32]);
    while out.len() < len {
        rng.fill(&mut buf[..])?;
        // Rejection sampling: 248 = 8 * 31, so every letter is equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b % 31)]));
        }
    }
    Ok(Code(out))
}

/// Replaces the user's whole set (the old codes stop working at once).
pub fn replace_set(conn: &Db, user: &str, hashed: &[(String, String)], now: i64) -> DbResult<()> {
    conn.execute("DELETE FROM backup_codes WHERE username = ?1", [user])?;
    for (selector, hash) in hashed {
        conn.execute(
            "INSERT INTO backup_codes(username, selector, hash, created) VALUES (?1, ?2, ?3, ?4)",
            params![
                user,
                conn.seal(user, "backup_codes.selector", selector.as_bytes())?,
                conn.seal(user, "backup_codes.hash", hash.as_bytes())?,
                now
            ],
        )?;
    }
    Ok(())
}

/// A new set of backup codes on its own (`twofactorctl backup-codes`):
/// the set is replaced and every trusted device's trust ends, as when a
/// method is added ([`crate::rules::methods::activate`]): trust was given
/// while the old codes were the way in without the phone, and whoever
/// makes a new set may be shutting someone out. Returns how many devices
/// were trusted.
pub fn renew(conn: &Db, user: &str, hashed: &[(String, String)], now: i64) -> DbResult<u32> {
    replace_set(conn, user, hashed, now)?;
    crate::rules::trusted_devices::remove_all(conn, user)
}

/// The unused code of this user with this selector, if any: (row id, hash).
/// Selectors are sealed at rest (an imported 8-digit code's selector is
/// half of its digits), so the user's unused codes (at most a set) are
/// opened and compared here, in constant time.
pub fn candidate(conn: &Db, user: &str, selector: &str) -> DbResult<Option<(i64, String)>> {
    let rows = conn.query_map(
        "SELECT id, selector, hash FROM backup_codes WHERE username = ?1 AND used_at IS NULL",
        [user],
        |r| Ok((r.get::<i64>(0)?, r.get::<Vec<u8>>(1)?, r.get::<Vec<u8>>(2)?)),
    )?;
    let mut found = None;
    for (id, stored, hash) in rows {
        let stored = conn.unseal(user, "backup_codes.selector", &stored)?;
        let same: bool = stored.as_slice().ct_eq(selector.as_bytes()).into();
        if same && found.is_none() {
            found = Some((id, conn.unseal_text(user, "backup_codes.hash", &hash)?));
        }
    }
    Ok(found)
}

/// Marks a code used. False if it was used meanwhile (by a concurrent
/// login): only one consumer ever gets true.
pub fn consume(conn: &Db, id: i64, now: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE backup_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, now],
    )? == 1)
}

/// Unused codes left; `None` if the user never had a set.
pub fn remaining(conn: &Db, user: &str) -> DbResult<Option<u32>> {
    let (total, unused): (u32, u32) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE used_at IS NULL) FROM backup_codes WHERE username = ?1",
        [user],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((total > 0).then_some(unused))
}

pub fn remove_all(conn: &Db, user: &str) -> DbResult<()> {
    conn.execute("DELETE FROM backup_codes WHERE username = ?1", [user])
        .map(|_| ())
}

/// The warning shown at login when few codes are left.
pub fn low_warning(left: u32) -> Option<String> {
    match left {
        0 => Some(
            "You have no backup codes left. Run `twofactorctl backup-codes` for a new set.".into(),
        ),
        1 => Some(
            "You have 1 backup code left. Run `twofactorctl backup-codes` for a new set.".into(),
        ),
        n if n <= WARN_AT => Some(format!(
            "You have {n} backup codes left. Run `twofactorctl backup-codes` for a new set."
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;
    use std::collections::HashSet;

    #[test]
    fn codes_use_the_alphabet_and_read_well() {
        let set = generate_set(&OsRandom).unwrap();
        assert_eq!(set.len(), SET_SIZE);
        for c in &set {
            let shown = c.display();
            assert_eq!(shown.len(), 14);
            assert_eq!(shown.matches('-').count(), 2);
            assert!(shown
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
            for bad in [b'0', b'o', b'1', b'l', b'i'] {
                assert!(!shown.as_bytes().contains(&bad), "{shown}");
            }
        }
        // At least 50 bits each.
        let bits = (CODE_LEN as f64) * (ALPHABET.len() as f64).log2();
        assert!(bits >= 50.0, "{bits}");
        assert_eq!(format!("{:?}", set[0]), "Code(<redacted>)");
    }

    #[test]
    fn unique_over_100k_sets() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let set = generate_set(&OsRandom).unwrap();
            let selectors: HashSet<&str> = set.iter().map(|c| c.selector()).collect();
            assert_eq!(selectors.len(), SET_SIZE, "selectors unique within a set");
            for c in set {
                assert!(seen.insert(c.0.to_string()), "duplicate code");
            }
        }
        assert_eq!(seen.len(), 100_000 * SET_SIZE);
    }

    #[test]
    fn letters_are_uniform_enough() {
        let mut counts = [0u32; 31];
        for _ in 0..2_000 {
            for c in generate_set(&OsRandom).unwrap() {
                for b in c.0.bytes() {
                    counts[ALPHABET.iter().position(|a| *a == b).unwrap()] += 1;
                }
            }
        }
        let expected = 2_000.0 * 10.0 * 12.0 / 31.0;
        for n in counts {
            assert!(
                (f64::from(n) - expected).abs() < expected * 0.1,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn parse_ignores_case_and_separators_and_never_takes_six_digits() {
        let c = parse("abcd-efgh-jkmn").unwrap();
        assert_eq!(c.display(), "abcd-efgh-jkmn");
        assert_eq!(parse("ABCDEFGHJKMN").unwrap().display(), "abcd-efgh-jkmn");
        assert_eq!(
            parse(" abcd efgh jkmn ").unwrap().display(),
            "abcd-efgh-jkmn"
        );
        assert!(parse("123456").is_none());
        assert!(parse("abcd-efgh-jkm").is_none());
        assert!(parse("abcd-efgh-jkmno").is_none());
        assert!(parse("abcd-efgh-jkm0").is_none());
        assert!(parse("abcd-efgh-jkml").is_none());
        assert!(parse("ａbcd-efgh-jkmn").is_none());
        // Imported google-authenticator scratch codes: 8 digits.
        assert_eq!(parse("12345678").unwrap().selector(), "1234");
        assert!(parse("1234567").is_none());
    }

    #[test]
    fn consume_is_once() {
        let c = crate::store::testing::connection();
        c.execute(
            "INSERT INTO accounts(username, created) VALUES ('u', 0)",
            params![],
        )
        .unwrap();
        replace_set(
            &c,
            "u",
            &[("abcd".into(), "h1".into()), ("efgh".into(), "h2".into())],
            0,
        )
        .unwrap();
        assert_eq!(remaining(&c, "u").unwrap(), Some(2));
        let (id, hash) = candidate(&c, "u", "abcd").unwrap().unwrap();
        assert_eq!(hash, "h1");
        assert!(consume(&c, id, 5).unwrap());
        assert!(!consume(&c, id, 6).unwrap());
        assert!(candidate(&c, "u", "abcd").unwrap().is_none());
        assert_eq!(remaining(&c, "u").unwrap(), Some(1));
        // A new set replaces the old one entirely.
        replace_set(&c, "u", &[("jkmn".into(), "h3".into())], 9).unwrap();
        assert!(candidate(&c, "u", "efgh").unwrap().is_none());
        assert_eq!(remaining(&c, "u").unwrap(), Some(1));
        assert_eq!(remaining(&c, "nobody").unwrap(), None);
    }

    #[test]
    fn warnings() {
        assert!(low_warning(3).is_none());
        assert!(low_warning(2).unwrap().contains("2 backup codes left"));
        assert!(low_warning(1).unwrap().contains("1 backup code left"));
        assert!(low_warning(0).unwrap().contains("no backup codes left"));
    }
}

#[cfg(test)]
pub(crate) mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The documented rule: spaces, `-` and ASCII case are ignored; what is
    /// left is 12 letters of ALPHABET or 8 ASCII digits.
    fn model(answer: &str) -> Option<String> {
        let canon: String = answer
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let n = canon.chars().count();
        let ours = n == CODE_LEN && canon.bytes().all(|b| ALPHABET.contains(&b));
        let imported = n == SCRATCH_LEN && canon.chars().all(|c| c.is_ascii_digit());
        (ours || imported).then_some(canon)
    }

    /// Strings made mostly of code characters (either case), separators
    /// and a few intruders (letters outside the alphabet, non-ASCII).
    pub(crate) fn near_codes(max: usize) -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            8 => proptest::sample::select(ALPHABET.to_vec()).prop_map(char::from),
            2 => proptest::sample::select(ALPHABET.to_vec()).prop_map(|b| char::from(b).to_ascii_uppercase()),
            2 => proptest::char::range('0', '9'),
            2 => prop_oneof![Just(' '), Just('-')],
            1 => prop_oneof![Just('0'), Just('1'), Just('i'), Just('l'), Just('o'), Just('_'),
                             Just('é'), Just('İ'), Just('ǅ'), Just('\u{0}'), Just('\u{212A}')],
        ];
        proptest::collection::vec(piece, 0..max).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_matches_the_model_on_any_string(answer in any::<String>()) {
            let got = parse(&answer).map(|c| c.secret().to_vec());
            prop_assert_eq!(got, model(&answer).map(String::into_bytes));
        }

        #[test]
        fn parse_matches_the_model_near_codes(answer in near_codes(24)) {
            let got = parse(&answer);
            prop_assert_eq!(got.as_ref().map(|c| c.secret().to_vec()), model(&answer).map(String::into_bytes));
            if let Some(code) = got {
                // What is shown reads back as the same code.
                let again = parse(&code.display()).map(|c| c.secret().to_vec());
                prop_assert_eq!(again, Some(code.secret().to_vec()));
            }
        }
    }
}
