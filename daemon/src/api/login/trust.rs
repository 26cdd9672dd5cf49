//! Trusted devices at login: a login that presents a device its user
//! trusts passes without a code; after a right app or email code (never a
//! backup or recovery code) a login that presents a device is asked once
//! whether to trust it. Trust is stored only from the account phase
//! (`Commit`), like every change a login makes, with a keyed digest of
//! what the shadow database says of the user's password then; a login that
//! finds the password changed since ends the trust and asks for a code. A
//! shadow look-up that fails uses no trust and gives none.
//!
//! ```text
//!   Begin ── trusted device (and a method; read with the login's facts),
//!            same password as when it was trusted ──▶ AcceptPending (no code) ── Commit
//!        └── password changed ──▶ trust ended (audited) ──▶ AskCode …
//!   AskCode ── right app/email code, device presented ──▶ OfferTrust ── "y" ──▶ AcceptPending ── Commit ──▶ trusted
//!                                                              └── else ──▶ AcceptPending ── Commit
//! ```

use super::{waiting_for_commit, Change, Logins, Next, Passed, Phase, INTERNAL};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::trusted_devices::{self, Presented, Use};
use crate::services::notices::Notice;
use crate::services::Caller;
use twofactor_proto::error::Error;
use twofactor_proto::{Action, Step};

/// The question, with the number of days.
pub fn question(days: u32) -> String {
    format!("Don't ask again on this device for {days} days? [y/N] ")
}

/// The device a login presents, if it may be trusted at all: only root's
/// logins (sshd), only from the services named as sshd. `offered`: what
/// the login's details name ([`trusted_devices::presented`]).
pub(super) fn presented(caller: &Caller, offered: Option<Presented>) -> Option<Presented> {
    offered.filter(|_| caller.uid == 0)
}

impl Logins {
    /// After a right code: ask whether to trust the device, keeping what
    /// the accepting step had to say.
    pub(super) fn offer_trust(&self, accepted: Step, device: Presented, passed: Passed) -> Next {
        let mut ask = Step::new(Action::AskVisible(question(self.config.devices.days)));
        ask.messages = accepted.messages;
        Next::Continue(Phase::OfferTrust(device, passed), ask)
    }

    /// The answer to the question: either way the login waits for the
    /// account phase, which stores the trust on yes.
    pub(super) fn trust_answer(&self, device: Presented, passed: Passed, answer: &[u8]) -> Next {
        let yes = std::str::from_utf8(answer)
            .map(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
            .unwrap_or(false);
        let change = if yes {
            Change::Trust(device, passed)
        } else {
            Change::Login(passed)
        };
        Next::Continue(
            Phase::Commit(change),
            waiting_for_commit(Step::new(Action::Accept)),
        )
    }

    /// A device the login's read found trusted: what the shadow database
    /// says of the password now (off the async workers), then one job of
    /// the writer that checks the trust again, compares the password and
    /// records the use or ends the trust, before the login is let
    /// through. The trusted device's id, or None: a code is asked.
    pub(super) async fn use_trust(
        &self,
        origin: &Origin,
        presented: &Presented,
        now: i64,
    ) -> Result<Option<String>, Error> {
        let password = match self.directory_for(origin).password_of(&origin.user).await {
            Ok(password) => password,
            Err(e) => {
                // Fail closed: no answer is never "unchanged". The trust
                // stays for a later login that gets an answer.
                self.internal("login-device", &e);
                return Ok(None);
            }
        };
        let (user, presented) = (origin.user.clone(), presented.clone());
        let found = self
            .store
            .run(move |c| trusted_devices::use_trusted(c, &user, &presented, &password, now))
            .await
            .map_err(|e| self.internal("login-begin", &e.to_string()))?;
        Ok(match found {
            Use::Trusted(id) => Some(id),
            Use::NotTrusted => None,
            Use::Ended { id, why } => {
                self.audit.log(Event::DeviceEnded {
                    origin,
                    device: &id,
                    why: why.name(),
                });
                None
            }
        })
    }

    /// Stores the trust, once the whole PAM stack succeeded, under the
    /// password the shadow database gives now.
    pub(super) async fn commit_trust(&self, origin: &Origin, device: Presented) -> Step {
        let days = self.config.devices.days;
        let now = self.clock.now();
        let not_kept = |e: &str| {
            // The login itself succeeded; only the trust was not kept.
            self.internal("login-device", e);
            Step::new(Action::Accept)
                .error("The device could not be trusted; the next login asks for a code.")
        };
        let password = match self.directory_for(origin).password_of(&origin.user).await {
            Ok(password) => password,
            Err(e) => return not_kept(&e),
        };
        let (id, digest) = match trusted_devices::new_id(self.rng.as_ref()).and_then(|id| {
            trusted_devices::password_digest(self.rng.as_ref(), &password).map(|d| (id, d))
        }) {
            Ok(made) => made,
            Err(e) => {
                self.internal("login-device", &e.to_string());
                return Step::new(Action::Deny).error(INTERNAL);
            }
        };
        let (user, i, d) = (origin.user.clone(), id.clone(), device.clone());
        let stored = self
            .store
            .run(move |c| {
                let expires = now + i64::from(days) * 86_400;
                trusted_devices::trust(c, &user, &i, &d, &digest, now, expires)
            })
            .await;
        match stored {
            Ok(()) => {
                self.audit.log(Event::DeviceTrusted {
                    origin,
                    device: &id,
                    days,
                });
                self.outbox.notify(
                    &origin.user,
                    Notice::DeviceTrusted {
                        label: device.label.clone(),
                        days,
                    },
                );
                Step::new(Action::Accept).info(format!(
                    "This device is trusted for {days} days (`twofactorctl devices` lists it)."
                ))
            }
            Err(e) => not_kept(&e.to_string()),
        }
    }
}
