//! Trusted devices: "don't ask again on this device" for at most 30 days.
//! A device is something the client proved: over SSH, the public key sshd
//! reports to PAM in `SSH_AUTH_INFO_0` (publickey before
//! keyboard-interactive), taken only from services the administrator
//! names as sshd ([`DevicesConfig::ssh_services`]) and only from root's
//! logins. Optionally (`bind_address`) the client address is bound too; a
//! bare address is a device only when an administrator allows it
//! (`address_only`).
//!
//! Table `devices` (migration 8): per user, a short random id, the
//! identity (SHA-256 over the key blob and, if bound, the address) and the
//! label shown to the user, both sealed; when it was trusted, last used,
//! and when trust ends (fixed when given: never later than 30 days after).
//!
//! Trust ends when the account password changes (migration 11): each row
//! keeps a keyed digest of what the shadow database said of the password
//! when the device was trusted ([`Password`]: the hash field and the date
//! of the last change, or that there was no entry), and a login that
//! presents the device compares it with what the shadow database says
//! now ([`use_trusted`]). A difference ends the trust; a look-up that
//! fails is the caller's to refuse trust on (it never reaches here as
//! "unchanged"). The digest is HMAC-SHA256 under a random key of its own,
//! the key and the digest sealed together like every secret column: a
//! copy of the database without the key file gives nothing, and with it
//! a guess must be the whole shadow field, its salt included.

use crate::config::DevicesConfig;
use crate::origin::Origin;
use crate::params;
use crate::random::{Random, RandomError};
use crate::store::{Db, DbResult};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use twofactor_proto::types::Device;
use zeroize::Zeroizing;

/// What a login presents as its device, if anything.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    /// SHA-256 over what identifies it (never shown, never logged).
    identity: [u8; 32],
    /// `ssh-ed25519 SHA256:...`, or `address 192.0.2.7`.
    pub label: String,
    /// The bound client address ("" if none).
    pub address: String,
}

#[cfg(test)]
impl Presented {
    /// A device of its own for each `seed` (tests of other rules).
    pub fn for_tests(seed: &str) -> Presented {
        Presented {
            identity: Sha256::digest(seed.as_bytes()).into(),
            label: format!("test {seed}"),
            address: String::new(),
        }
    }
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented").finish_non_exhaustive()
    }
}

/// The public key of the first `publickey` line of `SSH_AUTH_INFO_0`
/// (`publickey TYPE BASE64 [...]`): its type and decoded blob. None when
/// there is no such line, or it is not well formed.
pub fn ssh_key(auth_info: &str) -> Option<(String, Vec<u8>)> {
    let line = auth_info.lines().find(|l| l.starts_with("publickey "))?;
    let mut words = line.split(' ');
    let (_, kind, blob) = (words.next()?, words.next()?, words.next()?);
    let plausible_kind = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b));
    if !plausible_kind || blob.len() > 16 * 1024 {
        return None;
    }
    let bytes = STANDARD.decode(blob).ok()?;
    // The blob starts with the key type as an SSH string.
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if bytes.get(4..4 + len)? != kind.as_bytes() {
        return None;
    }
    Some((kind.to_string(), bytes))
}

/// OpenSSH's fingerprint: `SHA256:` and unpadded base64 of the digest.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The device a login presents, by the rules of `config`.
pub fn presented(config: &DevicesConfig, origin: &Origin, auth_info: &str) -> Option<Presented> {
    if !config.enabled || !config.ssh_services.iter().any(|s| s == &origin.service) {
        return None;
    }
    let address = if config.bind_address || config.address_only {
        origin.rhost.clone()
    } else {
        String::new()
    };
    if (config.bind_address || config.address_only) && address.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    let label = match ssh_key(auth_info) {
        Some((kind, blob)) => {
            h.update(b"key\0");
            h.update(&blob);
            format!("{kind} {}", fingerprint(&blob))
        }
        None if config.address_only => "address".to_string(),
        None => return None,
    };
    h.update(b"\0address\0");
    h.update(address.as_bytes());
    Some(Presented {
        identity: h.finalize().into(),
        label,
        address,
    })
}

/// What the shadow database says of a user's password, looked up by the
/// caller (off the async workers) when a device is trusted and when it is
/// used. Only a keyed digest of it is stored ([`password_digest`]).
pub enum Password {
    /// No shadow entry: the password is kept elsewhere (LDAP, SSSD), and a
    /// change there is not seen here.
    NoEntry,
    /// The entry's hash field as it is (a crypt hash, or `!`, `*`, `x`)
    /// and its date of last change (`sp_lastchg`).
    Entry {
        hash: Zeroizing<Vec<u8>>,
        last_change: i64,
    },
}

impl Password {
    /// The bytes the digest covers, each part tagged or counted so that
    /// no two answers give the same bytes.
    fn message(&self) -> Zeroizing<Vec<u8>> {
        let mut m = Zeroizing::new(Vec::new());
        match self {
            Password::NoEntry => m.extend_from_slice(b"no-entry"),
            Password::Entry { hash, last_change } => {
                m.extend_from_slice(b"shadow\0");
                m.extend_from_slice(&(hash.len() as u64).to_be_bytes());
                m.extend_from_slice(hash);
                m.extend_from_slice(&last_change.to_be_bytes());
            }
        }
        m
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::NoEntry => f.write_str("NoEntry"),
            Password::Entry { .. } => f.write_str("Entry(..)"),
        }
    }
}

/// Bytes of the digest's own key (SHA-256's block), and of the digest.
const DIGEST_KEY_LEN: usize = 64;
const DIGEST_LEN: usize = 32;

fn mac(key: &[u8; DIGEST_KEY_LEN], password: &Password) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&(*key).into());
    mac.update(&password.message());
    mac
}

/// What a device keeps of the password it was trusted under (sealed in
/// `devices.password_digest`): a random key, then HMAC-SHA256 under it.
pub fn password_digest(
    rng: &dyn Random,
    password: &Password,
) -> Result<Zeroizing<Vec<u8>>, RandomError> {
    let mut key = Zeroizing::new([0u8; DIGEST_KEY_LEN]);
    rng.fill(key.as_mut())?;
    let mut out = Zeroizing::new(key.to_vec());
    out.extend_from_slice(&mac(&key, password).finalize().into_bytes());
    Ok(out)
}

/// Whether `stored` ([`password_digest`]) is of `password` (constant
/// time). Anything that is not a digest is not.
fn password_matches(stored: &[u8], password: &Password) -> bool {
    if stored.len() != DIGEST_KEY_LEN + DIGEST_LEN {
        return false;
    }
    let (key, digest) = stored.split_at(DIGEST_KEY_LEN);
    let Ok(key) = <&[u8; DIGEST_KEY_LEN]>::try_from(key) else {
        return false;
    };
    mac(key, password).verify_slice(digest).is_ok()
}

/// Why a login ended a device's trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The shadow database says something else of the password than when
    /// the device was trusted.
    PasswordChanged,
}

impl Ended {
    /// The word in the audit line (`why=`).
    pub fn name(self) -> &'static str {
        match self {
            Ended::PasswordChanged => "password-changed",
        }
    }
}

/// What [`use_trusted`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// The device is trusted, under this password: its use is recorded.
    Trusted(String),
    /// It is not (or no longer) trusted.
    NotTrusted,
    /// It was trusted, and the trust ended now: the row is gone.
    Ended { id: String, why: Ended },
}

/// A login presents `presented` for `user`, whose password the shadow
/// database describes as `password` now: uses the trust (records the use)
/// if there is one and it was given under this password; ends it if it
/// was given under another. In one job of the writer, before the login
/// is let through.
pub fn use_trusted(
    conn: &Db,
    user: &str,
    presented: &Presented,
    password: &Password,
    now: i64,
) -> DbResult<Use> {
    let Some(id) = trusted(conn, user, presented, now)? else {
        return Ok(Use::NotTrusted);
    };
    let sealed: Vec<u8> = conn.query_row(
        "SELECT password_digest FROM devices WHERE username = ?1 AND id = ?2",
        params![user, id],
        |r| r.get(0),
    )?;
    let stored = conn.unseal(user, "devices.password_digest", &sealed)?;
    if password_matches(&stored, password) {
        used(conn, user, &id, now)?;
        return Ok(Use::Trusted(id));
    }
    remove(conn, user, &id)?;
    Ok(Use::Ended {
        id,
        why: Ended::PasswordChanged,
    })
}

/// A new device id: 8 hex digits.
pub fn new_id(rng: &dyn Random) -> Result<String, RandomError> {
    let mut b = [0u8; 4];
    rng.fill(&mut b)?;
    Ok(hex::encode(b))
}

/// The id of `user`'s device that `presented` is, if trusted at `now`.
pub fn trusted(conn: &Db, user: &str, presented: &Presented, now: i64) -> DbResult<Option<String>> {
    let rows = conn.query_map(
        "SELECT id, identity FROM devices WHERE username = ?1 AND expires > ?2",
        params![user, now],
        |r| Ok((r.get::<String>(0)?, r.get::<Vec<u8>>(1)?)),
    )?;
    for (id, sealed) in rows {
        let identity = conn.unseal(user, "devices.identity", &sealed)?;
        if bool::from(identity.as_slice().ct_eq(&presented.identity)) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Records a use of device `id`.
pub fn used(conn: &Db, user: &str, id: &str, now: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE devices SET last_used = ?3 WHERE username = ?1 AND id = ?2",
        params![user, id, now],
    )
    .map(|_| ())
}

/// Trusts `presented` for `user` until `expires`, under the password
/// `password_digest` describes ([`password_digest`]), replacing an earlier
/// trust of the same device.
pub fn trust(
    conn: &Db,
    user: &str,
    id: &str,
    presented: &Presented,
    password_digest: &[u8],
    now: i64,
    expires: i64,
) -> DbResult<()> {
    if let Some(old) = trusted(conn, user, presented, i64::MIN)? {
        remove(conn, user, &old)?;
    }
    conn.execute(
        "INSERT INTO devices(id, username, identity, label, address, added, last_used, expires,
             password_digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
        params![
            id,
            user,
            conn.seal(user, "devices.identity", &presented.identity)?,
            conn.seal(user, "devices.label", presented.label.as_bytes())?,
            conn.seal(user, "devices.address", presented.address.as_bytes())?,
            now,
            expires,
            conn.seal(user, "devices.password_digest", password_digest)?
        ],
    )
    .map(|_| ())
}

/// `user`'s devices trusted at `now`, oldest first.
pub fn list(conn: &Db, user: &str, now: i64) -> DbResult<Vec<Device>> {
    conn.query_map(
        "SELECT id, label, address, added, last_used, expires
         FROM devices WHERE username = ?1 AND expires > ?2 ORDER BY added, id",
        params![user, now],
        |r| {
            let text = |column: &str, sealed: Vec<u8>| -> DbResult<String> {
                let plain = conn.unseal(user, column, &sealed)?;
                Ok(String::from_utf8_lossy(&plain).into_owned())
            };
            Ok(Device {
                id: r.get(0)?,
                label: text("devices.label", r.get(1)?)?,
                address: text("devices.address", r.get(2)?)?,
                added: r.get(3)?,
                last_used: r.get(4)?,
                expires: r.get(5)?,
            })
        },
    )
}

/// How many devices `user` has trusted at `now`.
pub fn count(conn: &Db, user: &str, now: i64) -> DbResult<u32> {
    conn.query_row(
        "SELECT COUNT(*) FROM devices WHERE username = ?1 AND expires > ?2",
        params![user, now],
        |r| r.get(0),
    )
}

/// Removes device `id` of `user`; false if there is none.
pub fn remove(conn: &Db, user: &str, id: &str) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM devices WHERE username = ?1 AND id = ?2",
        params![user, id],
    )? > 0)
}

/// Ends every trust of `user` (their methods changed, new backup codes, a
/// reset, `remove --all`); returns how many devices were trusted.
pub fn remove_all(conn: &Db, user: &str) -> DbResult<u32> {
    Ok(conn.execute("DELETE FROM devices WHERE username = ?1", [user])? as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn entry(hash: &str, last_change: i64) -> Password {
        Password::Entry {
            hash: Zeroizing::new(hash.as_bytes().to_vec()),
            last_change,
        }
    }

    #[test]
    fn a_digest_matches_its_password_and_nothing_else() {
        let p = entry("$y$j9T$salt$hash", 20_000);
        let d = password_digest(&OsRandom, &p).unwrap();
        assert_eq!(d.len(), DIGEST_KEY_LEN + DIGEST_LEN);
        assert!(password_matches(&d, &p));
        assert!(password_matches(&d, &entry("$y$j9T$salt$hash", 20_000)));
        // Each part of the entry counts, and no entry is not an empty one.
        assert!(!password_matches(&d, &entry("$y$j9T$salt$hasH", 20_000)));
        assert!(!password_matches(&d, &entry("!$y$j9T$salt$hash", 20_000)));
        assert!(!password_matches(&d, &entry("$y$j9T$salt$hash", 20_001)));
        assert!(!password_matches(&d, &Password::NoEntry));
        let none = password_digest(&OsRandom, &Password::NoEntry).unwrap();
        assert!(password_matches(&none, &Password::NoEntry));
        assert!(!password_matches(&none, &entry("", -1)));
        // The key is random: two digests of one password differ, and the
        // bare hash is in neither.
        let again = password_digest(&OsRandom, &p).unwrap();
        assert_ne!(d, again);
        assert!(!d
            .windows(DIGEST_LEN)
            .any(|w| w == Sha256::digest(b"$y$j9T$salt$hash").as_slice()));
        // What is not a digest matches nothing.
        assert!(!password_matches(b"", &p));
        assert!(!password_matches(&d[..DIGEST_KEY_LEN + DIGEST_LEN - 1], &p));
    }

    #[test]
    fn a_use_under_another_password_ends_the_trust() {
        let c = crate::store::testing::connection();
        crate::rules::bookkeeping::ensure(&c, "u", 0).unwrap();
        let device = Presented::for_tests("u");
        let old = entry("$y$old", 20_000);
        let digest = password_digest(&OsRandom, &old).unwrap();
        trust(&c, "u", "0000aaaa", &device, &digest, 10, 1_000).unwrap();
        assert_eq!(
            use_trusted(&c, "u", &device, &old, 20).unwrap(),
            Use::Trusted("0000aaaa".into())
        );
        assert_eq!(list(&c, "u", 20).unwrap()[0].last_used, 20);
        // Another device of the user is not touched.
        let other = Presented::for_tests("other");
        trust(&c, "u", "1111bbbb", &other, &digest, 10, 1_000).unwrap();
        assert_eq!(
            use_trusted(&c, "u", &device, &entry("$y$new", 20_001), 30).unwrap(),
            Use::Ended {
                id: "0000aaaa".into(),
                why: Ended::PasswordChanged
            }
        );
        assert_eq!(
            use_trusted(&c, "u", &device, &old, 40).unwrap(),
            Use::NotTrusted,
            "ended, not skipped"
        );
        assert_eq!(count(&c, "u", 40).unwrap(), 1);
        // A row with no digest (none recorded) is ended at its use.
        trust(&c, "u", "2222cccc", &device, b"", 50, 1_000).unwrap();
        assert!(matches!(
            use_trusted(&c, "u", &device, &old, 60).unwrap(),
            Use::Ended { .. }
        ));
        // Expired: not trusted, whatever the password.
        assert_eq!(
            use_trusted(&c, "u", &other, &old, 1_000).unwrap(),
            Use::NotTrusted
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// A key blob as sshd reports it: the type as an SSH string, then the
    /// key's bytes.
    fn blob(kind: &str, key: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(key);
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// `SSH_AUTH_INFO_0` is what the module read from the PAM
        /// environment: any text is read without a panic, and a key is
        /// only ever one whose blob names its own type.
        #[test]
        fn ssh_auth_info_any_text(text in ".{0,300}") {
            if let Some((kind, bytes)) = ssh_key(&text) {
                let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                prop_assert_eq!(&bytes[4..4 + len], kind.as_bytes());
            }
        }

        /// Well-formed lines among others: the first publickey line's key
        /// is found, whatever surrounds it; a blob that names another type
        /// is refused.
        #[test]
        fn ssh_auth_info_shaped_lines(
            before in "(password|keyboard-interactive)?( [a-z]{0,8})?",
            kind in r"(ssh-ed25519|ecdsa-sha2-nistp256|sk-ssh-ed25519@openssh\.com)",
            key in proptest::collection::vec(any::<u8>(), 0..64),
            lie in any::<bool>(),
        ) {
            let named = if lie { "ssh-rsa" } else { kind.as_str() };
            let encoded = STANDARD.encode(blob(named, &key));
            let text = format!("{before}\npublickey {kind} {encoded}\npublickey ssh-rsa AAAA\n");
            let found = ssh_key(&text);
            if lie {
                prop_assert!(found.is_none());
            } else {
                prop_assert_eq!(found, Some((kind.clone(), blob(&kind, &key))));
            }
        }
    }
}
