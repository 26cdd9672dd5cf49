//! Randomness, injected so that tests can make it predictable.

/// A source of random bytes. The daemon uses the OS source; tests may use a
/// seeded one.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

#[derive(Debug, thiserror::Error)]
#[error("the OS random source failed: {0}")]
pub struct RandomError(String);

/// `getrandom(2)`.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::getrandom(buf).map_err(|e| RandomError(e.to_string()))
    }
}

/// A random identifier of 128 bits in hex (session and enrolment ids).
pub fn token(rng: &dyn Random) -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)?;
    Ok(hex::encode(b))
}
