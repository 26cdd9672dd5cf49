//! Checking what was typed at the code prompt.
//!
//! What an answer is follows from what was asked and its shape: 6 digits
//! are a code of the method the prompt asked for; 12 letters (or an
//! imported 8-digit code) a backup code and 16 letters a recovery code, at
//! any code prompt; anything else is refused without counting.
//!
//! Every kind of code goes through the same path: [`attempt`] takes the
//! lockout gate, runs the kind's own part and counts the attempt as a
//! failure in the same store job, as one atomic step on every host sharing
//! the store (`rules/ratelimit.rs`), so that nothing is verified uncounted
//! and nothing is checked past a lock.
//! Where the kind's part decides in that job (app and email codes: one
//! job, one commit), a right code resets the counts ([`succeeded`]) and is
//! not counted at all: one transaction either way, and a commit of two
//! pages instead of four (docs/performance.md). Backup and recovery codes
//! are verified afterwards, with argon2 off the writer: their attempt is
//! counted, durably, **before** that verification, and a right code
//! resets the counts in a second job.

use crate::store::{Db, DbResult};
use twofactor_proto::names::MAX_ANSWER_BYTES;
use twofactor_proto::types::method;
use twofactor_proto::{Action, Step};
use zeroize::Zeroizing;

use super::{enrol, Logins, Next, COMMIT_SECONDS, INTERNAL, INVALID};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::backup_codes::{self, Code};
use crate::rules::bookkeeping;
use crate::rules::email_codes::{self, EmailCheck, Purpose};
use crate::rules::methods::{self, Method};
use crate::rules::ratelimit::{self, attempt, Counted};
use crate::rules::recovery_codes;
use crate::rules::totp::{self, Check, Malformed};

/// What an answer at the code prompt is.
pub(super) enum Attempt {
    /// A 6-digit code of the method the prompt asked for.
    Code(Method, Zeroizing<String>),
    Backup(Code),
    Recovery(Code),
}

/// Reads an answer at the prompt that asked for a code of `asked`: six
/// digits are that method's code; backup and recovery codes are taken at
/// any code prompt.
pub(super) fn classify(answer: &[u8], asked: Method) -> Result<Attempt, Malformed> {
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

/// A right code: the account's and this source's counts start over, and
/// the login is recorded with its method.
fn succeeded(c: &Db, user: &str, source: &str, method: &str, now: i64, host: &str) -> DbResult<()> {
    ratelimit::record_success(c, user, source)?;
    bookkeeping::record_login(c, user, method, now, host)
}

/// What an app code's own part found.
enum AppCheck {
    /// Right, and its step is now used; backup codes left, if any.
    Accepted(Option<u32>),
    Wrong,
    Replayed,
    NoMethod,
}

/// An app code's own part: a right code for a step after the last used one
/// is accepted and its step recorded in the same job, so that it can never
/// be accepted again, even by a login running at the same moment.
fn check_app(
    c: &Db,
    user: &str,
    source: &str,
    code: &str,
    now: i64,
    skew: u32,
    host: &str,
) -> DbResult<AppCheck> {
    let Some((secret, last_step)) = totp::load(c, user)? else {
        return Ok(AppCheck::NoMethod);
    };
    Ok(match totp::check(&secret, code, now, skew, last_step) {
        Check::Accepted(step) if totp::use_step(c, user, step)? => {
            succeeded(c, user, source, method::APP, now, host)?;
            AppCheck::Accepted(backup_codes::remaining(c, user)?)
        }
        // Used meanwhile by another login (another host's daemon).
        Check::Accepted(_) => AppCheck::Replayed,
        Check::Replayed => AppCheck::Replayed,
        Check::Wrong => AppCheck::Wrong,
    })
}

impl Logins {
    /// An answer at the code prompt. `may_enrol`: the caller is root, so a
    /// recovery code may lead to an enrolment at the prompt.
    pub(super) async fn check_code(
        &self,
        origin: &Origin,
        asked: Method,
        answer: &[u8],
        (session, expires): (&str, i64),
        may_enrol: bool,
    ) -> Next {
        if answer.is_empty() {
            // Choosing another method is not an attempt.
            if let Some(next) = self.offer_choices(origin, asked).await {
                return next;
            }
        }
        let attempt = match classify(answer, asked) {
            Ok(attempt) => attempt,
            Err(malformed) => {
                self.audit.log(Event::LoginFailure {
                    origin,
                    reason: "malformed",
                });
                return Next::Done(Step::new(Action::Deny).error(malformed.message()));
            }
        };
        match attempt {
            Attempt::Code(Method::App, code) => {
                passed(self.check_app_code(origin, code).await, method::APP, true)
            }
            Attempt::Code(Method::Email, code) => passed(
                self.check_email_code(origin, code).await,
                method::EMAIL,
                true,
            ),
            Attempt::Backup(code) => passed(
                self.check_backup_code(origin, code).await,
                method::BACKUP_CODE,
                false,
            ),
            Attempt::Recovery(_) if !may_enrol => {
                // A recovery code sets up a new method: not from a caller
                // running as the user (a screen locker). Not checked, not
                // counted.
                self.audit.log(Event::LoginFailure {
                    origin,
                    reason: "recovery-code-not-here",
                });
                Next::Done(Step::new(Action::Deny).error(
                    "A recovery code is used at a login (console, ssh, su or sudo), not here.",
                ))
            }
            Attempt::Recovery(code) => {
                self.check_recovery_code(origin, code, session, expires)
                    .await
            }
        }
    }

    async fn check_app_code(&self, origin: &Origin, code: Zeroizing<String>) -> Step {
        let (user, source) = (origin.user.clone(), ratelimit::source_of(origin));
        let host = self.host.clone();
        let now = self.clock.now();
        let skew = self.config.totp.skew_steps;
        let limits = self.config.limits.clone();
        let checked = self
            .store
            .run(move |c| {
                attempt(
                    c,
                    (&user, &source),
                    now,
                    &limits,
                    |c| check_app(c, &user, &source, &code, now, skew, &host),
                    |found| matches!(found, AppCheck::Accepted(_)),
                )
            })
            .await;
        match checked {
            Ok(Counted::Checked {
                found: AppCheck::Accepted(left),
                ..
            }) => accepted(left),
            Ok(Counted::Checked { lock, found }) => {
                let reason = match found {
                    AppCheck::Replayed => "replayed-code",
                    AppCheck::NoMethod => "no-method",
                    _ => "wrong-code",
                };
                self.refused(origin, reason, lock)
            }
            Ok(Counted::Locked(wait)) => self.locked(origin, wait),
            Err(e) => {
                self.internal("login-answer", &e.to_string());
                Step::new(Action::Deny).error(INTERNAL)
            }
        }
    }

    /// An email code: the shared path, then the code sent for a login is
    /// checked and used up in the same job (one of any number of
    /// concurrent logins can succeed).
    async fn check_email_code(&self, origin: &Origin, code: Zeroizing<String>) -> Step {
        let (user, source) = (origin.user.clone(), ratelimit::source_of(origin));
        let host = self.host.clone();
        let now = self.clock.now();
        let limits = self.config.limits.clone();
        let offered = Method::Email.offered(&self.config);
        let checked = self
            .store
            .run(move |c| {
                attempt(
                    c,
                    (&user, &source),
                    now,
                    &limits,
                    |c| {
                        if !offered || !Method::Email.is_enrolled(c, &user)? {
                            return Ok(None);
                        }
                        let found =
                            email_codes::check(c, &user, (Purpose::Login, &source), &code, now)?;
                        if matches!(found, EmailCheck::Accepted(_)) {
                            succeeded(c, &user, &source, method::EMAIL, now, &host)?;
                            return Ok(Some(Ok(backup_codes::remaining(c, &user)?)));
                        }
                        Ok(Some(Err(found)))
                    },
                    |found| matches!(found, Some(Ok(_))),
                )
            })
            .await;
        match checked {
            Ok(Counted::Checked {
                found: Some(Ok(left)),
                ..
            }) => accepted(left),
            Ok(Counted::Checked { lock, found }) => {
                let reason = match found {
                    Some(Err(EmailCheck::Expired)) => "expired-email-code",
                    Some(Err(EmailCheck::NoCode)) => "no-email-code",
                    None => "no-method",
                    _ => "wrong-code",
                };
                let step = self.refused(origin, reason, lock);
                if reason == "expired-email-code" {
                    return step.error("That code has expired; log in again for a new one.");
                }
                step
            }
            Ok(Counted::Locked(wait)) => self.locked(origin, wait),
            Err(e) => {
                self.internal("login-answer", &e.to_string());
                Step::new(Action::Deny).error(INTERNAL)
            }
        }
    }

    /// A backup code: the shared path finds the one candidate by its
    /// selector; one argon2 verification outside the writer; then a second
    /// job uses it up (only one concurrent login can) and resets the
    /// counts. An attempt whose selector matches nothing costs one argon2
    /// too (a decoy), so the answer's timing does not tell which selectors
    /// exist.
    async fn check_backup_code(&self, origin: &Origin, code: Code) -> Step {
        let store = &self.store;
        let now = self.clock.now();
        let limits = self.config.limits.clone();
        let (user, source) = (origin.user.clone(), ratelimit::source_of(origin));
        let selector = code.selector().to_string();
        let found = store
            .run(move |c| {
                attempt(
                    c,
                    (&user, &source),
                    now,
                    &limits,
                    |c| {
                        if !methods::has_any(c, &user)? {
                            return Ok(None);
                        }
                        backup_codes::candidate(c, &user, &selector)
                    },
                    // Verified after this job: counted first.
                    |_| false,
                )
            })
            .await;
        let (id, hash, lock) = match found {
            Ok(Counted::Checked {
                lock,
                found: Some((id, hash)),
            }) => (id, hash, lock),
            Ok(Counted::Checked { lock, found: None }) => {
                // No code has this selector: the same argon2 work anyway.
                self.hashing.verify_decoy(code).await;
                return self.refused(origin, "wrong-backup-code", lock);
            }
            Ok(Counted::Locked(wait)) => return self.locked(origin, wait),
            Err(e) => {
                self.internal("login-backup", &e.to_string());
                return Step::new(Action::Deny).error(INTERNAL);
            }
        };
        if !self.hashing.verify(code, hash).await {
            return self.refused(origin, "wrong-backup-code", lock);
        }
        let (user, source) = (origin.user.clone(), ratelimit::source_of(origin));
        let host = self.host.clone();
        let consumed = store
            .run(move |c| {
                if !backup_codes::consume(c, id, now)? {
                    return Ok(None);
                }
                succeeded(c, &user, &source, method::BACKUP_CODE, now, &host)?;
                backup_codes::remaining(c, &user)
            })
            .await;
        match consumed {
            Ok(Some(left)) => {
                self.audit.log(Event::BackupCodeUsed {
                    user: &origin.user,
                    left,
                });
                accepted(Some(left))
            }
            Ok(None) => self.refused(origin, "replayed-backup-code", lock),
            Err(e) => {
                self.internal("login-backup", &e.to_string());
                Step::new(Action::Deny).error(INTERNAL)
            }
        }
    }

    /// A recovery code from an administrator's reset: the shared path finds
    /// the pending code; one argon2 verification; then this login claims
    /// it. The user must set up a new method before the login completes,
    /// and only the commit of that enrolment uses the code up.
    async fn check_recovery_code(
        &self,
        origin: &Origin,
        code: Code,
        session: &str,
        expires: i64,
    ) -> Next {
        let store = &self.store;
        let now = self.clock.now();
        let limits = self.config.limits.clone();
        let (user, source) = (origin.user.clone(), ratelimit::source_of(origin));
        let found = store
            .run(move |c| {
                attempt(
                    c,
                    (&user, &source),
                    now,
                    &limits,
                    |c| recovery_codes::pending(c, &user, now),
                    // Verified after this job: counted first.
                    |_| false,
                )
            })
            .await;
        let (hash, lock) = match found {
            Ok(Counted::Checked {
                lock,
                found: Some(hash),
            }) => (hash, lock),
            Ok(Counted::Checked { lock, found: None }) => {
                return Next::Done(self.refused(origin, "wrong-recovery-code", lock))
            }
            Ok(Counted::Locked(wait)) => return Next::Done(self.locked(origin, wait)),
            Err(e) => {
                self.internal("login-recovery", &e.to_string());
                return Next::Done(Step::new(Action::Deny).error(INTERNAL));
            }
        };
        if !self.hashing.verify(code, hash.clone()).await {
            return Next::Done(self.refused(origin, "wrong-recovery-code", lock));
        }
        let (user, sid) = (origin.user.clone(), session.to_string());
        let source = ratelimit::source_of(origin);
        let claimed = store
            .run(move |c| {
                // The claim outlives the prompt by the commit window, so
                // that the account phase can still use the code up.
                let until = expires + COMMIT_SECONDS;
                let claimed = recovery_codes::claim(c, &user, &hash, &sid, until, now)?;
                if claimed {
                    ratelimit::record_success(c, &user, &source)?;
                }
                Ok(claimed)
            })
            .await;
        match claimed {
            Ok(true) => {
                self.audit.log(Event::RecoveryCodeUsed { origin });
                match self.start_enrolment(origin, enrol::Why::Recovery(session.to_string())) {
                    Ok((phase, step)) => Next::Continue(phase, step),
                    Err(_) => {
                        self.release_claim(origin, session).await;
                        Next::Done(Step::new(Action::Deny).error(INTERNAL))
                    }
                }
            }
            Ok(false) => Next::Done(self.refused(origin, "claimed-recovery-code", lock)),
            Err(e) => {
                self.internal("login-recovery", &e.to_string());
                Next::Done(Step::new(Action::Deny).error(INTERNAL))
            }
        }
    }

    fn refused(&self, origin: &Origin, reason: &str, lock: Option<i64>) -> Step {
        self.audit.log(Event::LoginFailure { origin, reason });
        if let Some(seconds) = lock {
            self.audit.log(Event::Lockout {
                user: &origin.user,
                seconds,
            });
        }
        Step::new(Action::Deny).error(INVALID)
    }

    fn locked(&self, origin: &Origin, wait: i64) -> Step {
        self.audit.log(Event::LoginFailure {
            origin,
            reason: "locked",
        });
        Step::new(Action::Deny).error(wait_message(wait))
    }
}

/// A code's step: an accepting one means the second factor passed by
/// `method` (an app or email code may lead to trusting the device).
fn passed(step: Step, method: &'static str, may_trust: bool) -> Next {
    if step.action == Action::Accept {
        Next::Passed {
            method,
            step,
            may_trust,
        }
    } else {
        Next::Done(step)
    }
}

/// Accept, with a warning when few backup codes are left.
fn accepted(backup_left: Option<u32>) -> Step {
    let step = Step::new(Action::Accept);
    match backup_left.and_then(backup_codes::low_warning) {
        Some(warning) => step.info(warning),
        None => step,
    }
}

pub fn wait_message(seconds: i64) -> String {
    format!("Too many failed attempts; try again in {seconds} seconds.")
}
