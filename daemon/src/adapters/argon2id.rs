//! argon2id, the hash of backup and recovery codes at rest: hashing and
//! verifying a code's bytes. The pool that bounds how many run at once is
//! `services::hash_pool`.

use crate::random::Random;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};

/// Hashes and checks single-use codes (argon2id), and counts verifications (the cost bound is
/// tested, not assumed).
pub struct Hasher {
    params: Params,
    verifications: AtomicU64,
}

impl Hasher {
    /// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    pub fn owasp() -> Hasher {
        Hasher::with_params(19 * 1024, 2, 1)
    }

    /// Other parameters (unit tests of logic that hash many codes).
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Hasher {
        let params = Params::new(m_kib, t, p, None).unwrap_or_default();
        Hasher {
            params,
            verifications: AtomicU64::new(0),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// PHC string `$argon2id$v=19$m=19456,t=2,p=1$salt$hash`.
    pub fn hash(&self, secret: &[u8], rng: &dyn Random) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
        self.argon2()
            .hash_password(secret, &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// One argon2 verification (parameters from the stored hash).
    pub fn verify(&self, secret: &[u8], phc: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match PasswordHash::new(phc) {
            Ok(hash) => Argon2::default().verify_password(secret, &hash).is_ok(),
            Err(_) => false,
        }
    }

    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("hashing failed: {0}")]
pub struct HashError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn hashes_are_argon2id_owasp_salted_and_verify() {
        let h = Hasher::owasp();
        let code = b"abcdefghjkmn";
        let a = h.hash(code, &OsRandom).unwrap();
        let b = h.hash(code, &OsRandom).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("abcd"));
        assert!(h.verify(code, &a));
        assert!(!h.verify(b"abcdefghjkmp", &a));
        assert!(!h.verify(code, "not a hash"));
        assert_eq!(h.verifications(), 3);
    }
}
