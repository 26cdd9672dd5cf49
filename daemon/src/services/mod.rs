//! The capabilities the D-Bus faces are handed, each with one owner: the
//! hashing pool, password re-checks, the outbox (mail and notices, sent
//! after the commit) and the user directory. [`Handles`] is how the daemon
//! (`main.rs`) and the tests wire them once; each face keeps only the
//! handles it uses.

pub mod directory;
pub mod factors;
pub mod hash_pool;
pub mod notices;
pub mod outbox;
pub mod passwords;

use crate::adapters::argon2id::Hasher;
use crate::adapters::nss::Users;
use crate::adapters::pam_reauth::Reauth;
use crate::adapters::smtp::Mailer;
use crate::adapters::syslog::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::random::Random;
use crate::store::Store;
use directory::Directory;
use factors::Factors;
use hash_pool::HashPool;
use outbox::Outbox;
use passwords::{Passwords, StoreTally};
use std::sync::Arc;

/// Who called, as the kernel says: the uid of the calling process (from
/// the bus daemon's credentials of its connection, or `SO_PEERCRED` of a
/// connection to the login socket), the connection it called on, and,
/// for a root caller acting for a user (`su`, `sudo`), that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// The connection: a unique bus name (`:1.42`), or `@N` for the Nth
    /// connection to the login socket. Never reused while the daemon runs.
    pub connection: String,
    /// For a root caller: the user it was started by (the real uid of a
    /// setuid program, else the audit login uid), when that is not root.
    /// None for other callers: their `uid` is who they are.
    pub invoker: Option<u32>,
    /// At a fleet's verifier: the host the call came from and what that
    /// host's system says of the caller. None for a caller of this machine.
    pub on_host: Option<Arc<HostCaller>>,
}

/// A caller on a fleet's host, as the host reports it (its kernel's uid is
/// `Caller::uid`). The verifier trusts the host's word for who is calling
/// only as far as `docs/fleet.md` says: a change to an account still needs
/// that account's second factor, checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCaller {
    /// The registered host.
    pub host: String,
    /// The caller's user name on that host (None: its uid has no name
    /// there).
    pub name: Option<String>,
}

impl Caller {
    /// The user a login this caller starts is charged to, for the quotas
    /// on logins in progress: the caller itself, or the user a root
    /// caller acts for; None for root acting for no user (sshd, login).
    pub fn charged_user(&self) -> Option<u32> {
        if self.uid != 0 {
            Some(self.uid)
        } else {
            self.invoker
        }
    }
}

/// Everything the faces may be handed, made once.
#[derive(Clone)]
pub struct Handles {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Random>,
    pub audit: Arc<Audit>,
    /// This machine's name, recorded with each account's last login (a
    /// store may be shared by many hosts).
    pub host: Arc<str>,
    pub hashing: Arc<HashPool>,
    /// The one code-checking path (logins and confirmed changes).
    pub factors: Arc<Factors>,
    pub passwords: Arc<Passwords>,
    pub outbox: Arc<Outbox>,
    pub directory: Directory,
}

/// The outside world the handles are made over.
pub struct Outside {
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Random>,
    pub users: Arc<dyn Users>,
    pub reauth: Arc<dyn Reauth>,
    pub mailer: Arc<dyn Mailer>,
    pub audit: Arc<Audit>,
}

impl Handles {
    pub fn new(config: Config, store: Store, outside: Outside) -> Self {
        let Outside {
            clock,
            rng,
            users,
            reauth,
            mailer,
            audit,
        } = outside;
        let config = Arc::new(config);
        let hashing = Arc::new(HashPool::new(Hasher::owasp(), rng.clone()));
        let host: Arc<str> = crate::config::hostname().into();
        Handles {
            factors: Arc::new(Factors::new(
                config.clone(),
                store.clone(),
                clock.clone(),
                (hashing.clone(), audit.clone()),
            )),
            hashing,
            passwords: Arc::new(Passwords::new(
                reauth,
                Arc::new(StoreTally::new(
                    store.clone(),
                    clock.clone(),
                    config.limits.clone(),
                    audit.clone(),
                )),
                audit.clone(),
            )),
            outbox: Arc::new(Outbox::new(
                mailer,
                config.email.clone(),
                store.clone(),
                clock.clone(),
                rng.clone(),
                audit.clone(),
            )),
            directory: Directory::new(users, store.clone(), audit.clone()),
            host,
            config,
            store,
            clock,
            rng,
            audit,
        }
    }
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::adapters::nss::testing::FakeUsers;
    use crate::adapters::pam_reauth::testing::FakeReauth;
    use crate::clock::ManualClock;
    use crate::random::OsRandom;

    /// Handles on an in-memory store with the given users (name, uid) and
    /// passwords (name, password), sending mail through `mailer`; audit
    /// lines are captured, not logged.
    pub fn handles(
        config: Config,
        clock: &ManualClock,
        users: &[(&str, u32)],
        passwords: &[(&str, &str)],
        mailer: Arc<dyn Mailer>,
    ) -> Handles {
        let users = Arc::new(FakeUsers::new(users));
        handles_over(config, clock, users, passwords, mailer)
    }

    /// [`handles`] over a table of users the caller keeps (to change a
    /// user's shadow entry).
    pub fn handles_over(
        config: Config,
        clock: &ManualClock,
        users: Arc<FakeUsers>,
        passwords: &[(&str, &str)],
        mailer: Arc<dyn Mailer>,
    ) -> Handles {
        Handles::new(
            config,
            Store::open_in_memory().expect("in-memory store"),
            Outside {
                clock: Arc::new(clock.clone()),
                rng: Arc::new(OsRandom),
                users,
                reauth: Arc::new(FakeReauth::new(passwords)),
                mailer,
                audit: Arc::new(Audit::new(false, false)),
            },
        )
    }
}
