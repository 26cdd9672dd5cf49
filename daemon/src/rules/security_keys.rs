//! FIDO2 security keys as a method: a credential a user's key made for
//! this relying party (`[keys] rp_id`), touched at a local login.
//!
//! The daemon holds everything that decides: the credential id, its public
//! key, the signature counter. A login hands the module a challenge (a
//! random client data hash) and the user's credential ids; the module's key
//! helper brings back what the key signed; [`check`] verifies it (the
//! signature through libfido2, given as `verify`) and raises the counter in
//! the same transaction. A counter that does not go up marks a possibly
//! cloned key: refused, and the login's failure line says so.
//!
//! Table `security_keys` (migration 13): per user, a short random id, the
//! credential id, public key, AAGUID and label (all sealed), the COSE
//! algorithm, the counter, when it was added and last used.

use crate::params;
use crate::store::{Db, DbResult};
use subtle::ConstantTimeEq;
use twofactor_proto::key::{Assertion, AssertionRequest, MAX_ITEMS};
use twofactor_proto::types::SecurityKey;

/// Keys one user may register (a credential list must fit one request).
pub const MAX_KEYS: usize = MAX_ITEMS;
/// The longest label a user may give a key.
pub const MAX_LABEL_CHARS: usize = 64;

/// A credential a key made, once its attestation was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub credential_id: Vec<u8>,
    /// COSE algorithm (-7 ES256, -8 EdDSA).
    pub alg: i32,
    /// As libfido2 gives it (`fido_cred_pubkey_ptr`).
    pub public_key: Vec<u8>,
    pub aaguid: Vec<u8>,
    pub sign_count: u32,
    /// The relying party it was made for; empty: this machine's
    /// (`[keys] rp_id`). An OpenSSH security-key credential keeps its own
    /// (`ssh:`).
    pub rp_id: String,
}

/// What a key's signature check found (`verify`'s result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub sign_count: u32,
    pub user_verified: bool,
}

/// Why a key's answer was refused: the login's failure reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No credential of this user has that id.
    UnknownCredential,
    /// The signature, relying party, challenge, presence or verification
    /// did not check out.
    BadAssertion,
    /// The counter did not go up: a clone of the key may be in use.
    CounterWentBack,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::UnknownCredential => "unknown-security-key",
            Refused::BadAssertion => "bad-security-key-signature",
            Refused::CounterWentBack => "security-key-counter-went-back",
        }
    }
}

/// A label as the user gave it: trimmed, printable, bounded; empty becomes
/// "security key".
pub fn clean_label(label: &str) -> Result<String, &'static str> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err("the name is longer than 64 characters");
    }
    if label.chars().any(char::is_control) {
        return Err("the name has control characters");
    }
    Ok(if label.is_empty() {
        "security key".to_string()
    } else {
        label.to_string()
    })
}

/// Registers `credential` for `user` as `id`; false when that credential
/// is registered already (nothing written).
pub fn add(
    conn: &Db,
    user: &str,
    id: &str,
    label: &str,
    credential: &Credential,
    now: i64,
) -> DbResult<bool> {
    if find(conn, user, &credential.credential_id)?.is_some() {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO security_keys(id, username, credential, public_key, alg, aaguid, label,
                                   sign_count, added, last_used, rp_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
        params![
            id,
            user,
            conn.seal(user, "security_keys.credential", &credential.credential_id)?,
            conn.seal(user, "security_keys.public_key", &credential.public_key)?,
            i64::from(credential.alg),
            conn.seal(user, "security_keys.aaguid", &credential.aaguid)?,
            conn.seal(user, "security_keys.label", label.as_bytes())?,
            i64::from(credential.sign_count),
            now,
            credential.rp_id.as_str()
        ],
    )?;
    Ok(true)
}

/// One stored key, unsealed.
struct Stored {
    id: String,
    credential_id: Vec<u8>,
    alg: i32,
    public_key: Vec<u8>,
    sign_count: u32,
    rp_id: String,
}

fn stored(conn: &Db, user: &str) -> DbResult<Vec<Stored>> {
    let rows = conn.query_map(
        "SELECT id, credential, public_key, alg, sign_count, rp_id FROM security_keys
         WHERE username = ?1 ORDER BY added, id",
        params![user],
        |r| {
            Ok((
                (
                    r.get::<String>(0)?,
                    r.get::<Vec<u8>>(1)?,
                    r.get::<Vec<u8>>(2)?,
                ),
                (r.get::<i64>(3)?, r.get::<i64>(4)?, r.get::<String>(5)?),
            ))
        },
    )?;
    rows.into_iter()
        .map(|((id, credential, public_key), (alg, count, rp_id))| {
            Ok(Stored {
                rp_id,
                id,
                credential_id: conn
                    .unseal(user, "security_keys.credential", &credential)?
                    .to_vec(),
                public_key: conn
                    .unseal(user, "security_keys.public_key", &public_key)?
                    .to_vec(),
                alg: i32::try_from(alg).unwrap_or(0),
                sign_count: u32::try_from(count).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// The id of `user`'s key holding `credential_id`, if any.
pub fn find(conn: &Db, user: &str, credential_id: &[u8]) -> DbResult<Option<String>> {
    Ok(stored(conn, user)?
        .into_iter()
        .find(|k| bool::from(k.credential_id.as_slice().ct_eq(credential_id)))
        .map(|k| k.id))
}

/// The credential ids of `user`'s keys made for this machine's relying
/// party, oldest first: the exclude list of an enrolment.
pub fn credential_ids(conn: &Db, user: &str) -> DbResult<Vec<Vec<u8>>> {
    Ok(stored(conn, user)?
        .into_iter()
        .filter(|k| k.rp_id.is_empty())
        .map(|k| k.credential_id)
        .collect())
}

/// `user`'s credential ids by relying party (empty: this machine's),
/// this machine's first, then the others in the order they were added:
/// the allow lists of a login, one request per relying party.
pub fn credentials_by_rp(conn: &Db, user: &str) -> DbResult<Vec<(String, Vec<Vec<u8>>)>> {
    let mut groups: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let mut keys = stored(conn, user)?;
    keys.sort_by_key(|k| !k.rp_id.is_empty());
    for k in keys {
        match groups.iter_mut().find(|(rp, _)| *rp == k.rp_id) {
            Some((_, ids)) => ids.push(k.credential_id),
            None => groups.push((k.rp_id, vec![k.credential_id])),
        }
    }
    Ok(groups)
}

/// Checks what a key signed for `request` (the login's own challenge) and
/// uses it up: the credential must be one of `user`'s, `verify` (libfido2:
/// signature, relying party, challenge, presence, verification when
/// required) must pass for its algorithm and public key, and the counter
/// must go up (a key that keeps none sends 0 each time, and is taken while
/// the stored count is 0 too). The new count and the use are written in
/// the caller's transaction; returns the key's id.
pub fn check(
    conn: &Db,
    user: &str,
    request: &AssertionRequest,
    assertion: &Assertion,
    verify: impl FnOnce(i32, &[u8]) -> Result<Signed, String>,
    now: i64,
) -> DbResult<Result<String, Refused>> {
    let Some(key) = stored(conn, user)?
        .into_iter()
        .find(|k| bool::from(k.credential_id.as_slice().ct_eq(&assertion.credential_id)))
    else {
        return Ok(Err(Refused::UnknownCredential));
    };
    let allowed = request
        .allow
        .iter()
        .any(|id| bool::from(id.as_slice().ct_eq(&key.credential_id)));
    if !allowed || !(key.rp_id.is_empty() || key.rp_id == request.rp_id) {
        // Registered after this login began, or a request not ours.
        return Ok(Err(Refused::UnknownCredential));
    }
    let signed = match verify(key.alg, &key.public_key) {
        Ok(signed) => signed,
        Err(_) => return Ok(Err(Refused::BadAssertion)),
    };
    let counter_ok = if signed.sign_count == 0 && key.sign_count == 0 {
        true
    } else {
        signed.sign_count > key.sign_count
    };
    if !counter_ok {
        return Ok(Err(Refused::CounterWentBack));
    }
    // Raised only if nobody raised it meanwhile (another host of a fleet).
    let raised = conn.execute(
        "UPDATE security_keys SET sign_count = ?3, last_used = ?4
         WHERE username = ?1 AND id = ?2 AND (sign_count < ?3 OR (sign_count = 0 AND ?3 = 0))",
        params![user, key.id.as_str(), i64::from(signed.sign_count), now],
    )?;
    if raised == 0 {
        return Ok(Err(Refused::CounterWentBack));
    }
    Ok(Ok(key.id))
}

/// `user`'s keys, oldest first.
pub fn list(conn: &Db, user: &str) -> DbResult<Vec<SecurityKey>> {
    keys_in(conn, user, "security_keys")
}

/// `user`'s keys in `table`, oldest first: `security_keys` here, and
/// `ssh_keys` (the same columns id, label sealed as `TABLE.label`, added,
/// last_used).
pub fn keys_in(conn: &Db, user: &str, table: &'static str) -> DbResult<Vec<SecurityKey>> {
    let rows = conn.query_map(
        &format!(
            "SELECT id, label, added, last_used FROM {table} WHERE username = ?1
             ORDER BY added, id"
        ),
        params![user],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<i64>(2)?,
                r.get::<i64>(3)?,
            ))
        },
    )?;
    let column = format!("{table}.label");
    rows.into_iter()
        .map(|(id, label, added, last_used)| {
            Ok(SecurityKey {
                id,
                label: conn.unseal_text(user, &column, &label)?,
                added,
                last_used,
            })
        })
        .collect()
}

/// How many keys `user` has.
pub fn count(conn: &Db, user: &str) -> DbResult<usize> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM security_keys WHERE username = ?1",
        params![user],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Whether `user` has a registered key.
pub fn is_enrolled(conn: &Db, user: &str) -> DbResult<bool> {
    Ok(count(conn, user)? > 0)
}

/// Removes the key `id` of `user`; false if there was none.
pub fn remove_one(conn: &Db, user: &str, id: &str) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM security_keys WHERE username = ?1 AND id = ?2",
        params![user, id],
    )? > 0)
}

/// Removes every key of `user`; false if there was none.
pub fn remove(conn: &Db, user: &str) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM security_keys WHERE username = ?1",
        params![user],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::bookkeeping;
    use twofactor_proto::key::UserVerification;

    fn credential(id: u8) -> Credential {
        Credential {
            credential_id: vec![id; 32],
            alg: -7,
            public_key: vec![4; 64],
            aaguid: vec![0; 16],
            sign_count: 10,
            rp_id: String::new(),
        }
    }

    fn request(allow: &[u8]) -> AssertionRequest {
        AssertionRequest {
            rp_id: "twofactor:host".into(),
            client_data_hash: [1; 32],
            allow: allow.iter().map(|&i| vec![i; 32]).collect(),
            user_verification: UserVerification::Preferred,
        }
    }

    fn assertion(id: u8) -> Assertion {
        Assertion {
            credential_id: vec![id; 32],
            authdata: vec![],
            signature: vec![],
        }
    }

    fn signed(n: u32) -> impl FnOnce(i32, &[u8]) -> Result<Signed, String> {
        move |alg, pk| {
            assert_eq!((alg, pk), (-7, &[4u8; 64][..]), "the stored key is used");
            Ok(Signed {
                sign_count: n,
                user_verified: false,
            })
        }
    }

    fn db_with_key() -> Db<'static> {
        let c = crate::store::testing::connection();
        bookkeeping::ensure(&c, "alice", 1).unwrap();
        assert!(add(&c, "alice", "k1", "blue key", &credential(1), 5).unwrap());
        c
    }

    #[test]
    fn a_key_is_stored_sealed_listed_and_found() {
        let c = db_with_key();
        // The same credential twice is one key.
        assert!(!add(&c, "alice", "k2", "again", &credential(1), 6).unwrap());
        assert_eq!(find(&c, "alice", &[1; 32]).unwrap(), Some("k1".into()));
        assert_eq!(find(&c, "alice", &[2; 32]).unwrap(), None);
        assert_eq!(credential_ids(&c, "alice").unwrap(), vec![vec![1u8; 32]]);
        let listed = list(&c, "alice").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].label.as_str(), listed[0].added), ("blue key", 5));
        let raw: Vec<u8> = c
            .query_row("SELECT credential FROM security_keys", params![], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!raw.windows(32).any(|w| w == [1u8; 32]), "sealed");
    }

    #[test]
    fn a_right_assertion_raises_the_counter_once() {
        let c = db_with_key();
        let r = request(&[1]);
        assert_eq!(
            check(&c, "alice", &r, &assertion(1), signed(11), 9).unwrap(),
            Ok("k1".into())
        );
        assert_eq!(list(&c, "alice").unwrap()[0].last_used, 9);
        // The same count again (a replay, or a clone) is refused.
        assert_eq!(
            check(&c, "alice", &r, &assertion(1), signed(11), 10).unwrap(),
            Err(Refused::CounterWentBack)
        );
        assert_eq!(
            check(&c, "alice", &r, &assertion(1), signed(3), 10).unwrap(),
            Err(Refused::CounterWentBack)
        );
        assert_eq!(
            check(&c, "alice", &r, &assertion(1), signed(12), 10).unwrap(),
            Ok("k1".into())
        );
    }

    #[test]
    fn a_key_without_a_counter_is_taken_while_it_stays_at_zero() {
        let c = crate::store::testing::connection();
        bookkeeping::ensure(&c, "alice", 1).unwrap();
        let mut cred = credential(1);
        cred.sign_count = 0;
        add(&c, "alice", "k1", "", &cred, 5).unwrap();
        let r = request(&[1]);
        for now in [6, 7] {
            assert_eq!(
                check(&c, "alice", &r, &assertion(1), signed(0), now).unwrap(),
                Ok("k1".into())
            );
        }
    }

    #[test]
    fn unknown_credentials_and_bad_signatures_are_refused() {
        let c = db_with_key();
        assert_eq!(
            check(&c, "alice", &request(&[1]), &assertion(2), signed(11), 9).unwrap(),
            Err(Refused::UnknownCredential)
        );
        // A credential of the user's that the login did not ask for.
        assert_eq!(
            check(&c, "alice", &request(&[3]), &assertion(1), signed(11), 9).unwrap(),
            Err(Refused::UnknownCredential)
        );
        // Another user's.
        assert_eq!(
            check(&c, "bob", &request(&[1]), &assertion(1), signed(11), 9).unwrap(),
            Err(Refused::UnknownCredential)
        );
        let bad = |_: i32, _: &[u8]| Err::<Signed, _>("signature".to_string());
        assert_eq!(
            check(&c, "alice", &request(&[1]), &assertion(1), bad, 9).unwrap(),
            Err(Refused::BadAssertion)
        );
        // Nothing was used.
        assert_eq!(list(&c, "alice").unwrap()[0].last_used, 0);
    }

    #[test]
    fn credentials_are_grouped_by_relying_party_this_machines_first() {
        let c = crate::store::testing::connection();
        bookkeeping::ensure(&c, "alice", 1).unwrap();
        let ssh = Credential {
            rp_id: "ssh:".into(),
            ..credential(9)
        };
        add(&c, "alice", "s1", "ssh", &ssh, 1).unwrap();
        add(&c, "alice", "k1", "", &credential(1), 2).unwrap();
        add(&c, "alice", "k2", "", &credential(2), 3).unwrap();
        assert_eq!(
            credentials_by_rp(&c, "alice").unwrap(),
            vec![
                (String::new(), vec![vec![1u8; 32], vec![2u8; 32]]),
                ("ssh:".to_string(), vec![vec![9u8; 32]]),
            ]
        );
        // Only this machine's are excluded at an enrolment.
        assert_eq!(credential_ids(&c, "alice").unwrap().len(), 2);
        // The ssh: credential answers only a request for ssh:.
        let mut r = request(&[9]);
        assert_eq!(
            check(&c, "alice", &r, &assertion(9), signed(11), 9).unwrap(),
            Err(Refused::UnknownCredential)
        );
        r.rp_id = "ssh:".into();
        assert_eq!(
            check(&c, "alice", &r, &assertion(9), signed(11), 9).unwrap(),
            Ok("s1".into())
        );
    }

    #[test]
    fn keys_are_removed_one_or_all() {
        let c = db_with_key();
        add(&c, "alice", "k2", "spare", &credential(2), 6).unwrap();
        assert_eq!(count(&c, "alice").unwrap(), 2);
        assert!(remove_one(&c, "alice", "k1").unwrap());
        assert!(!remove_one(&c, "alice", "k1").unwrap());
        assert!(is_enrolled(&c, "alice").unwrap());
        assert!(remove(&c, "alice").unwrap());
        assert!(!is_enrolled(&c, "alice").unwrap());
    }

    #[test]
    fn labels_are_bounded_and_printable() {
        assert_eq!(clean_label("  ").unwrap(), "security key");
        assert_eq!(clean_label(" blue ").unwrap(), "blue");
        assert!(clean_label(&"x".repeat(65)).is_err());
        assert!(clean_label("a\u{1b}[2J").is_err());
    }
}
