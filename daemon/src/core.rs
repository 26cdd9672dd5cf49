//! What every part of the daemon shares: configuration, the store, time,
//! randomness, the user database, password checks and the audit log.

use crate::audit::Audit;
use crate::backup_codes::Hasher;
use crate::clock::Clock;
use crate::config::Config;
use crate::random::Random;
use crate::reauth::Reauth;
use crate::store::Store;
use crate::users::Users;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Password checks that may run at once (each holds a blocking thread and
/// pam_unix delays failures).
const REAUTH_SLOTS: usize = 4;
/// argon2 computations that may run at once (19 MiB each).
const HASH_SLOTS: usize = 2;

pub struct Core {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Random>,
    pub users: Arc<dyn Users>,
    pub reauth: Arc<dyn Reauth>,
    pub audit: Arc<Audit>,
    pub reauth_slots: Semaphore,
    pub hasher: Hasher,
    pub hash_slots: Semaphore,
}

impl Core {
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        users: Arc<dyn Users>,
        reauth: Arc<dyn Reauth>,
        audit: Arc<Audit>,
    ) -> Self {
        Core {
            config,
            store,
            clock,
            rng,
            users,
            reauth,
            audit,
            reauth_slots: Semaphore::new(REAUTH_SLOTS),
            hasher: Hasher::owasp(),
            hash_slots: Semaphore::new(HASH_SLOTS),
        }
    }
}

/// Who called, as the bus says: the uid from the bus daemon's credentials
/// and the caller's unique connection name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub bus_name: String,
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::clock::ManualClock;
    use crate::random::OsRandom;
    use crate::reauth::testing::FakeReauth;
    use crate::users::testing::FakeUsers;

    /// A core on an in-memory store with the given users (name, uid) and
    /// passwords (name, password); audit lines are captured, not logged.
    pub fn core(
        config: Config,
        clock: &ManualClock,
        users: &[(&str, u32)],
        passwords: &[(&str, &str)],
    ) -> (Arc<Core>, Arc<Audit>) {
        let audit = Arc::new(Audit::new(false, false));
        let core = Arc::new(Core::new(
            config,
            Store::open_in_memory().expect("in-memory store"),
            Arc::new(clock.clone()),
            Arc::new(OsRandom),
            Arc::new(FakeUsers::new(users)),
            Arc::new(FakeReauth::new(passwords)),
            audit.clone(),
        ));
        (core, audit)
    }
}
