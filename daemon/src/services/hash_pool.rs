//! The hashing pool: every argon2 computation of the daemon (backup and
//! recovery codes) runs here, on a blocking thread, at most [`SLOTS`] at
//! once (19 MiB each), so that a flood of code attempts can neither starve
//! the async workers nor exhaust memory.

use crate::adapters::argon2id::Hasher;
use crate::random::Random;
use crate::rules::backup_codes::{self, Code};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// argon2 computations that may run at once.
pub const SLOTS: usize = 2;

pub struct HashPool {
    hasher: Hasher,
    slots: Semaphore,
    rng: Arc<dyn Random>,
    /// The hash of a code no one has, verified when an attempt matches no
    /// stored code, so that every attempt costs one argon2.
    decoy: OnceLock<String>,
}

impl HashPool {
    pub fn new(hasher: Hasher, rng: Arc<dyn Random>) -> Self {
        HashPool {
            hasher,
            slots: Semaphore::new(SLOTS),
            rng,
            decoy: OnceLock::new(),
        }
    }

    /// The hasher itself, for synchronous work that is already off the
    /// async workers (tests, counting verifications).
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// One verification of `code` against `hash`. Any failure is "no".
    pub async fn verify(self: &Arc<Self>, code: Code, hash: String) -> bool {
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.hasher.verify(code.secret(), &hash))
            .await
            .unwrap_or(false)
    }

    /// The same work as [`HashPool::verify`] for an attempt that matched
    /// no stored code (its selector is nobody's): the answer takes as long
    /// as for a code whose selector exists, so timing does not tell which
    /// selectors exist. Always false.
    pub async fn verify_decoy(self: &Arc<Self>, code: Code) -> bool {
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let pool = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(hash) = pool.decoy_hash() {
                pool.hasher.verify(code.secret(), hash);
            }
        })
        .await;
        false
    }

    /// The decoy hash, made on first use (the daemon makes it at start, so
    /// no attempt pays for it).
    pub fn decoy_hash(&self) -> Option<&str> {
        if let Some(h) = self.decoy.get() {
            return Some(h);
        }
        let code = backup_codes::generate_set(self.rng.as_ref())
            .ok()?
            .into_iter()
            .next()?;
        let hash = self.hasher.hash(code.secret(), self.rng.as_ref()).ok()?;
        Some(self.decoy.get_or_init(|| hash))
    }

    /// The hash of one code.
    pub async fn hash(self: &Arc<Self>, code: &Code) -> Result<String, String> {
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let pool = self.clone();
        let code = code.clone();
        tokio::task::spawn_blocking(move || pool.hasher.hash(code.secret(), pool.rng.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// A new set of backup codes with its (selector, hash) rows, hashed in
    /// one slot.
    pub async fn new_set(self: &Arc<Self>) -> Result<(Vec<Code>, Vec<(String, String)>), String> {
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let codes = backup_codes::generate_set(pool.rng.as_ref()).map_err(|e| e.to_string())?;
            let mut hashed = Vec::with_capacity(codes.len());
            for code in &codes {
                let hash = pool
                    .hasher
                    .hash(code.secret(), pool.rng.as_ref())
                    .map_err(|e| e.to_string())?;
                hashed.push((code.selector().to_string(), hash));
            }
            Ok((codes, hashed))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
