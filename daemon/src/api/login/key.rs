//! A security key at a local login: the key step and its answer.
//!
//! A login without `PAM_RHOST`, from a module that can run a key
//! (`security_keys` in `Begin`), of a user with a registered key, starts
//! with [`Action::UseKey`]: a fresh challenge and the user's credential
//! ids. The module's helper brings back what the key signed, or why it
//! signed nothing. A signature goes through the one code-checking path
//! (`services::factors`: counted, verified, counter raised in one job);
//! anything else (no key plugged in, another key, no touch in time) is not
//! an attempt and leads to the user's other method, as an empty answer at
//! a code prompt does.

use twofactor_proto::key::{AssertionRequest, KeyAnswer, HASH_LEN};
use twofactor_proto::{Action, MessageKind, Step};

use super::check::accepted;
use super::{KeyGroups, Logins, Next, Phase, INTERNAL};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::methods::Method;
use crate::rules::ratelimit;
use crate::services::factors::{Asked, Attempt, KeyUse, Verdict};

/// What the prompt says while the module waits for the key.
pub const TOUCH: &str = "Touch your security key.";

impl Logins {
    /// Whether this login may ask for a key: a local login (no remote
    /// host) from a module that can run one, on a machine that offers
    /// keys, of a user who has one.
    pub(super) fn key_usable(&self, origin: &Origin, credentials: &KeyGroups) -> bool {
        origin.security_keys
            && origin.rhost.is_empty()
            && Method::Key.offered(&self.config)
            && !credentials.is_empty()
    }

    /// The key step: a fresh challenge for the user's credentials of the
    /// first relying party in `groups` (this machine's come first); the
    /// others wait in the phase. `fallback`: the method asked when no key
    /// answers.
    pub(super) fn ask_key(
        &self,
        mut groups: KeyGroups,
        fallback: Method,
    ) -> Result<(Phase, Step), String> {
        if groups.is_empty() {
            return Err("no credentials to ask for".into());
        }
        let (rp_id, allow) = groups.remove(0);
        let mut client_data_hash = [0u8; HASH_LEN];
        self.rng
            .fill(&mut client_data_hash)
            .map_err(|e| e.to_string())?;
        let request = AssertionRequest {
            rp_id: if rp_id.is_empty() {
                self.config.key_rp_id()
            } else {
                rp_id
            },
            client_data_hash,
            allow,
            user_verification: self.config.key_user_verification(),
        };
        let step = Step::new(Action::UseKey(request.encode())).info(TOUCH);
        let phase = Phase::UseKey {
            request,
            fallback,
            more: groups,
        };
        Ok((phase, step))
    }

    /// What the module brought back from the key.
    pub(super) async fn key_answer(
        &self,
        origin: &Origin,
        (request, more): (AssertionRequest, KeyGroups),
        fallback: Method,
        answer: &[u8],
    ) -> Next {
        let decoded = match KeyAnswer::decode(answer) {
            Ok(decoded) => decoded,
            Err(_) => {
                self.audit.log(Event::LoginFailure {
                    origin,
                    reason: "malformed",
                });
                return Next::Done(
                    Step::new(Action::Deny).error("Unreadable answer from the security key."),
                );
            }
        };
        let why_not = match decoded {
            KeyAnswer::Assertion(assertion) => {
                return self.check_key(origin, KeyUse { request, assertion }).await
            }
            KeyAnswer::NotRegistered if !more.is_empty() => {
                // The key holds none of these: ask for the credentials of
                // the next relying party (an SSH key's `ssh:` ones).
                return match self.ask_key(more, fallback) {
                    Ok((phase, step)) => Next::Continue(phase, step),
                    Err(e) => {
                        self.internal("login-answer", &e);
                        Next::Done(Step::new(Action::Deny).error(INTERNAL))
                    }
                };
            }
            // Not offered: no key is plugged in (the module showed nothing).
            KeyAnswer::NoDevice => "",
            KeyAnswer::NotRegistered => {
                "The security key plugged in is not registered for your account."
            }
            KeyAnswer::NoTouch => "The security key was not touched in time.",
            KeyAnswer::PinInvalid => "The security key did not take its PIN.",
            KeyAnswer::PinRequired | KeyAnswer::Ready => "The security key did not answer.",
            KeyAnswer::Failed(e) => {
                // The helper's words (libfido2's error), bounded; no secret.
                let e: String = e.chars().take(200).collect();
                self.audit.log(Event::Error {
                    context: "security-key",
                    error: &e,
                });
                "The security key did not answer."
            }
        };
        // Not an attempt: the user's other way in.
        let methods = match self.methods_of(&origin.user).await {
            Ok(m) => m,
            Err(e) => {
                self.internal("login-answer", &e);
                return Next::Done(Step::new(Action::Deny).error(INTERNAL));
            }
        };
        let mut step = self.ask(origin, fallback, &methods).await;
        if !why_not.is_empty() {
            step.messages
                .insert(0, (MessageKind::Info, why_not.to_string()));
        }
        Next::Continue(Phase::AskCode { asked: fallback }, step)
    }

    /// A key's signature, through the one code-checking path.
    async fn check_key(&self, origin: &Origin, used: KeyUse) -> Next {
        let source = ratelimit::source_of(origin);
        let asked = Asked {
            user: &origin.user,
            source: &source,
            login: Some(self.host_of(origin)),
        };
        match self
            .factors
            .check(asked, Attempt::Key(Box::new(used)))
            .await
        {
            Ok(Verdict::Accepted {
                method,
                backup_left,
            }) => Next::Passed {
                method,
                step: accepted(backup_left),
                may_trust: false,
            },
            Ok(Verdict::Refused { reason, lock }) => {
                // Audited (and the lockout) as any refused factor.
                self.refused(origin, reason, lock);
                let deny = Step::new(Action::Deny);
                Next::Done(if reason == "security-key-counter-went-back" {
                    deny.error(
                        "This security key's counter went back: a copy of it may be in use. \
                         Tell your administrator.",
                    )
                } else {
                    deny.error("The security key's answer was not accepted.")
                })
            }
            Ok(Verdict::Locked(wait)) => Next::Done(self.locked(origin, wait)),
            Err(e) => {
                self.internal("login-answer", &e);
                Next::Done(Step::new(Action::Deny).error(INTERNAL))
            }
        }
    }
}
