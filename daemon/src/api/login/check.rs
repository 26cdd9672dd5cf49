//! Checking what was typed at the code prompt: what it is
//! (`services::factors::classify`: 6 digits are a code of the method the
//! prompt asked for; 12 letters, or an imported 8-digit code, a backup
//! code and 16 letters a recovery code, at any code prompt; anything else
//! is refused without counting), then the one code-checking path
//! (`services/factors.rs`) for app, email and backup codes, and this
//! file's own for a recovery code, which only a login takes: its attempt
//! goes through the same counted step ([`attempt`]), is verified with
//! argon2 off the writer, and is claimed by the login until its enrolment
//! commits. What the checks found becomes the login's step and audit
//! lines here.

use twofactor_proto::{Action, Step};

use super::{enrol, Logins, Next, COMMIT_SECONDS, INTERNAL, INVALID};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::backup_codes::{self, Code};
use crate::rules::methods::Method;
use crate::rules::ratelimit::{self, attempt, Counted};
use crate::rules::recovery_codes;
use crate::services::factors::{classify, Asked, Attempt, Verdict};

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
            other => self.check_factor(origin, other).await,
        }
    }

    /// An app, email or backup code, through the one code-checking path;
    /// what it found becomes the login's step and audit lines.
    async fn check_factor(&self, origin: &Origin, attempt: Attempt) -> Next {
        let may_trust = matches!(attempt, Attempt::Code(..));
        let source = ratelimit::source_of(origin);
        let asked = Asked {
            user: &origin.user,
            source: &source,
            login: Some(self.host_of(origin)),
        };
        match self.factors.check(asked, attempt).await {
            Ok(Verdict::Accepted {
                method,
                backup_left,
            }) => Next::Passed {
                method,
                step: accepted(backup_left),
                may_trust,
            },
            Ok(Verdict::Refused { reason, lock }) => {
                let step = self.refused(origin, reason, lock);
                Next::Done(if reason == "expired-email-code" {
                    step.error("That code has expired; log in again for a new one.")
                } else {
                    step
                })
            }
            Ok(Verdict::Locked(wait)) => Next::Done(self.locked(origin, wait)),
            Err(e) => {
                self.internal("login-answer", &e);
                Next::Done(Step::new(Action::Deny).error(INTERNAL))
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

    pub(super) fn refused(&self, origin: &Origin, reason: &str, lock: Option<i64>) -> Step {
        self.audit.log(Event::LoginFailure { origin, reason });
        if let Some(seconds) = lock {
            self.audit.log(Event::Lockout {
                user: &origin.user,
                seconds,
            });
        }
        Step::new(Action::Deny).error(INVALID)
    }

    pub(super) fn locked(&self, origin: &Origin, wait: i64) -> Step {
        self.audit.log(Event::LoginFailure {
            origin,
            reason: "locked",
        });
        Step::new(Action::Deny).error(wait_message(wait))
    }
}

/// Accept, with a warning when few backup codes are left.
pub(super) fn accepted(backup_left: Option<u32>) -> Step {
    let step = Step::new(Action::Accept);
    match backup_left.and_then(backup_codes::low_warning) {
        Some(warning) => step.info(warning),
        None => step,
    }
}

pub fn wait_message(seconds: i64) -> String {
    format!("Too many failed attempts; try again in {seconds} seconds.")
}
