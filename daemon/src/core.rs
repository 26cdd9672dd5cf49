//! What every part of the daemon shares: configuration, the store, time,
//! randomness, the user database, password checks and the audit log.

use crate::accounts;
use crate::audit::{Audit, Event};
use crate::backup_codes::{Code, Hasher};
use crate::clock::Clock;
use crate::config::Config;
use crate::random::Random;
use crate::ratelimit::{self, Gate};
use crate::reauth::Reauth;
use crate::store::Store;
use crate::users::Users;
use std::sync::Arc;
use tokio::sync::Semaphore;
use twofactor_proto::error::Error;
use twofactor_proto::names::MAX_PASSWORD_BYTES;
use zeroize::Zeroizing;

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

impl Core {
    /// Checks `user`'s account password again through PAM
    /// (`twofactor-reauth`). Wrong passwords count toward the account's
    /// failure limit, which is checked first.
    pub async fn check_password(
        &self,
        user: &str,
        password: Zeroizing<Vec<u8>>,
        action: &str,
    ) -> Result<(), Error> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidInput("the password is too long".into()));
        }
        let now = self.clock.now();
        let u = user.to_string();
        let gate = self
            .store
            .run(move |c| ratelimit::gate(c, &u, now))
            .await
            .map_err(|e| self.internal(action, &e.to_string()))?;
        if let Gate::Wait(s) = gate {
            return Err(Error::RateLimited(format!(
                "too many failed attempts; try again in {s} seconds"
            )));
        }
        let _slot = self
            .reauth_slots
            .acquire()
            .await
            .map_err(|e| self.internal(action, &e.to_string()))?;
        let reauth = self.reauth.clone();
        let u = user.to_string();
        let checked = tokio::task::spawn_blocking(move || reauth.check(&u, &password))
            .await
            .map_err(|e| self.internal(action, &e.to_string()))?;
        match checked {
            Ok(true) => Ok(()),
            Ok(false) => {
                let limits = self.config.limits.clone();
                let now = self.clock.now();
                let u = user.to_string();
                let lock = self
                    .store
                    .run(move |c| {
                        accounts::ensure(c, &u, now)?;
                        ratelimit::record_failure(c, &u, now, &limits)
                    })
                    .await
                    .map_err(|e| self.internal(action, &e.to_string()))?;
                self.audit.log(Event::ReauthFailure { user, action });
                if let Some(seconds) = lock {
                    self.audit.log(Event::Lockout { user, seconds });
                }
                Err(Error::BadPassword("wrong password".into()))
            }
            Err(e) => {
                self.internal(action, &e.to_string());
                Err(Error::Internal("the password could not be checked".into()))
            }
        }
    }

    /// One argon2 verification of a backup or recovery code, on a blocking
    /// thread, at most `HASH_SLOTS` at once. Any failure is "no".
    pub async fn verify_code(self: &Arc<Self>, code: Code, hash: String) -> bool {
        let Ok(_slot) = self.hash_slots.acquire().await else {
            return false;
        };
        let core = self.clone();
        tokio::task::spawn_blocking(move || core.hasher.verify(&code, &hash))
            .await
            .unwrap_or(false)
    }

    /// The argon2 hash of one code, like [`Core::verify_code`].
    pub async fn hash_code(self: &Arc<Self>, code: &Code) -> Result<String, String> {
        let _slot = self.hash_slots.acquire().await.map_err(|e| e.to_string())?;
        let core = self.clone();
        let code = code.clone();
        tokio::task::spawn_blocking(move || core.hasher.hash(&code, core.rng.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Runs a name-service look-up (passwd, groups: possibly LDAP or SSSD)
    /// on a blocking thread, so that a slow directory never stalls the
    /// async workers that serve every other login.
    pub async fn lookup<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Users) -> T + Send + 'static,
    {
        let users = self.users.clone();
        tokio::task::spawn_blocking(move || f(users.as_ref()))
            .await
            .map_err(|e| self.internal("name-service", &e.to_string()))
    }

    /// The account `name` stands for, as (canonical name, uid); see
    /// [`Users::canonical`].
    pub async fn resolve(&self, name: &str) -> Result<Option<(String, u32)>, Error> {
        let name = name.to_string();
        self.lookup(move |users| users.canonical(&name)).await
    }

    /// Audits an internal failure and returns the error the caller sees
    /// (which never carries the details).
    pub fn internal(&self, context: &str, error: &str) -> Error {
        self.audit.log(Event::Error { context, error });
        Error::Internal("the daemon could not complete the request; nothing was changed".into())
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
