//! The hosts a fleet's verifier answers (table `fleet_hosts`, migration
//! 15): a name and the SHA-256 of the host's certificate. A request whose
//! client certificate is not here is refused, whoever signed it: adding a
//! host is one row, revoking it is removing the row, and every verifier of
//! the fleet reads the same table at every request, so a revocation takes
//! effect at once everywhere.

use crate::params;
use crate::store::{Db, DbError, DbResult};

/// Longest host name (a DNS name).
pub const MAX_NAME_LEN: usize = 253;

/// Whether `name` can name a host: letters, digits, `.`, `-` and `_`,
/// 1 to 253 of them.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Whether `fingerprint` is a SHA-256 in lower-case hex.
fn valid_fingerprint(fingerprint: &str) -> bool {
    fingerprint.len() == 64
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a host could not be added.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    BadName,
    BadFingerprint,
    /// The name is taken (by this or another certificate).
    NameTaken,
    /// The certificate is registered under another name.
    CertificateTaken(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::BadName => {
                f.write_str("a host name is 1 to 253 letters, digits, '.', '-' or '_'")
            }
            Refused::BadFingerprint => f.write_str("not a SHA-256 fingerprint"),
            Refused::NameTaken => f.write_str(
                "a host of that name is registered already; remove it first to give it a new \
                 certificate",
            ),
            Refused::CertificateTaken(other) => {
                write!(f, "this certificate is registered already, as host {other}")
            }
        }
    }
}

/// Registers host `name` with its certificate's fingerprint.
pub fn add(c: &Db, name: &str, fingerprint: &str, now: i64) -> DbResult<Result<(), Refused>> {
    if !valid_name(name) {
        return Ok(Err(Refused::BadName));
    }
    if !valid_fingerprint(fingerprint) {
        return Ok(Err(Refused::BadFingerprint));
    }
    if let Some(other) = host_of(c, fingerprint)? {
        return Ok(Err(Refused::CertificateTaken(other)));
    }
    let exists: i64 = c.query_row(
        "SELECT count(*) FROM fleet_hosts WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )?;
    if exists > 0 {
        return Ok(Err(Refused::NameTaken));
    }
    c.execute(
        "INSERT INTO fleet_hosts(name, fingerprint, added) VALUES (?1, ?2, ?3)",
        params![name, fingerprint, now],
    )?;
    Ok(Ok(()))
}

/// Revokes host `name`; false if there was none.
pub fn remove(c: &Db, name: &str) -> DbResult<bool> {
    Ok(c.execute("DELETE FROM fleet_hosts WHERE name = ?1", params![name])? > 0)
}

/// The host a certificate's fingerprint is registered as.
pub fn host_of(c: &Db, fingerprint: &str) -> DbResult<Option<String>> {
    match c.query_row(
        "SELECT name FROM fleet_hosts WHERE fingerprint = ?1",
        params![fingerprint],
        |r| r.get(0),
    ) {
        Ok(name) => Ok(Some(name)),
        Err(DbError::NoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every registered host: (name, fingerprint, added), by name.
pub fn list(c: &Db) -> DbResult<Vec<(String, String, i64)>> {
    c.query_map(
        "SELECT name, fingerprint, added FROM fleet_hosts ORDER BY name",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_host_is_known_by_its_certificate_until_it_is_removed() {
        let c = crate::store::testing::connection();
        assert_eq!(add(&c, "web1", A, 10).unwrap(), Ok(()));
        assert_eq!(host_of(&c, A).unwrap().as_deref(), Some("web1"));
        assert_eq!(host_of(&c, B).unwrap(), None);
        assert_eq!(add(&c, "web1", B, 11).unwrap(), Err(Refused::NameTaken));
        assert_eq!(
            add(&c, "web2", A, 11).unwrap(),
            Err(Refused::CertificateTaken("web1".into()))
        );
        assert_eq!(add(&c, "web 2", B, 11).unwrap(), Err(Refused::BadName));
        assert_eq!(
            add(&c, "web2", "AB", 11).unwrap(),
            Err(Refused::BadFingerprint)
        );
        assert_eq!(add(&c, "web2", B, 12).unwrap(), Ok(()));
        assert_eq!(
            list(&c).unwrap(),
            vec![("web1".into(), A.into(), 10), ("web2".into(), B.into(), 12)]
        );
        assert!(remove(&c, "web1").unwrap());
        assert!(!remove(&c, "web1").unwrap());
        assert_eq!(host_of(&c, A).unwrap(), None);
        assert_eq!(host_of(&c, B).unwrap().as_deref(), Some("web2"));
    }
}
