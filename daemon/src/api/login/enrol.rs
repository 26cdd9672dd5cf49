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
use crate::adapters::syslog::Event;
use crate::api::qr;
use crate::origin::Origin;
use crate::rules::bookkeeping;
use crate::rules::email_codes::{self, Sent};
use crate::rules::methods::Method;
use crate::rules::methods::{self, BackupCodes, NewMethod};
use crate::rules::ratelimit;
use crate::rules::recovery_codes;
use crate::rules::totp::{self, Check, Secret};
use crate::services::notices::Notice;
use twofactor_proto::error::Error;
use twofactor_proto::types::method;
use twofactor_proto::{Action, Step};

/// Tries for the code, and for the confirmation.
const TRIES: u8 = 3;
pub const CODE_PROMPT: &str = "Code from the app: ";
pub const CONFIRM_PROMPT: &str = "Type yes once you have saved them: ";
const NOT_FINISHED: &str = "Setup not finished; nothing was changed. Log in again to start over.";

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

/// The method being set up, once its code was right.
pub enum Setup {
    /// The app's secret, and the step of the code that proved it.
    App { secret: Secret, step: i64 },
    /// The address a code was sent to and typed back from.
    Email { address: String },
}

impl Setup {
    fn method(&self) -> Method {
        match self {
            Setup::App { .. } => Method::App,
            Setup::Email { .. } => Method::Email,
        }
    }
}

/// Confirmed: waiting for the account phase to commit it.
pub struct Confirmed {
    setup: Setup,
    why: Why,
    hashed: Vec<(String, String)>,
}

/// The code was right; backup codes were shown; waiting for "yes".
pub struct Confirming {
    setup: Setup,
    why: Why,
    hashed: Vec<(String, String)>,
    tries: u8,
}

/// Email codes set up at the prompt (offered when an administrator turned
/// them on): which method, then the address, then the code sent to it.
/// The code is kept here, never stored, like the app's secret.
pub struct EmailSetup {
    why: Why,
    stage: Stage,
    tries: u8,
}

enum Stage {
    /// "1. app  2. email" was asked.
    Choose,
    /// The address was asked.
    Address,
    /// A code was sent to `address`.
    Code {
        address: String,
        digest: Vec<u8>,
        expires: i64,
    },
}

impl EmailSetup {
    pub fn recovery_claim(&self) -> Option<&str> {
        self.why.claim()
    }
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

    /// The method being set up.
    pub fn method(&self) -> Method {
        self.setup.method()
    }
}

/// The reminder shown before the policy's start date.
pub fn reminder(date: &str) -> String {
    format!(
        "Two-factor authentication becomes mandatory for your account on {date}. \
         Set it up now with `twofactorctl enable app`."
    )
}

pub const CHOOSE_PROMPT: &str = "Choose 1 or 2: ";
pub const ADDRESS_PROMPT: &str = "Email address: ";
pub const EMAIL_CODE_PROMPT: &str = "Code from the email: ";

fn intro(why: &Why) -> &'static str {
    match why {
        Why::Policy => "Two-factor authentication is required for your account.",
        Why::Recovery(_) => "Recovery code accepted.",
    }
}

impl Logins {
    /// The first step of enrolment at the prompt: the methods this machine
    /// offers to choose from, or straight to the app when it is the only
    /// one.
    pub(super) fn start_enrolment(
        &self,
        origin: &Origin,
        why: Why,
    ) -> Result<(Phase, Step), Error> {
        if !Method::Email.offered(&self.config) {
            return self.start_app_enrolment(origin, why);
        }
        let step = Step::new(Action::AskVisible(CHOOSE_PROMPT.into()))
            .info(format!(
                "{} Set up a second factor now to finish logging in:",
                intro(&why)
            ))
            .info("1. An authenticator app on your phone")
            .info("2. Codes sent to you by email");
        let setup = EmailSetup {
            why,
            stage: Stage::Choose,
            tries: 0,
        };
        Ok((Phase::EnrolEmail(setup), step))
    }

    /// A step of [`EmailSetup`].
    pub(super) async fn enrol_email(
        &self,
        origin: &Origin,
        mut e: EmailSetup,
        answer: &[u8],
    ) -> Next {
        let text = std::str::from_utf8(answer).map(str::trim).unwrap_or("");
        let again = |e: EmailSetup, prompt: &str, error: &str| {
            Next::Continue(
                Phase::EnrolEmail(e),
                Step::new(Action::AskVisible(prompt.into())).error(error),
            )
        };
        match std::mem::replace(&mut e.stage, Stage::Choose) {
            Stage::Choose => match text {
                "1" => match self.start_app_enrolment(origin, e.why) {
                    Ok((phase, step)) => Next::Continue(phase, step),
                    Err(_) => Next::Done(Step::new(Action::Deny).error(INTERNAL)),
                },
                "2" => {
                    e.stage = Stage::Address;
                    Next::Continue(
                        Phase::EnrolEmail(e),
                        Step::new(Action::AskVisible(ADDRESS_PROMPT.into()))
                            .info("Where should codes be sent?"),
                    )
                }
                _ => match self.try_again(origin, e).await {
                    Some(e) => again(e, CHOOSE_PROMPT, "Type 1 or 2."),
                    None => Next::Done(Step::new(Action::Deny).error(NOT_FINISHED)),
                },
            },
            Stage::Address => {
                if !crate::message::valid_address(text) {
                    e.stage = Stage::Address;
                    return match self.try_again(origin, e).await {
                        Some(e) => again(
                            e,
                            ADDRESS_PROMPT,
                            "That is not an email address (name@domain).",
                        ),
                        None => Next::Done(Step::new(Action::Deny).error(NOT_FINISHED)),
                    };
                }
                let sent = self
                    .outbox
                    .send_kept_code(
                        &origin.user,
                        &ratelimit::source_of(origin),
                        text,
                        &origin.service,
                    )
                    .await;
                match sent {
                    Ok((digest, expires)) => {
                        let masked = crate::message::masked(text);
                        e.stage = Stage::Code {
                            address: text.to_string(),
                            digest,
                            expires,
                        };
                        e.tries = 0;
                        Next::Continue(
                            Phase::EnrolEmail(e),
                            Step::new(Action::AskVisible(EMAIL_CODE_PROMPT.into()))
                                .info(format!("A code was sent to {masked}; type it here.")),
                        )
                    }
                    Err(Sent::TooMany { wait, .. }) => {
                        // Back to the choice: the app still works. An
                        // address typed here (perhaps after a wrong
                        // password) is mailed once per source and 10
                        // minutes.
                        e.stage = Stage::Choose;
                        again(
                            e,
                            CHOOSE_PROMPT,
                            &format!(
                                "No code was sent: codes to a new address can be sent from \
                                 here again in {} minutes. Choose 1 for the app.",
                                (wait + 59) / 60
                            ),
                        )
                    }
                    Err(_) => {
                        e.stage = Stage::Choose;
                        again(
                            e,
                            CHOOSE_PROMPT,
                            "The code could not be sent. Choose 1 for the app, or 2 to try \
                             another address.",
                        )
                    }
                }
            }
            Stage::Code {
                address,
                digest,
                expires,
            } => {
                let now = self.clock.now();
                let right = now < expires
                    && totp::parse_code(answer)
                        .map(|code| email_codes::matches(&digest, &code))
                        .unwrap_or(false);
                if right {
                    return self
                        .offer_backup_codes(Setup::Email { address }, e.why)
                        .await;
                }
                e.stage = Stage::Code {
                    address,
                    digest,
                    expires,
                };
                match self.try_again(origin, e).await {
                    Some(e) => again(
                        e,
                        EMAIL_CODE_PROMPT,
                        "That is not the code of the email; try again.",
                    ),
                    None => {
                        self.audit.log(Event::EnrolFailure {
                            user: &origin.user,
                            method: method::EMAIL,
                            reason: "wrong-code-at-login",
                        });
                        Next::Done(Step::new(Action::Deny).error(NOT_FINISHED))
                    }
                }
            }
        }
    }

    /// One more try of [`EmailSetup`], or None when they are used up (a
    /// claimed recovery code is given back).
    async fn try_again(&self, origin: &Origin, mut e: EmailSetup) -> Option<EmailSetup> {
        e.tries += 1;
        if e.tries < TRIES {
            return Some(e);
        }
        if let Some(claim) = e.why.claim() {
            self.release_claim(origin, claim).await;
        }
        None
    }

    /// A new secret and the step that shows it and asks for a code.
    fn start_app_enrolment(&self, origin: &Origin, why: Why) -> Result<(Phase, Step), Error> {
        let secret = Secret::generate(self.rng.as_ref())
            .map_err(|e| self.internal("enrol-login", &e.to_string()))?;
        let issuer = self.config.issuer_or_hostname();
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
        let now = self.clock.now();
        let right = match totp::parse_code(answer) {
            Ok(code) => match totp::check(&p.secret, &code, now, self.config.totp.skew_steps, -1) {
                Check::Accepted(step) => Some(step),
                _ => None,
            },
            Err(_) => None,
        };
        let Some(step) = right else {
            p.tries += 1;
            if p.tries >= TRIES {
                self.audit.log(Event::EnrolFailure {
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
        let setup = Setup::App {
            secret: p.secret,
            step,
        };
        self.offer_backup_codes(setup, p.why).await
    }

    /// The new method's code was right: a set of backup codes is shown
    /// and confirmation asked (nothing is stored yet).
    async fn offer_backup_codes(&self, setup: Setup, why: Why) -> Next {
        let (codes, hashed) = match self.hashing.new_set().await {
            Ok(made) => made,
            Err(e) => {
                self.internal("enrol-login", &e);
                return Next::Done(Step::new(Action::Deny).error(INTERNAL));
            }
        };
        let list: Vec<String> = codes.iter().map(|c| c.display()).collect();
        let ask = Step::new(Action::AskVisible(CONFIRM_PROMPT.into())).info(format!(
            "Your backup codes: each works once, when your second factor is not at hand. \
             Keep them somewhere safe; they are not shown again.\n{}",
            list.join("\n")
        ));
        let confirming = Confirming {
            setup,
            why,
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
            setup, why, hashed, ..
        } = c;
        let confirmed = Confirmed { setup, why, hashed };
        // Nothing is stored yet: the password before this module may have
        // been wrong. The module commits from the account phase.
        Next::Continue(
            Phase::Commit(super::Change::Enrolment(confirmed)),
            Step::new(Action::AcceptPending),
        )
    }

    /// Stores a confirmed enrolment, once the whole PAM auth stack has
    /// succeeded (`Login1.Commit`, from the account phase).
    pub(super) async fn commit_enrolment(&self, origin: &Origin, c: Confirmed) -> Step {
        let now = self.clock.now();
        let user = origin.user.clone();
        let host: std::sync::Arc<str> = self.host_of(origin).into();
        let Confirmed { setup, why, hashed } = c;
        let method = setup.method();
        let count = hashed.len();
        let claim = why.claim().map(str::to_string);
        let stored = self
            .store
            .run(move |conn| {
                // After a recovery code, the code is used up here, with the
                // new method; if the claim was lost, nothing is stored.
                if let Some(session) = &claim {
                    if !recovery_codes::consume_claimed(conn, &user, session, now)? {
                        return Ok(false);
                    }
                }
                let new = match &setup {
                    Setup::App { secret, step } => NewMethod::App {
                        secret,
                        step: *step,
                    },
                    Setup::Email { address } => NewMethod::Email { address },
                };
                methods::activate(conn, &user, new, BackupCodes::Replace(&hashed), now)?;
                // The login succeeded: its failures are forgotten.
                ratelimit::clear(conn, &user)?;
                bookkeeping::record_login(conn, &user, method.name(), now, &host)?;
                Ok(true)
            })
            .await;
        match stored {
            Ok(false) => Step::new(Action::Deny).error(
                "The recovery code is no longer valid (it expired, or a new reset replaced it); nothing was changed.",
            ),
            Ok(true) => {
                self.audit.log(Event::EnrolAtLogin {
                    origin,
                    method: method.name(),
                    why: why.name(),
                });
                self.audit.log(Event::BackupCodesNew {
                    user: &origin.user,
                    count,
                });
                self.outbox.notify(&origin.user, Notice::MethodAdded(method));
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
