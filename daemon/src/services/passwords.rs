//! Password re-checks: the account password asked again through PAM
//! (`twofactor-reauth`) before a change that weakens security, with their
//! own limits: every attempt counts toward the account's failure limit
//! before PAM is asked, at most one check per account runs at a time, and
//! at most [`SLOTS`] at once (each holds a blocking thread, and pam_unix
//! delays failures).
//!
//! The count is kept by a [`Tally`]: this machine's store ([`StoreTally`]),
//! or, on a fleet's host, the verifiers (`api::fleet::host`), which keep
//! it in the fleet's store. PAM is always asked where the password was
//! typed: the password never leaves the machine.

use crate::adapters::pam_reauth::Reauth;
use crate::adapters::syslog::{Audit, Event};
use crate::clock::Clock;
use crate::config::LimitsConfig;
use crate::rules::ratelimit::{self, Counted};
use crate::store::Store;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use twofactor_proto::error::Error;
use twofactor_proto::names::MAX_PASSWORD_BYTES;
use zeroize::Zeroizing;

/// Password checks that may run at once.
pub const SLOTS: usize = 4;

/// An attempt counted before PAM is asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Turn {
    /// The lockout (seconds) a failure of this attempt starts.
    pub lock: Option<i64>,
    /// Names the turn where it was counted elsewhere (a verifier's): only
    /// a turn it gave, and only once, is settled there.
    pub ticket: String,
}

/// Where password attempts are counted.
#[async_trait::async_trait]
pub trait Tally: Send + Sync {
    /// Counts an attempt of `user` before PAM is asked (refused while the
    /// account is locked).
    async fn turn(&self, user: &str, action: &str) -> Result<Turn, Error>;
    /// The outcome: a right password gives its attempt back, a wrong one
    /// is audited (with the lockout its turn started).
    async fn settle(&self, user: &str, action: &str, right: bool, turn: Turn) -> Result<(), Error>;
}

/// Attempts counted in this machine's store (`rules::ratelimit`, the
/// re-check's own source).
pub struct StoreTally {
    store: Store,
    clock: Arc<dyn Clock>,
    limits: LimitsConfig,
    audit: Arc<Audit>,
}

impl StoreTally {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        limits: LimitsConfig,
        audit: Arc<Audit>,
    ) -> Self {
        StoreTally {
            store,
            clock,
            limits,
            audit,
        }
    }
}

#[async_trait::async_trait]
impl Tally for StoreTally {
    async fn turn(&self, user: &str, action: &str) -> Result<Turn, Error> {
        let now = self.clock.now();
        let limits = self.limits.clone();
        let u = user.to_string();
        let counted = self
            .store
            .run(move |c| {
                // Counted now, verified by PAM afterwards: never accepted here.
                let origin = (u.as_str(), ratelimit::REAUTH_SOURCE);
                ratelimit::attempt(c, origin, now, &limits, |_| Ok(()), |_| false)
            })
            .await
            .map_err(|e| self.audit.internal(action, &e.to_string()))?;
        match counted {
            Counted::Locked(s) => Err(Error::RateLimited(format!(
                "too many failed attempts; try again in {s} seconds"
            ))),
            Counted::Checked { lock, .. } => Ok(Turn {
                lock,
                ticket: String::new(),
            }),
        }
    }

    async fn settle(&self, user: &str, action: &str, right: bool, turn: Turn) -> Result<(), Error> {
        if right {
            let limits = self.limits.clone();
            let u = user.to_string();
            return self
                .store
                .run(move |c| ratelimit::refund(c, &u, ratelimit::REAUTH_SOURCE, &limits))
                .await
                .map_err(|e| self.audit.internal(action, &e.to_string()));
        }
        self.audit.log(Event::ReauthFailure { user, action });
        if let Some(seconds) = turn.lock {
            self.audit.log(Event::Lockout { user, seconds });
        }
        Ok(())
    }
}

pub struct Passwords {
    reauth: Arc<dyn Reauth>,
    tally: Arc<dyn Tally>,
    audit: Arc<Audit>,
    slots: Semaphore,
    /// Accounts whose password is being checked right now: at most one
    /// check per account at a time.
    in_flight: Mutex<HashSet<String>>,
}

impl Passwords {
    pub fn new(reauth: Arc<dyn Reauth>, tally: Arc<dyn Tally>, audit: Arc<Audit>) -> Self {
        Passwords {
            reauth,
            tally,
            audit,
            slots: Semaphore::new(SLOTS),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// Where the attempts are counted (a fleet's verifier counts its
    /// hosts' attempts there).
    pub fn tally(&self) -> &Arc<dyn Tally> {
        &self.tally
    }

    /// Checks `user`'s account password again through PAM
    /// (`twofactor-reauth`). The attempt counts toward the account's
    /// failure limit **before** PAM is asked (and is given back when the
    /// password is right), and only one check per account runs at a time,
    /// so that concurrent calls cannot guess in parallel past the limit.
    pub async fn check(
        &self,
        user: &str,
        password: Zeroizing<Vec<u8>>,
        action: &str,
    ) -> Result<(), Error> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidInput("the password is too long".into()));
        }
        let _one = InFlight::claim(&self.in_flight, user).ok_or_else(|| {
            Error::RateLimited(
                "a password check for this account is already in progress; try again".into(),
            )
        })?;
        let turn = self.tally.turn(user, action).await?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| self.audit.internal(action, &e.to_string()))?;
        let reauth = self.reauth.clone();
        let u = user.to_string();
        let checked = tokio::task::spawn_blocking(move || reauth.check(&u, &password))
            .await
            .map_err(|e| self.audit.internal(action, &e.to_string()))?;
        match checked {
            Ok(right) => {
                self.tally.settle(user, action, right, turn).await?;
                if right {
                    Ok(())
                } else {
                    Err(Error::BadPassword("wrong password".into()))
                }
            }
            Err(e) => {
                // The attempt stays counted: a PAM stack that fails cannot
                // be used to guess for free.
                self.audit.internal(action, &e.to_string());
                Err(Error::Internal("the password could not be checked".into()))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::pam_reauth::ReauthError;
    use crate::clock::ManualClock;
    use crate::config::Config;
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

    fn passwords(calls: Arc<AtomicUsize>) -> (Arc<Passwords>, Store) {
        let mut config = Config::default();
        config.limits.max_failures = 3;
        let audit = Arc::new(Audit::new(false, false));
        let store = Store::open_in_memory().unwrap();
        let tally = StoreTally::new(
            store.clone(),
            Arc::new(ManualClock::at(1_700_000_000)),
            config.limits,
            audit.clone(),
        );
        let passwords = Passwords::new(Arc::new(SlowReauth { calls }), Arc::new(tally), audit);
        (Arc::new(passwords), store)
    }

    #[test]
    fn concurrent_wrong_passwords_reach_pam_at_most_the_limit() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (core, _store) = passwords(calls.clone());
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
                            core.check("alice", Zeroizing::new(b"guess".to_vec()), "t")
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
        let r = rt.block_on(core.check("alice", Zeroizing::new(b"right".to_vec()), "t"));
        assert!(matches!(r, Err(Error::RateLimited(_))), "{r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), asked);
    }

    #[test]
    fn a_right_password_gives_its_counted_attempt_back() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (core, store) = passwords(calls);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let check = |p: &[u8]| rt.block_on(core.check("alice", Zeroizing::new(p.to_vec()), "t"));
        let failures = || {
            rt.block_on(store.run(|c| crate::rules::account_view::status(c, "alice", 0)))
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
