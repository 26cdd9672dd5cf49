//! Enrolment inside the login conversation: for a user to whom the
//! mandatory policy applies and who has no method, and for a user who just
//! used a recovery code. The module renders the steps; nothing is stored
//! until the user confirmed the backup codes **and** the whole PAM auth
//! stack succeeded (the module calls `Commit` from the account phase), so
//! an abandoned enrolment, or one after a wrong password, leaves the
//! account as it was.
//!
//! ```text
//!   EnrolCode ── right code ──▶ EnrolConfirm ── "yes" ──▶ AcceptPending ── Commit ──▶ Accept (stored)
//!       └─ 3 wrong codes ─▶ Deny         └─ 3 other answers ─▶ Deny        └─ handle ends ─▶ nothing stored
//! ```

use super::{Logins, Next, Phase, INTERNAL};
use crate::accounts;
use crate::audit::{Event, Origin};
use crate::backup_codes;
use crate::notices::{self, Notice};
use crate::qr;
use crate::ratelimit;
use crate::recovery;
use crate::totp::{self, Check, Secret};
use twofactor_proto::error::Error;
use twofactor_proto::types::method;
use twofactor_proto::{Action, Step};

/// Tries for the code, and for the confirmation.
const TRIES: u8 = 3;
pub const CODE_PROMPT: &str = "Code from the app: ";
pub const CONFIRM_PROMPT: &str = "Type yes once you have saved them: ";

/// Why the user is enrolling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Policy,
    /// After a recovery code, claimed under this session id.
    Recovery(String),
}

impl Why {
    fn name(&self) -> &'static str {
        match self {
            Why::Policy => "policy",
            Why::Recovery(_) => "recovery",
        }
    }
    fn claim(&self) -> Option<&str> {
        match self {
            Why::Policy => None,
            Why::Recovery(session) => Some(session),
        }
    }
}

/// The secret was shown; waiting for a code from the app.
pub struct Pending {
    secret: Secret,
    why: Why,
    tries: u8,
}

/// Confirmed: waiting for the account phase to commit it.
pub struct Confirmed {
    secret: Secret,
    why: Why,
    step: i64,
    hashed: Vec<(String, String)>,
}

/// The code was right; backup codes were shown; waiting for "yes".
pub struct Confirming {
    secret: Secret,
    why: Why,
    step: i64,
    hashed: Vec<(String, String)>,
    tries: u8,
}

impl Pending {
    pub fn recovery_claim(&self) -> Option<&str> {
        self.why.claim()
    }
}

impl Confirming {
    pub fn recovery_claim(&self) -> Option<&str> {
        self.why.claim()
    }
}

impl Confirmed {
    pub fn recovery_claim(&self) -> Option<&str> {
        self.why.claim()
    }
}

/// The reminder shown before the policy's start date.
pub fn reminder(date: &str) -> String {
    format!(
        "Two-factor authentication becomes mandatory for your account on {date}. \
         Set it up now with `twofactorctl enable app`."
    )
}

impl Logins {
    /// A new secret and the step that shows it and asks for a code.
    pub(super) fn start_enrolment(
        &self,
        origin: &Origin,
        why: Why,
    ) -> Result<(Phase, Step), Error> {
        let secret = Secret::generate(self.core.rng.as_ref())
            .map_err(|e| self.internal("enrol-login", &e.to_string()))?;
        let issuer = self.core.config.issuer_or_hostname();
        let label = format!("{}@{}", origin.user, crate::config::hostname());
        let uri = secret.uri(&issuer, &label);
        let intro = match &why {
            Why::Policy => {
                "Two-factor authentication is required for your account. Set up an authenticator app now."
            }
            Why::Recovery(_) => {
                "Recovery code accepted. Set up an authenticator app now to finish logging in."
            }
        };
        let mut step = Step::new(Action::AskVisible(CODE_PROMPT.into())).info(intro);
        if let Some(image) = qr::render(&uri) {
            step = step.info(format!(
                "Scan this QR code with your authenticator app:\n{image}"
            ));
        }
        let step = step
            .info(format!(
                "Or add it by hand (\"Time based\", 6 digits, every 30 seconds):\nSecret: {}\nURI: {uri}",
                group4(&secret.base32())
            ));
        let pending = Pending {
            secret,
            why,
            tries: 0,
        };
        Ok((Phase::EnrolCode(pending), step))
    }

    pub(super) async fn enrol_code(&self, origin: &Origin, mut p: Pending, answer: &[u8]) -> Next {
        let now = self.core.clock.now();
        let right = match totp::parse_code(answer) {
            Ok(code) => {
                match totp::check(&p.secret, &code, now, self.core.config.totp.skew_steps, -1) {
                    Check::Accepted(step) => Some(step),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        let Some(step) = right else {
            p.tries += 1;
            if p.tries >= TRIES {
                self.core.audit.log(Event::EnrolFailure {
                    user: &origin.user,
                    method: method::APP,
                    reason: "wrong-code-at-login",
                });
                if let Some(claim) = p.why.claim() {
                    self.release_claim(origin, claim).await;
                }
                return Next::Done(Step::new(Action::Deny).error(
                    "Setup failed: too many wrong codes. Nothing was changed; log in again to start over.",
                ));
            }
            let ask = Step::new(Action::AskVisible(CODE_PROMPT.into()))
                .error("That is not the current code of the app; try again.");
            return Next::Continue(Phase::EnrolCode(p), ask);
        };
        let (codes, hashed) = match backup_codes::new_hashed_set(&self.core).await {
            Ok(made) => made,
            Err(e) => {
                self.internal("enrol-login", &e);
                return Next::Done(Step::new(Action::Deny).error(INTERNAL));
            }
        };
        let list: Vec<String> = codes.iter().map(|c| c.display()).collect();
        let ask = Step::new(Action::AskVisible(CONFIRM_PROMPT.into())).info(format!(
            "Your backup codes: each works once, when the phone is not at hand. \
             Keep them somewhere safe, away from the phone; they are not shown again.\n{}",
            list.join("\n")
        ));
        let confirming = Confirming {
            secret: p.secret,
            why: p.why,
            step,
            hashed,
            tries: 0,
        };
        Next::Continue(Phase::EnrolConfirm(confirming), ask)
    }

    pub(super) async fn enrol_confirm(
        &self,
        origin: &Origin,
        mut c: Confirming,
        answer: &[u8],
    ) -> Next {
        let yes = std::str::from_utf8(answer)
            .map(|a| a.trim().eq_ignore_ascii_case("yes"))
            .unwrap_or(false);
        if !yes {
            c.tries += 1;
            if c.tries >= TRIES {
                if let Some(claim) = c.why.claim() {
                    self.release_claim(origin, claim).await;
                }
                return Next::Done(Step::new(Action::Deny).error(
                    "Setup not finished; nothing was changed. Log in again to start over.",
                ));
            }
            let ask = Step::new(Action::AskVisible(CONFIRM_PROMPT.into()))
                .error("Please save the backup codes, then type yes.");
            return Next::Continue(Phase::EnrolConfirm(c), ask);
        }
        let Confirming {
            secret,
            why,
            step,
            hashed,
            ..
        } = c;
        let confirmed = Confirmed {
            secret,
            why,
            step,
            hashed,
        };
        // Nothing is stored yet: the password before this module may have
        // been wrong. The module commits from the account phase.
        Next::Continue(Phase::Commit(confirmed), Step::new(Action::AcceptPending))
    }

    /// Stores a confirmed enrolment, once the whole PAM auth stack has
    /// succeeded (`Login1.Commit`, from the account phase).
    pub(super) async fn commit_enrolment(&self, origin: &Origin, c: Confirmed) -> Step {
        let now = self.core.clock.now();
        let user = origin.user.clone();
        let Confirmed {
            secret,
            why,
            step,
            hashed,
        } = c;
        let count = hashed.len();
        let claim = why.claim().map(str::to_string);
        let stored = self
            .core
            .store
            .run(move |conn| {
                // After a recovery code, the code is used up here, with the
                // new method; if the claim was lost, nothing is stored.
                if let Some(session) = &claim {
                    if !recovery::consume_claimed(conn, &user, session, now)? {
                        return Ok(false);
                    }
                }
                accounts::ensure(conn, &user, now)?;
                totp::activate(conn, &user, &secret, step, now)?;
                backup_codes::replace_set(conn, &user, &hashed, now)?;
                recovery::remove(conn, &user)?;
                ratelimit::clear(conn, &user)?;
                accounts::record_login(conn, &user, method::APP, now)?;
                Ok(true)
            })
            .await;
        match stored {
            Ok(false) => Step::new(Action::Deny).error(
                "The recovery code is no longer valid (it expired, or a new reset replaced it); nothing was changed.",
            ),
            Ok(true) => {
                self.core.audit.log(Event::EnrolAtLogin {
                    origin,
                    method: method::APP,
                    why: why.name(),
                });
                self.core.audit.log(Event::BackupCodesNew {
                    user: &origin.user,
                    count,
                });
                notices::send(
                    &self.core,
                    &origin.user,
                    Notice::MethodAdded(crate::methods::Method::App),
                );
                Step::new(Action::Accept)
                    .info("Two-factor authentication is now set up for your account.")
            }
            Err(e) => {
                self.internal("enrol-login", &e.to_string());
                Step::new(Action::Deny).error(INTERNAL)
            }
        }
    }
}

/// Base32 in groups of 4 for reading and typing.
fn group4(text: &str) -> String {
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
