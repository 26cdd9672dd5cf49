//! Trusted devices at login: a login that presents a device its user
//! trusts passes without a code; after a right app or email code (never a
//! backup or recovery code) a login that presents a device is asked once
//! whether to trust it. Trust is stored only from the account phase
//! (`Commit`), like every change a login makes.
//!
//! ```text
//!   Begin ── trusted device (and a method; read with the login's facts) ──▶ AcceptPending (no code) ── Commit
//!   AskCode ── right app/email code, device presented ──▶ OfferTrust ── "y" ──▶ AcceptPending ── Commit ──▶ trusted
//!                                                              └── else ──▶ AcceptPending ── Commit
//! ```

use super::{waiting_for_commit, Change, Logins, Next, Passed, Phase, INTERNAL};
use crate::adapters::syslog::Event;
use crate::origin::Origin;
use crate::rules::trusted_devices::{self, Presented};
use crate::services::notices::Notice;
use crate::services::Caller;
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

    /// Stores the trust, once the whole PAM stack succeeded.
    pub(super) async fn commit_trust(&self, origin: &Origin, device: Presented) -> Step {
        let days = self.config.devices.days;
        let now = self.clock.now();
        let id = match trusted_devices::new_id(self.rng.as_ref()) {
            Ok(id) => id,
            Err(e) => {
                self.internal("login-device", &e.to_string());
                return Step::new(Action::Deny).error(INTERNAL);
            }
        };
        let (user, i, d) = (origin.user.clone(), id.clone(), device.clone());
        let stored = self
            .store
            .run(move |c| {
                trusted_devices::trust(c, &user, &i, &d, now, now + i64::from(days) * 86_400)
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
            Err(e) => {
                // The login itself succeeded; only the trust was not kept.
                self.internal("login-device", &e.to_string());
                Step::new(Action::Accept)
                    .error("The device could not be trusted; the next login asks for a code.")
            }
        }
    }
}
