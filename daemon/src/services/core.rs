//! What every part of the daemon shares: configuration, the store, time,
//! randomness, the user database, password checks and the audit log.

use crate::adapters::nss::Users;
use crate::adapters::pam_reauth::Reauth;
use crate::adapters::smtp::{self, Mail, MailError, Mailer};
use crate::adapters::syslog::{Audit, Event};
use crate::clock::Clock;
use crate::config::Config;
use crate::random::Random;
use crate::rules::backup_codes::{Code, Hasher};
use crate::rules::bookkeeping;
use crate::rules::ratelimit::{self, Gate};
use crate::store::Store;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
    /// This machine's name, recorded with each account's last login (a
    /// store may be shared by many hosts).
    pub host: String,
    /// Email codes and notices (`smtp::Disabled` unless `[email]` is on).
    pub mailer: Arc<dyn Mailer>,
    pub reauth_slots: Semaphore,
    pub hasher: Hasher,
    pub hash_slots: Semaphore,
    /// Accounts whose password is being checked right now: at most one
    /// check per account at a time.
    reauth_in_flight: Mutex<HashSet<String>>,
    /// The hash of a code no one has, verified when an attempt matches no
    /// stored code, so that every attempt costs one argon2.
    decoy: std::sync::OnceLock<String>,
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
            host: crate::config::hostname(),
            mailer: Arc::new(smtp::Disabled),
            reauth_slots: Semaphore::new(REAUTH_SLOTS),
            hasher: Hasher::owasp(),
            hash_slots: Semaphore::new(HASH_SLOTS),
            reauth_in_flight: Mutex::new(HashSet::new()),
            decoy: std::sync::OnceLock::new(),
        }
    }
}

impl Core {
    /// The same core, sending mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Sends `mail` off the async workers, giving up after the configured
    /// timeout (the relay's own timeout should have ended it before).
    pub async fn send_mail(&self, mail: Mail) -> Result<(), MailError> {
        let mailer = self.mailer.clone();
        let limit =
            std::time::Duration::from_secs(u64::from(self.config.email.timeout_seconds) + 1);
        let sent = tokio::task::spawn_blocking(move || mailer.send(&mail));
        match tokio::time::timeout(limit, sent).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(MailError::Relay(format!("send task failed: {e}"))),
            Err(_) => Err(MailError::Timeout),
        }
    }

    /// Checks `user`'s account password again through PAM
    /// (`twofactor-reauth`). The attempt counts toward the account's
    /// failure limit **before** PAM is asked (and is given back when the
    /// password is right), and only one check per account runs at a time,
    /// so that concurrent calls cannot guess in parallel past the limit.
    pub async fn check_password(
        &self,
        user: &str,
        password: Zeroizing<Vec<u8>>,
        action: &str,
    ) -> Result<(), Error> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidInput("the password is too long".into()));
        }
        let _one = InFlight::claim(&self.reauth_in_flight, user).ok_or_else(|| {
            Error::RateLimited(
                "a password check for this account is already in progress; try again".into(),
            )
        })?;
        let now = self.clock.now();
        let limits = self.config.limits.clone();
        let u = user.to_string();
        let counted = self
            .store
            .run(move |c| {
                if let Gate::Wait(s) = ratelimit::gate(c, &u, ratelimit::REAUTH_SOURCE, now)? {
                    return Ok(Err(s));
                }
                bookkeeping::ensure(c, &u, now)?;
                Ok(Ok(ratelimit::record_failure(
                    c,
                    &u,
                    ratelimit::REAUTH_SOURCE,
                    now,
                    &limits,
                )?))
            })
            .await
            .map_err(|e| self.internal(action, &e.to_string()))?;
        let lock = match counted {
            Err(s) => {
                return Err(Error::RateLimited(format!(
                    "too many failed attempts; try again in {s} seconds"
                )))
            }
            Ok(lock) => lock,
        };
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
            Ok(true) => {
                let limits = self.config.limits.clone();
                let u = user.to_string();
                self.store
                    .run(move |c| ratelimit::refund(c, &u, ratelimit::REAUTH_SOURCE, &limits))
                    .await
                    .map_err(|e| self.internal(action, &e.to_string()))?;
                Ok(())
            }
            Ok(false) => {
                self.audit.log(Event::ReauthFailure { user, action });
                if let Some(seconds) = lock {
                    self.audit.log(Event::Lockout { user, seconds });
                }
                Err(Error::BadPassword("wrong password".into()))
            }
            Err(e) => {
                // The attempt stays counted: a PAM stack that fails cannot
                // be used to guess for free.
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

    /// The same work as [`Core::verify_code`] for an attempt that matched
    /// no stored code (its selector is nobody's): the answer takes as long
    /// as for a code whose selector exists, so timing does not tell which
    /// selectors exist. Always false.
    pub async fn verify_decoy(self: &Arc<Self>, code: Code) -> bool {
        let Ok(_slot) = self.hash_slots.acquire().await else {
            return false;
        };
        let core = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(hash) = core.decoy_hash() {
                core.hasher.verify(&code, hash);
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
        let code = crate::rules::backup_codes::generate_set(self.rng.as_ref())
            .ok()?
            .into_iter()
            .next()?;
        let hash = self.hasher.hash(&code, self.rng.as_ref()).ok()?;
        Some(self.decoy.get_or_init(|| hash))
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

    /// [`Core::resolve`], then, for a name that stands for an account,
    /// the read `read` makes for its canonical name: in one blocking job
    /// where the store allows ([`Store::read_after`]). A name that is not
    /// plausible is not looked up. The read's own failure is returned
    /// apart, so that the caller can decide on the account first.
    pub async fn resolve_then_read<R, G>(
        &self,
        name: &str,
        read: impl FnOnce(&str) -> G + Send + 'static,
    ) -> Result<Resolved<R>, Error>
    where
        R: Send + 'static,
        G: FnOnce(&crate::store::Db) -> crate::store::db::Result<R> + Send + 'static,
    {
        let (name, users) = (name.to_string(), self.users.clone());
        let (account, facts) = self
            .store
            .read_after(move || {
                let account = users.canonical(&name);
                let read = account.as_ref().map(|(canonical, _)| read(canonical));
                (account, read)
            })
            .await
            .map_err(|e| self.internal("name-service", &e.to_string()))?;
        Ok(Resolved { account, facts })
    }

    /// Audits an internal failure and returns the error the caller sees
    /// (which never carries the details).
    pub fn internal(&self, context: &str, error: &str) -> Error {
        self.audit.log(Event::Error { context, error });
        Error::Internal("the daemon could not complete the request; nothing was changed".into())
    }
}

/// What [`Core::resolve_then_read`] found: the account, as (canonical
/// name, uid), and what was read for it (None: no account, no read).
pub struct Resolved<R> {
    pub account: Option<(String, u32)>,
    pub facts: Option<Result<R, crate::store::StoreError>>,
}

/// A name held in a set while a value of this type lives.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: String,
}

impl<'a> InFlight<'a> {
    /// None when `name` is already in the set (or the set is unusable).
    fn claim(set: &'a Mutex<HashSet<String>>, name: &str) -> Option<Self> {
        let mut names = set.lock().ok()?;
        names.insert(name.to_string()).then(|| InFlight {
            set,
            name: name.to_string(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut names) = self.set.lock() {
            names.remove(&self.name);
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
    use crate::adapters::nss::testing::FakeUsers;
    use crate::adapters::pam_reauth::testing::FakeReauth;
    use crate::clock::ManualClock;
    use crate::random::OsRandom;

    /// A core on an in-memory store with the given users (name, uid) and
    /// passwords (name, password); audit lines are captured, not logged.
    pub fn core(
        config: Config,
        clock: &ManualClock,
        users: &[(&str, u32)],
        passwords: &[(&str, &str)],
    ) -> (Arc<Core>, Arc<Audit>) {
        core_mailing(
            config,
            clock,
            users,
            passwords,
            Arc::new(crate::adapters::smtp::Disabled),
        )
    }

    /// [`core`], sending mail through `mailer`.
    pub fn core_mailing(
        config: Config,
        clock: &ManualClock,
        users: &[(&str, u32)],
        passwords: &[(&str, &str)],
        mailer: Arc<dyn crate::adapters::smtp::Mailer>,
    ) -> (Arc<Core>, Arc<Audit>) {
        let audit = Arc::new(Audit::new(false, false));
        let core = Arc::new(
            Core::new(
                config,
                Store::open_in_memory().expect("in-memory store"),
                Arc::new(clock.clone()),
                Arc::new(OsRandom),
                Arc::new(FakeUsers::new(users)),
                Arc::new(FakeReauth::new(passwords)),
                audit.clone(),
            )
            .with_mailer(mailer),
        );
        (core, audit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::nss::testing::FakeUsers;
    use crate::adapters::pam_reauth::ReauthError;
    use crate::clock::ManualClock;
    use crate::random::OsRandom;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A password check that takes a while (pam_unix delays failures) and
    /// counts how often PAM was asked.
    struct SlowReauth {
        calls: Arc<AtomicUsize>,
    }

    impl Reauth for SlowReauth {
        fn check(&self, _: &str, password: &[u8]) -> Result<bool, ReauthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(password == b"right")
        }
    }

    fn core(calls: Arc<AtomicUsize>) -> Arc<Core> {
        let mut config = Config::default();
        config.limits.max_failures = 3;
        Arc::new(Core::new(
            config,
            Store::open_in_memory().unwrap(),
            Arc::new(ManualClock::at(1_700_000_000)),
            Arc::new(OsRandom),
            Arc::new(FakeUsers::new(&[("alice", 1000)])),
            Arc::new(SlowReauth { calls }),
            Arc::new(Audit::new(false, false)),
        ))
    }

    #[test]
    fn concurrent_wrong_passwords_reach_pam_at_most_the_limit() {
        let calls = Arc::new(AtomicUsize::new(0));
        let core = core(calls.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Waves of 50 at once, until the account is locked and beyond.
        let mut results: Vec<Result<(), Error>> = Vec::new();
        for _ in 0..10 {
            results.extend(rt.block_on(async {
                let tasks: Vec<_> = (0..50)
                    .map(|_| {
                        let core = core.clone();
                        tokio::spawn(async move {
                            core.check_password("alice", Zeroizing::new(b"guess".to_vec()), "t")
                                .await
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            }));
        }
        assert!(results.iter().all(|r| r.is_err()));
        let asked = calls.load(Ordering::SeqCst);
        assert!(
            asked == 3,
            "PAM was asked {asked} times for 10 waves of 50 concurrent guesses (limit 3)"
        );
        // Locked now: even the right password is not checked.
        let r = rt.block_on(core.check_password("alice", Zeroizing::new(b"right".to_vec()), "t"));
        assert!(matches!(r, Err(Error::RateLimited(_))), "{r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), asked);
    }

    #[test]
    fn a_right_password_gives_its_counted_attempt_back() {
        let calls = Arc::new(AtomicUsize::new(0));
        let core = core(calls);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let check =
            |p: &[u8]| rt.block_on(core.check_password("alice", Zeroizing::new(p.to_vec()), "t"));
        let failures = || {
            rt.block_on(core.store.run(|c| bookkeeping::status(c, "alice", 0)))
                .unwrap()
                .failures
        };
        assert!(matches!(check(b"wrong"), Err(Error::BadPassword(_))));
        assert_eq!(failures(), 1);
        for _ in 0..5 {
            assert!(check(b"right").is_ok());
        }
        assert_eq!(failures(), 1, "right passwords neither add nor clear");
        assert!(matches!(check(b"wrong"), Err(Error::BadPassword(_))));
        // The third attempt locks; being right, it lifts its own lock.
        assert!(check(b"right").is_ok());
        assert_eq!(failures(), 2);
        assert!(matches!(check(b"wrong"), Err(Error::BadPassword(_))));
        assert!(matches!(check(b"right"), Err(Error::RateLimited(_))));
    }
}
