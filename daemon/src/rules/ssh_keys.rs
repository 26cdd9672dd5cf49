//! Security-key SSH keys as a method: an OpenSSH security-key public key
//! (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`)
//! that a user registered. An SSH login that proved one of them
//! (`SSH_AUTH_INFO_0`, read as trusted devices read it: only from the
//! services `[devices] ssh_services` names, and only a root caller's) is
//! the second factor, while sshd requires a touch for every key (checked
//! by the caller, `adapters::sshd`): the secret stays in the token and the
//! touch is the user's presence. Never asked at a prompt: a user whose
//! only method this is types a backup code elsewhere.
//!
//! Table `ssh_keys` (migration 12): per user, a short random id, the
//! identity (SHA-256 over the key blob) and the label shown to the user
//! (type and fingerprint), both sealed; when it was added and last used.

use crate::config::Config;
use crate::origin::Origin;
use crate::params;
use crate::rules::trusted_devices;
use crate::store::{Db, DbResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use twofactor_proto::types::SshKey;

/// The OpenSSH key types whose secret is in a security key.
pub const SK_TYPES: [&str; 2] = [
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The longest public key line taken (OpenSSH's are under 1 KiB).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// A security-key public key: its type and its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kind: String,
    pub blob: Vec<u8>,
}

impl Key {
    /// What is stored to recognise the key (sealed).
    pub fn identity(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ssh-key\0");
        h.update(&self.blob);
        h.finalize().into()
    }

    /// What the user sees: the type and OpenSSH's fingerprint.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, trusted_devices::fingerprint(&self.blob))
    }
}

/// What a security-key SSH key is for the FIDO2 side: the same credential
/// serves local logins, with the relying party OpenSSH gave it (its
/// "application", `ssh:` by default), as pam_u2f's SSH credentials do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FidoParts {
    /// COSE algorithm: -8 (Ed25519) or -7 (ECDSA P-256).
    pub alg: i32,
    /// As libfido2 takes it: 32 bytes (Ed25519) or x‖y (P-256).
    pub public_key: Vec<u8>,
    /// The relying party (`ssh:` or `ssh:…`).
    pub application: String,
}

impl Key {
    /// The key's FIDO2 parts, read from its blob (`sk-ssh-ed25519`:
    /// type, key, application; `sk-ecdsa-sha2-nistp256`: type, curve,
    /// point, application); None when the blob is not that, or the
    /// application is not OpenSSH's (`ssh:`…).
    pub fn fido_parts(&self) -> Option<FidoParts> {
        let mut r = SshReader(&self.blob);
        let kind = r.string()?;
        let (alg, public_key) = match kind {
            b"sk-ssh-ed25519@openssh.com" => {
                let pk = r.string()?;
                (pk.len() == 32).then_some(())?;
                (-8, pk.to_vec())
            }
            b"sk-ecdsa-sha2-nistp256@openssh.com" => {
                (r.string()? == b"nistp256").then_some(())?;
                let q = r.string()?;
                // Uncompressed: 0x04, x, y.
                (q.len() == 65 && q.first() == Some(&4)).then_some(())?;
                (-7, q.get(1..)?.to_vec())
            }
            _ => return None,
        };
        let application = std::str::from_utf8(r.string()?).ok()?.to_string();
        if !application.starts_with("ssh:") || application.len() > 128 || !r.0.is_empty() {
            return None;
        }
        Some(FidoParts {
            alg,
            public_key,
            application,
        })
    }
}

/// SSH wire strings (a 4-byte big-endian length, then the bytes).
struct SshReader<'a>(&'a [u8]);

impl<'a> SshReader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let s = self.0.get(4..4usize.checked_add(len)?)?;
        self.0 = self.0.get(4 + len..)?;
        Some(s)
    }
}

/// The longest key handle taken (OpenSSH's own limit is 255 bytes).
pub const MAX_KEY_HANDLE_BYTES: usize = 255;

/// Why a public key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAKey {
    #[error("the public key is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error(
        "not an OpenSSH public key line (TYPE BASE64 [COMMENT], as in a .pub file; \
         authorized_keys options are not taken)"
    )]
    Malformed,
    #[error(
        "{0} is not a security-key type: make one with `ssh-keygen -t ed25519-sk` (or \
         ecdsa-sk) and give its .pub file"
    )]
    NotSecurityKey(String),
}

/// Reads the first key line of a `.pub` file's text (`TYPE BASE64
/// [COMMENT]`; empty lines and `#` comments skipped).
pub fn parse_public_key(text: &str) -> Result<Key, NotAKey> {
    if text.len() > MAX_LINE_BYTES {
        return Err(NotAKey::TooLong);
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(NotAKey::Malformed)?;
    let mut words = line.split_whitespace();
    let (kind, blob) = (
        words.next().ok_or(NotAKey::Malformed)?,
        words.next().ok_or(NotAKey::Malformed)?,
    );
    // The same reading as SSH_AUTH_INFO_0's: the blob names its own type.
    let (kind, blob) =
        trusted_devices::ssh_key(&format!("publickey {kind} {blob}")).ok_or(NotAKey::Malformed)?;
    if !SK_TYPES.contains(&kind.as_str()) {
        return Err(NotAKey::NotSecurityKey(kind));
    }
    Ok(Key { kind, blob })
}

/// The security key a login proved to sshd, if any: from the services
/// named as sshd only, when the method is on. Whether the caller may
/// present it (root) is the caller's to check.
pub fn presented(config: &Config, origin: &Origin) -> Option<Key> {
    if !config.keys.ssh
        || !config
            .devices
            .ssh_services
            .iter()
            .any(|s| s == &origin.service)
    {
        return None;
    }
    let (kind, blob) = trusted_devices::ssh_key(&origin.ssh_auth_info)?;
    SK_TYPES
        .contains(&kind.as_str())
        .then_some(Key { kind, blob })
}

/// Registers `key` for `user` as `id`; false when it is registered
/// already (nothing written).
pub fn add(conn: &Db, user: &str, id: &str, key: &Key, now: i64) -> DbResult<bool> {
    if find(conn, user, key)?.is_some() {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO ssh_keys(id, username, identity, label, added, last_used)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        params![
            id,
            user,
            conn.seal(user, "ssh_keys.identity", &key.identity())?,
            conn.seal(user, "ssh_keys.label", key.label().as_bytes())?,
            now
        ],
    )?;
    Ok(true)
}

/// The id of `user`'s registered key that `key` is, if any.
pub fn find(conn: &Db, user: &str, key: &Key) -> DbResult<Option<String>> {
    let wanted = key.identity();
    let rows = conn.query_map(
        "SELECT id, identity FROM ssh_keys WHERE username = ?1",
        params![user],
        |r| Ok((r.get::<String>(0)?, r.get::<Vec<u8>>(1)?)),
    )?;
    for (id, sealed) in rows {
        let identity = conn.unseal(user, "ssh_keys.identity", &sealed)?;
        if bool::from(identity.as_slice().ct_eq(&wanted)) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Records a login by key `id`.
pub fn used(conn: &Db, user: &str, id: &str, now: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE ssh_keys SET last_used = ?3 WHERE username = ?1 AND id = ?2",
        params![user, id, now],
    )
    .map(|_| ())
}

/// `user`'s keys, oldest first.
pub fn list(conn: &Db, user: &str) -> DbResult<Vec<SshKey>> {
    crate::rules::security_keys::keys_in(conn, user, "ssh_keys")
}

/// Whether `user` has a registered key.
pub fn is_enrolled(conn: &Db, user: &str) -> DbResult<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM ssh_keys WHERE username = ?1",
        params![user],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Removes every key of `user`; false if there was none.
pub fn remove(conn: &Db, user: &str) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM ssh_keys WHERE username = ?1", params![user])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::bookkeeping;

    /// Real keys from `ssh-keygen -t ed25519-sk` / `ecdsa-sk` (OpenSSH's
    /// software authenticator) and `-t ed25519`.
    const ED25519_SK: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAILCAfqJ3OIcQPZhZZLDTYVJr8r3WmEv+1PYJD/9wPY4DAAAABHNzaDo= alice@host";
    const ECDSA_SK: &str = "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBOvoMM7c5Idxff3J2BPcy3wm4JzMEmlhOeCW/gOLnBZdKoQvcpDJwdY2D7gu61xQPal+Ie/whugLx7gzugPQ3IcAAAAEc3NoOg== alice@host";
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/sLfMSIovGNKb03P/EaP2TlAsCZVxP8VXeVtxnr172 x";

    fn key(line: &str) -> Key {
        parse_public_key(line).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_security_key_lines_are_taken() {
        assert_eq!(key(ED25519_SK).kind, SK_TYPES[0]);
        assert_eq!(key(&format!("# mine\n\n  {ECDSA_SK}\n")).kind, SK_TYPES[1]);
        assert!(key(ED25519_SK)
            .label()
            .starts_with("sk-ssh-ed25519@openssh.com SHA256:"));
        assert!(matches!(
            parse_public_key(ED25519),
            Err(NotAKey::NotSecurityKey(k)) if k == "ssh-ed25519"
        ));
        for bad in [
            "",
            "# only a comment",
            "sk-ssh-ed25519@openssh.com",
            "sk-ssh-ed25519@openssh.com !!!notbase64",
            // options before the type, as in authorized_keys
            &format!("no-touch-required {ED25519_SK}"),
            // a blob of another type under this type's name
            &ECDSA_SK.replacen("sk-ecdsa-sha2-nistp256", "sk-ssh-ed25519", 1),
        ] {
            assert!(parse_public_key(bad).is_err(), "{bad:?}");
        }
        let long = format!("{ED25519_SK} {}", "c".repeat(MAX_LINE_BYTES));
        assert_eq!(parse_public_key(&long), Err(NotAKey::TooLong));
    }

    #[test]
    fn presented_only_from_sshd_and_only_a_security_key() {
        let config = Config::default();
        let blob = ED25519_SK.split(' ').nth(1).unwrap_or_default();
        let origin = |service: &str, info: String| Origin {
            user: "alice".into(),
            service: service.into(),
            ssh_auth_info: info,
            ..Origin::default()
        };
        let info = format!("publickey sk-ssh-ed25519@openssh.com {blob}\n");
        assert_eq!(
            presented(&config, &origin("sshd", info.clone())),
            Some(key(ED25519_SK))
        );
        assert_eq!(presented(&config, &origin("su", info.clone())), None);
        let mut off = Config::default();
        off.keys.ssh = false;
        assert_eq!(presented(&off, &origin("sshd", info)), None);
        let plain = ED25519.split(' ').nth(1).unwrap_or_default();
        let info = format!("publickey ssh-ed25519 {plain}\n");
        assert_eq!(presented(&config, &origin("sshd", info)), None);
    }

    #[test]
    fn a_keys_fido_parts_are_read_from_its_blob() {
        let ed = key(ED25519_SK).fido_parts().unwrap();
        assert_eq!((ed.alg, ed.public_key.len()), (-8, 32));
        assert_eq!(ed.application, "ssh:");
        let ec = key(ECDSA_SK).fido_parts().unwrap();
        assert_eq!((ec.alg, ec.public_key.len()), (-7, 64));
        assert_eq!(ec.application, "ssh:");
        // A blob cut short, or with more after the application: none.
        let mut k = key(ED25519_SK);
        k.blob.pop();
        assert_eq!(k.fido_parts(), None);
        let mut k = key(ED25519_SK);
        k.blob.push(0);
        assert_eq!(k.fido_parts(), None);
        // An application OpenSSH would not have made.
        let mut k = key(ED25519_SK);
        let n = k.blob.len();
        k.blob[n - 4..].copy_from_slice(b"web:");
        assert_eq!(k.fido_parts(), None);
    }

    #[test]
    fn keys_are_added_once_found_listed_and_removed() {
        let c = crate::store::testing::connection();
        bookkeeping::ensure(&c, "alice", 0).unwrap();
        let (a, b) = (key(ED25519_SK), key(ECDSA_SK));
        assert!(!is_enrolled(&c, "alice").unwrap());
        assert!(add(&c, "alice", "0000000a", &a, 10).unwrap());
        assert!(!add(&c, "alice", "0000000b", &a, 11).unwrap(), "twice");
        assert!(add(&c, "alice", "0000000b", &b, 12).unwrap());
        assert_eq!(find(&c, "alice", &b).unwrap().as_deref(), Some("0000000b"));
        assert_eq!(find(&c, "bob", &b).unwrap(), None, "another user's");
        used(&c, "alice", "0000000b", 20).unwrap();
        let listed = list(&c, "alice").unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].label, a.label());
        assert_eq!((listed[1].added, listed[1].last_used), (12, 20));
        assert!(is_enrolled(&c, "alice").unwrap());
        assert!(remove(&c, "alice").unwrap());
        assert!(!is_enrolled(&c, "alice").unwrap());
        assert!(!remove(&c, "alice").unwrap());
    }
}
