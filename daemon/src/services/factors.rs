//! Checking a second factor: the one path every code takes, whether it is
//! typed at a login prompt (`api/login/check.rs`) or given to confirm a
//! change to one's own account (`api/account.rs`).
//!
//! What an answer is follows from what was asked and its shape
//! ([`classify`]). Every kind of code goes through the same step:
//! [`ratelimit::attempt`] takes the account's turn and the lockout gate,
//! runs the kind's own part and counts the attempt as a failure in the same
//! store job, so that nothing is verified uncounted. App and email codes
//! decide in that job (a right one resets the counts and is not counted:
//! one transaction, a commit of two pages, docs/performance.md). A backup
//! code is verified afterwards, with argon2 off the writer: its attempt is
//! counted, durably, **before** that verification, and a right code resets
//! the counts in a second job.

use std::sync::Arc;

use twofactor_proto::key::{Assertion, AssertionRequest};
use twofactor_proto::names::MAX_ANSWER_BYTES;
use twofactor_proto::types::method;
use zeroize::Zeroizing;

use crate::adapters::syslog::{Audit, Event};
use crate::clock::Clock;
use crate::config::Config;
use crate::rules::backup_codes::{self, Code};
use crate::rules::bookkeeping;
use crate::rules::email_codes::{self, EmailCheck, Purpose};
use crate::rules::methods::{self, Method};
use crate::rules::ratelimit::{self, attempt, Counted};
use crate::rules::recovery_codes;
use crate::rules::security_keys::{self, Signed};
use crate::rules::totp::{self, Check, Malformed};
use crate::services::hash_pool::HashPool;
use crate::store::{Db, DbResult, Store};

/// What an answer at a code prompt is.
pub enum Attempt {
    /// A 6-digit code of the method the prompt asked for.
    Code(Method, Zeroizing<String>),
    Backup(Code),
    /// A recovery code from an administrator's reset (logins only).
    Recovery(Code),
    /// What a security key signed for a login's challenge.
    Key(Box<KeyUse>),
}

/// A security key's answer to the challenge a login asked it to sign.
pub struct KeyUse {
    pub request: AssertionRequest,
    pub assertion: Assertion,
}

/// Reads an answer at the prompt that asked for a code of `asked`: six
/// digits are that method's code; backup and recovery codes are taken at
/// any code prompt.
pub fn classify(answer: &[u8], asked: Method) -> Result<Attempt, Malformed> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(Malformed::TooLong);
    }
    let text = std::str::from_utf8(answer).map_err(|_| Malformed::NotUtf8)?;
    match totp::parse_code(answer) {
        Ok(code) => Ok(Attempt::Code(asked, code)),
        Err(Malformed::NotSixDigits) => backup_codes::parse(text)
            .map(Attempt::Backup)
            .or_else(|| recovery_codes::parse(text).map(Attempt::Recovery))
            .ok_or(Malformed::NotSixDigits),
        Err(other) => Err(other),
    }
}

/// Whose code, from where, and what a right one is.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub user: &'a str,
    /// The source the attempt is counted against, and the source an
    /// email code was sent to.
    pub source: &'a str,
    /// A login on the host named (a right code records the login, with
    /// its method and that host), or None: the confirmation of a change
    /// (it records nothing but the reset counts).
    pub login: Option<&'a str>,
}

/// What checking a factor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right, and used up; the backup codes left, if the user has a set.
    Accepted {
        method: &'static str,
        backup_left: Option<u32>,
    },
    /// Wrong (or replayed, expired, …), counted; `lock`: the wait this
    /// failure imposed, if any.
    Refused {
        reason: &'static str,
        lock: Option<i64>,
    },
    /// Refused unchecked: the source or the account waits this long.
    Locked(i64),
}

/// The one code-checking path.
pub struct Factors {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    hashing: Arc<HashPool>,
    audit: Arc<Audit>,
}

impl Factors {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
        (hashing, audit): (Arc<HashPool>, Arc<Audit>),
    ) -> Self {
        Factors {
            config,
            store,
            clock,
            hashing,
            audit,
        }
    }

    /// Checks an app code, an email code or a backup code (a recovery code
    /// is a login's own business: refused here as no method).
    pub async fn check(&self, asked: Asked<'_>, attempt: Attempt) -> Result<Verdict, String> {
        match attempt {
            Attempt::Code(Method::App, code) => self.app(asked, code).await,
            Attempt::Code(Method::Email, code) => self.email(asked, code).await,
            Attempt::Backup(code) => self.backup(asked, code).await,
            Attempt::Key(used) => self.key(asked, *used).await,
            Attempt::Recovery(_) => Ok(Verdict::Refused {
                reason: "recovery-code-not-here",
                lock: None,
            }),
            // No code is typed for a security key (a prompt for it takes
            // backup codes only).
            Attempt::Code(Method::SshKey | Method::Key, _) => Ok(Verdict::Refused {
                reason: "no-method",
                lock: None,
            }),
        }
    }

    /// An app code: a right code for a step after the last used one is
    /// accepted and its step recorded in the same job, so that it can never
    /// be accepted again, even by a login running at the same moment.
    async fn app(&self, asked: Asked<'_>, code: Zeroizing<String>) -> Result<Verdict, String> {
        let skew = self.config.totp.skew_steps;
        self.decided(asked, method::APP, move |c, user, _, now| {
            let Some((secret, last_step)) = totp::load(c, user)? else {
                return Ok(Err("no-method"));
            };
            Ok(match totp::check(&secret, &code, now, skew, last_step) {
                Check::Accepted(step) if totp::use_step(c, user, step)? => Ok(()),
                // Used meanwhile by another login (another host).
                Check::Accepted(_) | Check::Replayed => Err("replayed-code"),
                Check::Wrong => Err("wrong-code"),
            })
        })
        .await
    }

    /// An email code: the code sent to this source is checked and used up
    /// in the same job (one of any number of concurrent logins can
    /// succeed).
    async fn email(&self, asked: Asked<'_>, code: Zeroizing<String>) -> Result<Verdict, String> {
        let offered = Method::Email.offered(&self.config);
        self.decided(asked, method::EMAIL, move |c, user, source, now| {
            if !offered || !Method::Email.is_enrolled(c, user)? {
                return Ok(Err("no-method"));
            }
            Ok(
                match email_codes::check(c, user, (Purpose::Login, source), &code, now)? {
                    EmailCheck::Accepted(_) => Ok(()),
                    EmailCheck::Expired => Err("expired-email-code"),
                    EmailCheck::NoCode => Err("no-email-code"),
                    EmailCheck::Wrong | EmailCheck::Dropped => Err("wrong-code"),
                },
            )
        })
        .await
    }

    /// A security key's signature: checked (libfido2) and its counter
    /// raised in the counted job, so that one signature is taken once and a
    /// counter that goes back is refused, even by logins at the same moment
    /// or on other hosts of a fleet.
    async fn key(&self, asked: Asked<'_>, used: KeyUse) -> Result<Verdict, String> {
        let offered = Method::Key.offered(&self.config);
        self.decided(asked, method::KEY, move |c, user, _, now| {
            if !offered {
                return Ok(Err("no-method"));
            }
            let KeyUse { request, assertion } = &used;
            let verify = |alg: i32, public_key: &[u8]| {
                let alg = twofactor_fido::Alg::from_cose(alg)
                    .ok_or_else(|| format!("unknown algorithm {alg}"))?;
                twofactor_fido::verify_assertion(assertion, request, alg, public_key)
                    .map(|v| Signed {
                        sign_count: v.sign_count,
                        user_verified: v.user_verified,
                    })
                    .map_err(|e| e.to_string())
            };
            Ok(
                security_keys::check(c, user, request, assertion, verify, now)?
                    .map(|_| ())
                    .map_err(security_keys::Refused::reason),
            )
        })
        .await
    }

    /// A code whose kind decides inside the counted job (app, email):
    /// `part` (user, source, now) checks it and uses it up, or says why
    /// not; a right one resets the counts (and records a login) in the
    /// same job and is not counted.
    async fn decided(
        &self,
        asked: Asked<'_>,
        method: &'static str,
        part: impl FnOnce(&Db, &str, &str, i64) -> DbResult<Result<(), &'static str>> + Send + 'static,
    ) -> Result<Verdict, String> {
        let (user, source, login) = (
            asked.user.to_string(),
            asked.source.to_string(),
            asked.login.map(str::to_string),
        );
        let checked = self
            .counted(
                asked,
                move |c, now| match part(c, &user, &source, now)? {
                    Ok(()) => {
                        let done = (user.as_str(), source.as_str(), login.as_deref());
                        succeeded(c, done, method, now).map(Ok)
                    }
                    Err(reason) => Ok(Err(reason)),
                },
                |found| found.is_ok(),
            )
            .await?;
        Ok(verdict(checked, method))
    }

    /// One attempt of `asked`'s user from its source, counted in one store
    /// job ([`ratelimit::attempt`]): `check` (with the job's time) runs
    /// unless the source or the account is locked.
    async fn counted<T: Send + 'static>(
        &self,
        asked: Asked<'_>,
        check: impl FnOnce(&Db, i64) -> DbResult<T> + Send + 'static,
        accepted: impl FnOnce(&T) -> bool + Send + 'static,
    ) -> Result<Counted<T>, String> {
        let (user, source) = (asked.user.to_string(), asked.source.to_string());
        let now = self.clock.now();
        let limits = self.config.limits.clone();
        self.store
            .run(move |c| {
                attempt(
                    c,
                    (&user, &source),
                    now,
                    &limits,
                    |c| check(c, now),
                    accepted,
                )
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// A backup code: the shared step finds the one candidate by its
    /// selector; one argon2 verification outside the writer; then a second
    /// job uses it up (only one concurrent attempt can) and resets the
    /// counts. An attempt whose selector matches nothing costs one argon2
    /// too (a decoy), so the answer's timing does not tell which selectors
    /// exist.
    async fn backup(&self, asked: Asked<'_>, code: Code) -> Result<Verdict, String> {
        let now = self.clock.now();
        let (user, selector) = (asked.user.to_string(), code.selector().to_string());
        let found = self
            .counted(
                asked,
                move |c, _| {
                    if !methods::has_any(c, &user)? {
                        return Ok(None);
                    }
                    backup_codes::candidate(c, &user, &selector)
                },
                // Verified after this job: counted first.
                |_| false,
            )
            .await?;
        let wrong = |lock| Verdict::Refused {
            reason: "wrong-backup-code",
            lock,
        };
        let (id, hash, lock) = match found {
            Counted::Checked {
                lock,
                found: Some((id, hash)),
            } => (id, hash, lock),
            Counted::Checked { lock, found: None } => {
                // No code has this selector: the same argon2 work anyway.
                self.hashing.verify_decoy(code).await;
                return Ok(wrong(lock));
            }
            Counted::Locked(wait) => return Ok(Verdict::Locked(wait)),
        };
        if !self.hashing.verify(code, hash).await {
            return Ok(wrong(lock));
        }
        let (user, source, login) = (
            asked.user.to_string(),
            asked.source.to_string(),
            asked.login.map(str::to_string),
        );
        let consumed = self
            .store
            .run(move |c| {
                if !backup_codes::consume(c, id, now)? {
                    return Ok(None);
                }
                let done = (user.as_str(), source.as_str(), login.as_deref());
                succeeded(c, done, method::BACKUP_CODE, now).map(Some)
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(match consumed {
            Some(left) => {
                self.audit.log(Event::BackupCodeUsed {
                    user: asked.user,
                    left: left.unwrap_or(0),
                });
                Verdict::Accepted {
                    method: method::BACKUP_CODE,
                    backup_left: left,
                }
            }
            None => Verdict::Refused {
                reason: "replayed-backup-code",
                lock,
            },
        })
    }
}

/// A right code: the account's and this source's counts start over, and a
/// login is recorded with its method (`done`: user, source, whether it is
/// a login, host). Returns the backup codes left.
fn succeeded(
    c: &Db,
    (user, source, login): (&str, &str, Option<&str>),
    method: &str,
    now: i64,
) -> DbResult<Option<u32>> {
    ratelimit::record_success(c, user, source)?;
    if let Some(host) = login {
        bookkeeping::record_login(c, user, method, now, host)?;
    }
    backup_codes::remaining(c, user)
}

/// The verdict of a code whose kind decided in the counted job.
fn verdict(checked: Counted<Result<Option<u32>, &'static str>>, method: &'static str) -> Verdict {
    match checked {
        Counted::Checked {
            found: Ok(backup_left),
            ..
        } => Verdict::Accepted {
            method,
            backup_left,
        },
        Counted::Checked {
            lock,
            found: Err(reason),
        } => Verdict::Refused { reason, lock },
        Counted::Locked(wait) => Verdict::Locked(wait),
    }
}
