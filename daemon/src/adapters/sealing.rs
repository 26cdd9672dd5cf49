//! Secrets at rest: every secret column (an app's TOTP secret, a pending
//! enrolment's secret, a backup code's selector and hash) is sealed with
//! XChaCha20-Poly1305 under a key kept outside the database, in a root-only
//! key file. The user and the column are bound as associated data, so a
//! sealed value copied to another user's row or another column does not
//! open. A copy of the database without the key file yields nothing usable.
//!
//! The store registers two SQL functions on its connection, so that the
//! rules never handle keys: `seal(user, column, value)` and
//! `unseal(user, column, value)`. A value that does not open is an error,
//! and the request fails (closed).
//!
//! A sealed value: `"TF"`, version 1, the key id (4 bytes), a random
//! 24-byte nonce, the ciphertext with its 16-byte tag.
//!
//! The key file holds one key per line, `KEYID KEY` in hex (8 and 64
//! digits). The first line seals; every line opens. Rotation
//! ([`rotate`]) writes the new key first, re-seals everything, then drops
//! the old keys.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const MAGIC: &[u8; 3] = b"TF\x01";
const ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + ID_LEN + NONCE_LEN;
const KEY_LEN: usize = 32;
/// Keys a file may hold (the current one and those being rotated out).
const MAX_KEYS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{path}: {message}")]
    KeyFile { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the random source failed: {0}")]
    Random(String),
    #[error("a sealed value is damaged or was sealed with a key this daemon does not have")]
    Open,
    #[error("a value could not be sealed")]
    Seal,
}

/// One key and its id.
struct Key {
    id: [u8; ID_LEN],
    cipher: XChaCha20Poly1305,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

/// The keys of a key file: the first seals, all open.
pub struct Keys {
    keys: Vec<Key>,
}

impl Keys {
    /// A fresh random key (a new key file, unit tests).
    pub fn generate() -> Result<Keys, SealError> {
        let mut id = [0u8; ID_LEN];
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::getrandom(&mut id).map_err(|e| SealError::Random(e.to_string()))?;
        getrandom::getrandom(bytes.as_mut()).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(Keys {
            keys: vec![Key::new(id, bytes)],
        })
    }

    /// Reads a key file: a regular file (not a symlink), owned by this
    /// process's uid, mode 0600 or stricter.
    pub fn load(path: &Path) -> Result<Keys, SealError> {
        let bad = |message: String| SealError::KeyFile {
            path: path.to_path_buf(),
            message,
        };
        let io = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(bad(format!(
                "is owned by uid {}, not by the daemon's uid {}",
                meta.uid(),
                nix::unistd::geteuid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(format!(
                "has mode {:o}; it must be 0600 (chmod 0600 {})",
                meta.permissions().mode() & 0o7777,
                path.display()
            )));
        }
        if meta.len() > 4096 {
            return Err(bad("is too large for a key file".into()));
        }
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(io)?;
        Keys::parse(&text).map_err(|(line, message)| bad(format!("line {line}: {message}")))
    }

    /// Parses the text of a key file; errors say which line and why, never
    /// the key.
    fn parse(text: &str) -> Result<Keys, (usize, String)> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(id), Some(key), None) = (words.next(), words.next(), words.next()) else {
                return Err((n + 1, "expected KEYID KEY (hex)".into()));
            };
            let mut id_bytes = [0u8; ID_LEN];
            hex::decode_to_slice(id, &mut id_bytes)
                .map_err(|_| (n + 1, "the key id is not 8 hex digits".to_string()))?;
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(key, bytes.as_mut())
                .map_err(|_| (n + 1, "the key is not 64 hex digits".to_string()))?;
            if keys.iter().any(|k: &Key| k.id == id_bytes) {
                return Err((n + 1, "the key id is used twice".into()));
            }
            keys.push(Key::new(id_bytes, bytes));
            if keys.len() > MAX_KEYS {
                return Err((n + 1, format!("more than {MAX_KEYS} keys")));
            }
        }
        if keys.is_empty() {
            return Err((0, "holds no key".into()));
        }
        Ok(Keys { keys })
    }

    /// The text of a key file for these keys.
    fn render(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(
            "# twofactord key file: the first key seals, every key opens.\n\
             # Keep it secret, back it up apart from the database.\n",
        ));
        for k in &self.keys {
            text.push_str(&hex::encode(k.id));
            text.push(' ');
            text.push_str(&Zeroizing::new(hex::encode(k.bytes.as_ref())));
            text.push('\n');
        }
        text
    }

    /// Writes a new key file at `path` (which must not exist): 0600,
    /// written and synced before it is linked in place.
    pub fn create_file(&self, path: &Path) -> Result<(), SealError> {
        write_new(path, &self.render())
    }

    /// The id of the key that seals, in hex (shown to the administrator).
    pub fn current_id(&self) -> String {
        self.keys
            .first()
            .map(|k| hex::encode(k.id))
            .unwrap_or_default()
    }

    /// Seals `plain` for `user`'s `column`.
    pub fn seal(&self, user: &str, column: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.keys.first().ok_or(SealError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let aad = associated(user, column);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `user`'s `column`.
    pub fn open(
        &self,
        user: &str,
        column: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if !is_sealed(blob) {
            return Err(SealError::Open);
        }
        let id = blob
            .get(MAGIC.len()..MAGIC.len() + ID_LEN)
            .ok_or(SealError::Open)?;
        let nonce = blob
            .get(MAGIC.len() + ID_LEN..HEADER_LEN)
            .ok_or(SealError::Open)?;
        let sealed = blob.get(HEADER_LEN..).ok_or(SealError::Open)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(SealError::Open)?;
        let aad = associated(user, column);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }

    /// These keys with a new key in front (which seals from now on).
    fn with_new_first(&self) -> Result<Keys, SealError> {
        let new = Keys::generate()?;
        let mut keys = new.keys;
        for k in &self.keys {
            keys.push(Key::new(k.id, k.bytes.clone()));
        }
        Ok(Keys { keys })
    }

    /// Only the key that seals.
    fn current_only(&self) -> Keys {
        Keys {
            keys: self
                .keys
                .first()
                .map(|k| vec![Key::new(k.id, k.bytes.clone())])
                .unwrap_or_default(),
        }
    }
}

impl Key {
    fn new(id: [u8; ID_LEN], bytes: Zeroizing<[u8; KEY_LEN]>) -> Key {
        let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(bytes.as_ref()));
        Key { id, cipher, bytes }
    }
}

/// Whether a stored value is sealed (rather than from before sealing).
pub fn is_sealed(blob: &[u8]) -> bool {
    blob.len() >= HEADER_LEN + TAG_LEN && blob.starts_with(MAGIC)
}

fn associated(user: &str, column: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + user.len() + column.len());
    aad.extend_from_slice(b"twofactor/1\0");
    aad.extend_from_slice(column.as_bytes());
    aad.push(0);
    aad.extend_from_slice(user.as_bytes());
    aad
}

/// Writes `text` to a new file at `path`: created 0600 next to it,
/// written, synced, then renamed into place (replacing an old file only
/// when `replace`), and the directory synced.
fn write_file(path: &Path, text: &str, replace: bool) -> Result<(), SealError> {
    let io = |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !replace && std::fs::symlink_metadata(path).is_ok() {
        return Err(SealError::KeyFile {
            path: path.to_path_buf(),
            message: "exists already; refusing to overwrite a key".into(),
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    if replace {
        std::fs::rename(&temp, path).map_err(io)?;
    } else {
        // Never replaces a key that appeared meanwhile.
        std::fs::hard_link(&temp, path).map_err(io)?;
        std::fs::remove_file(&temp).map_err(io)?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn write_new(path: &Path, text: &str) -> Result<(), SealError> {
    write_file(path, text, false)
}

/// The steps of a key rotation that touch the key file; the store re-seals
/// in between (see `Store::reseal`).
pub struct Rotation {
    path: PathBuf,
    /// The new key first, then the old ones: opens everything, old or new.
    pub during: std::sync::Arc<Keys>,
}

/// Starts a rotation: writes the key file with a new key in front of the
/// old ones, so that a crash at any later point leaves every value
/// openable.
pub fn rotate(path: &Path) -> Result<Rotation, SealError> {
    let old = Keys::load(path)?;
    let during = old.with_new_first()?;
    write_file(path, &during.render(), true)?;
    Ok(Rotation {
        path: path.to_path_buf(),
        during: std::sync::Arc::new(during),
    })
}

impl Rotation {
    /// Ends a rotation once every value is sealed with the new key: the
    /// old keys leave the key file.
    pub fn finish(self) -> Result<String, SealError> {
        let only = self.during.current_only();
        write_file(&self.path, &only.render(), true)?;
        Ok(only.current_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_user_and_column() {
        let k = Keys::generate().unwrap();
        let sealed = k
            .seal("alice", "totp.secret", b"12345678901234567890")
            .unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            k.open("alice", "totp.secret", &sealed).unwrap().as_slice(),
            b"12345678901234567890"
        );
        // Another user, another column, a flipped bit, another key: no.
        assert!(k.open("bob", "totp.secret", &sealed).is_err());
        assert!(k.open("alice", "totp_pending.secret", &sealed).is_err());
        let mut bent = sealed.clone();
        if let Some(b) = bent.last_mut() {
            *b ^= 1;
        }
        assert!(k.open("alice", "totp.secret", &bent).is_err());
        assert!(Keys::generate()
            .unwrap()
            .open("alice", "totp.secret", &sealed)
            .is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(
            sealed,
            k.seal("alice", "totp.secret", b"12345678901234567890")
                .unwrap()
        );
        // Legacy values are not taken for sealed ones.
        assert!(!is_sealed(b"12345678901234567890"));
        assert!(!is_sealed(b"TF\x01short"));
    }

    #[test]
    fn key_files_round_trip_and_errors_name_the_line_not_the_key() {
        let k = Keys::generate().unwrap();
        let text = k.render();
        let back = Keys::parse(&text).unwrap();
        let sealed = k.seal("u", "c", b"x").unwrap();
        assert_eq!(back.open("u", "c", &sealed).unwrap().as_slice(), b"x");
        let secret_hex = hex::encode(k.keys[0].bytes.as_ref());
        for bad in [
            String::new(),
            "# only a comment\n".to_string(),
            "0011223g ffff\n".to_string(),
            format!("00112233 {}", &secret_hex[..60]),
            format!("00112233 {secret_hex} extra"),
            format!("00112233 {secret_hex}\n00112233 {secret_hex}\n"),
        ] {
            let e = Keys::parse(&bad).err().expect("refused");
            assert!(!e.1.contains(&secret_hex[..16]), "{e:?}");
        }
    }

    #[test]
    fn key_file_is_created_once_0600_and_checked_when_loaded() {
        let dir = std::env::temp_dir().join(format!("tf-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("key");
        let k = Keys::generate().unwrap();
        k.create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            Keys::generate().unwrap().create_file(&path).is_err(),
            "no overwrite"
        );
        let loaded = Keys::load(&path).unwrap();
        assert_eq!(loaded.current_id(), k.current_id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keys::load(&path).is_err(), "readable by others");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(Keys::load(&link).is_err(), "symlink");
        // Rotation: during it both keys open; after it only the new one.
        let old_sealed = loaded.seal("u", "c", b"v").unwrap();
        let rotation = rotate(&path).unwrap();
        assert_eq!(
            rotation
                .during
                .open("u", "c", &old_sealed)
                .unwrap()
                .as_slice(),
            b"v"
        );
        assert_eq!(Keys::load(&path).unwrap().keys.len(), 2);
        let new_id = rotation.finish().unwrap();
        let after = Keys::load(&path).unwrap();
        assert_eq!(after.current_id(), new_id);
        assert_ne!(new_id, k.current_id());
        assert!(after.open("u", "c", &old_sealed).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
