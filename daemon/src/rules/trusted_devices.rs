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

use crate::config::DevicesConfig;
use crate::origin::Origin;
use crate::params;
use crate::random::{Random, RandomError};
use crate::store::{Db, DbResult};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use twofactor_proto::types::Device;

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

/// Trusts `presented` for `user` until `expires` (replacing an earlier
/// trust of the same device).
pub fn trust(
    conn: &Db,
    user: &str,
    id: &str,
    presented: &Presented,
    now: i64,
    expires: i64,
) -> DbResult<()> {
    if let Some(old) = trusted(conn, user, presented, i64::MIN)? {
        remove(conn, user, &old)?;
    }
    conn.execute(
        "INSERT INTO devices(id, username, identity, label, address, added, last_used, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
        params![
            id,
            user,
            conn.seal(user, "devices.identity", &presented.identity)?,
            conn.seal(user, "devices.label", presented.label.as_bytes())?,
            conn.seal(user, "devices.address", presented.address.as_bytes())?,
            now,
            expires
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

/// Ends every trust of `user` (their methods changed, a reset, `remove
/// --all`); returns how many devices were trusted.
pub fn remove_all(conn: &Db, user: &str) -> DbResult<u32> {
    Ok(conn.execute("DELETE FROM devices WHERE username = ?1", [user])? as u32)
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
