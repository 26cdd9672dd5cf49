//! Which method a login asks for, and switching to another within the
//! same login. The prompt names the method; an email code is sent when the
//! email method is asked. An empty answer at a code prompt shows a
//! numbered list of the user's other methods (and, at the email prompt,
//! "send a new code"); choosing is not a failed attempt and costs no try.
//!
//! ```text
//!   AskCode{asked} ── "" ──▶ Choose{options} ── "2" ──▶ AskCode{other} (email: a code is sent now)
//!                                 ├── "" ──▶ AskCode{asked} again (nothing sent)
//!                                 └── anything else ──▶ Deny, not counted
//! ```

use super::{Logins, Next, Phase, INTERNAL};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::email_codes::{self, Purpose, Send, Sent};
use crate::rules::methods::{self, Method};
use crate::rules::ratelimit;
use crate::store::{Db, DbResult};
use twofactor_proto::{Action, Step};

pub const APP_PROMPT: &str = "Verification code from your authenticator app: ";
pub const CHOOSE_PROMPT: &str = "Choose a number (Enter: back): ";
/// The prompt when the user's methods are all turned off here.
const BACKUP_PROMPT: &str = "Backup code: ";
const HINT: &str = "Press Enter without a code to choose another method.";

/// What the user may pick from the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Method(Method),
    /// Send a new email code (at the email prompt).
    Resend,
}

/// What a login knows of the user's methods when it asks.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    /// The user's methods this machine offers that a prompt asks for (a
    /// security key over SSH is proved to sshd instead).
    pub usable: Vec<Method>,
    /// Their methods, offered or not.
    pub enrolled: Vec<Method>,
    /// Their confirmed email address (for sending; only its masked form
    /// is ever shown).
    pub address: Option<String>,
}

impl Methods {
    fn masked(&self) -> String {
        self.address
            .as_deref()
            .map(crate::message::masked)
            .unwrap_or_else(|| "your email address".into())
    }

    /// The choices offered at the prompt of `asked`.
    fn options(&self, asked: Method) -> Vec<Choice> {
        let mut options: Vec<Choice> = self
            .usable
            .iter()
            .copied()
            .filter(|m| *m != asked)
            .map(Choice::Method)
            .collect();
        if asked == Method::Email && self.usable.contains(&Method::Email) {
            options.push(Choice::Resend);
        }
        options
    }

    fn label(&self, choice: Choice) -> String {
        match choice {
            Choice::Method(Method::App) => "Code from your authenticator app".into(),
            Choice::Method(Method::Email) => format!("Code by email to {}", self.masked()),
            // Never among the choices (not asked at a prompt).
            Choice::Method(Method::SshKey) => "Security key over SSH".into(),
            Choice::Method(Method::Key) => "Security key".into(),
            Choice::Resend => format!("Send a new code to {}", self.masked()),
        }
    }
}

/// The user's methods as a login sees them, inside a store job.
pub(super) fn methods_in(c: &Db, user: &str, config: &crate::config::Config) -> DbResult<Methods> {
    let enrolled = methods::enrolled(c, user)?;
    let address = if enrolled.contains(&Method::Email) {
        email_codes::address(c, user)?
    } else {
        None
    };
    Ok(Methods {
        usable: enrolled
            .iter()
            .copied()
            .filter(|m| m.offered(config) && m.asked_at_prompt())
            .collect(),
        enrolled,
        address,
    })
}

/// The list shown after an empty answer; `back` is the method asked before.
pub struct Menu {
    options: Vec<Choice>,
    back: Method,
}

/// The prompt that asks for a code of `method`.
fn prompt(method: Method, methods: &Methods) -> String {
    match method {
        Method::App => APP_PROMPT.into(),
        Method::Email => format!("Verification code sent to {}: ", methods.masked()),
        Method::SshKey | Method::Key => BACKUP_PROMPT.into(),
    }
}

/// The email prompt when no code was sent now: it claims no send.
fn earlier_code_prompt(methods: &Methods) -> String {
    format!("Code from the last email to {}: ", methods.masked())
}

/// The email prompt when no code was sent and none is waiting.
const NO_CODE_PROMPT: &str = "Email code (none was sent; press Enter for another method): ";

impl Logins {
    /// The user's methods as a login sees them.
    pub(super) async fn methods_of(&self, user: &str) -> Result<Methods, String> {
        let user = user.to_string();
        let config = self.config.clone();
        self.store
            .run(move |c| methods_in(c, &user, &config))
            .await
            .map_err(|e| e.to_string())
    }

    /// The step that asks for a code of `method`. For email, a fresh code
    /// is sent first (the previous one stops working); if it cannot be
    /// sent the user is told, and can choose another method.
    pub(super) async fn ask(&self, origin: &Origin, method: Method, methods: &Methods) -> Step {
        let mut step = Step::new(Action::AskHidden(prompt(method, methods)));
        if method == Method::SshKey {
            // The user's only method here is a security key, which only an
            // SSH login with that key proves.
            step = Step::new(Action::AskHidden(BACKUP_PROMPT.into())).error(
                "Your second factor is a security key, used over SSH with its SSH key; \
                 here, type a backup code.",
            );
        } else if method == Method::Key {
            // The user's only method is a security key, and none answered
            // (none plugged in, an SSH login, a module without the helper).
            step = Step::new(Action::AskHidden(BACKUP_PROMPT.into())).error(
                "Your second factor is a security key, touched at a login on this machine's \
                 console, su or sudo with the key plugged in; here, type a backup code.",
            );
        } else if !methods.usable.contains(&method) && methods.enrolled.contains(&method) {
            step = Step::new(Action::AskHidden(BACKUP_PROMPT.into())).error(format!(
                "{} codes are turned off on this machine: type a backup code, or ask an \
                 administrator.",
                method.name()
            ));
        } else if method == Method::Email {
            let source = ratelimit::source_of(origin);
            let sent = match methods.address.as_deref() {
                Some(to) => {
                    let send = Send {
                        user: &origin.user,
                        purpose: Purpose::Login,
                        source: &source,
                    };
                    self.outbox.send_code(send, to, &origin.service).await
                }
                None => Sent::Failed,
            };
            // The prompt says what happened: it names a send only when one
            // was made.
            step = match sent {
                Sent::Sent => step.info(format!(
                    "A code was sent to {}; it is valid for {} minutes.",
                    methods.masked(),
                    self.config.email.code_minutes
                )),
                Sent::TooMany {
                    wait,
                    earlier_works: true,
                } => Step::new(Action::AskHidden(earlier_code_prompt(methods))).error(format!(
                    "Too many codes were sent; a new one can be sent in {} minutes. The last \
                     code sent here still works.",
                    (wait + 59) / 60
                )),
                Sent::TooMany {
                    wait,
                    earlier_works: false,
                } => Step::new(Action::AskHidden(NO_CODE_PROMPT.into())).error(format!(
                    "Too many codes were sent; a new one can be sent in {} minutes.",
                    (wait + 59) / 60
                )),
                Sent::Failed => Step::new(Action::AskHidden(NO_CODE_PROMPT.into())).error(format!(
                    "The code could not be sent to {}.",
                    methods.masked()
                )),
            };
        }
        if !methods.options(method).is_empty() {
            step = step.info(HINT);
        }
        step
    }

    /// After an empty answer at the prompt of `asked`: the list of other
    /// choices, or None when there is nothing to choose.
    pub(super) async fn offer_choices(&self, origin: &Origin, asked: Method) -> Option<Next> {
        let methods = match self.methods_of(&origin.user).await {
            Ok(m) => m,
            Err(e) => {
                self.internal("login-choose", &e);
                return Some(Next::Done(Step::new(Action::Deny).error(INTERNAL)));
            }
        };
        let options = methods.options(asked);
        if options.is_empty() {
            return None;
        }
        let mut step = Step::new(Action::AskVisible(CHOOSE_PROMPT.into()));
        for (i, choice) in options.iter().enumerate() {
            step = step.info(format!("{}. {}", i + 1, methods.label(*choice)));
        }
        Some(Next::Continue(
            Phase::Choose(Menu {
                options,
                back: asked,
            }),
            step,
        ))
    }

    /// The answer to the list: a number picks; an empty answer goes back.
    pub(super) async fn choose(&self, origin: &Origin, menu: Menu, answer: &[u8]) -> Next {
        let picked = std::str::from_utf8(answer)
            .ok()
            .map(str::trim)
            .and_then(|a| {
                if a.is_empty() {
                    return Some(None);
                }
                a.parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| menu.options.get(i))
                    .map(|c| Some(*c))
            });
        let method = match picked {
            None => {
                self.audit.log(Event::LoginFailure {
                    origin,
                    reason: "not-a-choice",
                });
                return Next::Done(
                    Step::new(Action::Deny).error("That is not one of the choices."),
                );
            }
            Some(None) => menu.back,
            Some(Some(Choice::Method(m))) => m,
            Some(Some(Choice::Resend)) => Method::Email,
        };
        let methods = match self.methods_of(&origin.user).await {
            Ok(m) => m,
            Err(e) => {
                self.internal("login-choose", &e);
                return Next::Done(Step::new(Action::Deny).error(INTERNAL));
            }
        };
        let step = if picked == Some(None) {
            // Back to the same prompt: nothing is sent again (nor claimed).
            let asked = match method {
                Method::Email => earlier_code_prompt(&methods),
                other => prompt(other, &methods),
            };
            Step::new(Action::AskHidden(asked))
        } else {
            self.ask(origin, method, &methods).await
        };
        Next::Continue(Phase::AskCode { asked: method }, step)
    }
}
