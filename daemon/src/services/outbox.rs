//! The outbox: every mail the daemon sends goes out here, after the change
//! it tells of has been committed: email codes (made, counted and stored
//! by `rules::email_codes`, then mailed) and security notices (sent in the
//! background; a change never waits for or depends on one). Sending runs
//! off the async workers, under the configured timeout. No audit line
//! carries a code; addresses appear masked.

use crate::adapters::smtp::{MailError, Mailer};
use crate::adapters::syslog::{Audit, Event};
use crate::clock::Clock;
use crate::config::EmailConfig;
use crate::message::Mail;
use crate::random::Random;
use crate::rules::email_codes::{self, Purpose, Send, Sent};
use crate::services::notices::{self, Notice};
use crate::store::Store;
use std::sync::Arc;

pub struct Outbox {
    mailer: Arc<dyn Mailer>,
    config: EmailConfig,
    store: Store,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    audit: Arc<Audit>,
}

impl Outbox {
    pub fn new(
        mailer: Arc<dyn Mailer>,
        config: EmailConfig,
        store: Store,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        audit: Arc<Audit>,
    ) -> Self {
        Outbox {
            mailer,
            config,
            store,
            clock,
            rng,
            audit,
        }
    }

    /// Sends `mail` off the async workers, giving up after the configured
    /// timeout (the relay's own timeout should have ended it before).
    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let mailer = self.mailer.clone();
        let limit = std::time::Duration::from_secs(u64::from(self.config.timeout_seconds) + 1);
        let sent = tokio::task::spawn_blocking(move || mailer.send(&mail));
        match tokio::time::timeout(limit, sent).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(MailError::Relay(format!("send task failed: {e}"))),
            Err(_) => Err(MailError::Timeout),
        }
    }

    /// Makes a code for `send`, stores it (voiding the previous one for
    /// that purpose and source; counted against the limits) and mails it
    /// to `to`. A failure is audited without the code; the address appears
    /// masked.
    pub async fn send_code(&self, send: Send<'_>, to: &str, service: &str) -> Sent {
        match self.deliver(send, to, service).await {
            Ok(_) => Sent::Sent,
            Err(sent) => sent,
        }
    }

    /// Makes and mails a code that is not stored: the caller keeps its
    /// digest (enrolment at the login prompt, which stores nothing before
    /// the whole PAM stack succeeded). Returns the digest and when the
    /// code expires.
    pub async fn send_kept_code(
        &self,
        user: &str,
        source: &str,
        to: &str,
        service: &str,
    ) -> Result<(Vec<u8>, i64), Sent> {
        let send = Send {
            user,
            purpose: Purpose::Enrol,
            source,
        };
        self.deliver(send, to, service).await
    }

    /// A code for `send`, counted (and stored, unless the caller keeps it)
    /// by the rule, then mailed.
    async fn deliver(
        &self,
        send: Send<'_>,
        to: &str,
        service: &str,
    ) -> Result<(Vec<u8>, i64), Sent> {
        let (user, label) = (send.user, send.purpose.name());
        let config = &self.config;
        let made = email_codes::generate(self.rng.as_ref()).and_then(|code| {
            email_codes::digest(self.rng.as_ref(), &code).map(|digest| (code, digest))
        });
        let (code, digest) = made.map_err(|e| {
            self.audit.internal("email-code", &e.to_string());
            Sent::Failed
        })?;
        let now = self.clock.now();
        let expires = now + i64::from(config.code_minutes) * 60;
        let (u, source, purpose) = (user.to_string(), send.source.to_string(), send.purpose);
        let (address, per_hour, d) = (to.to_string(), config.max_sends_per_hour, digest.clone());
        let stored = self
            .store
            .run(move |c| {
                let send = Send {
                    user: &u,
                    purpose,
                    source: &source,
                };
                email_codes::record_send(c, send, (&address, &d), (now, expires), per_hour)
            })
            .await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(too_many)) => {
                self.audit.log(Event::MailFailed {
                    user,
                    purpose: label,
                    error: "send limit reached",
                });
                return Err(too_many);
            }
            Err(e) => {
                self.audit.internal("email-code", &e.to_string());
                return Err(Sent::Failed);
            }
        }
        let mail = email_codes::code_mail(config, to, &code, service);
        match self.send(mail).await {
            Ok(()) => {
                self.audit.log(Event::MailSent {
                    user,
                    purpose: label,
                    to: &crate::message::masked(to),
                });
                Ok((digest, expires))
            }
            Err(e) => {
                self.audit.log(Event::MailFailed {
                    user,
                    purpose: label,
                    error: &e.to_string(),
                });
                Err(Sent::Failed)
            }
        }
    }

    /// Sends `notice` to `user` in the background (when notices are on),
    /// to their confirmed address as it is after the change. The returned
    /// handle is for tests; the change never waits for it.
    pub fn notify(
        self: &Arc<Self>,
        user: &str,
        notice: Notice,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.notify_at(user, None, notice)
    }

    /// [`Outbox::notify`] at `confirmed`, the address the user had before
    /// a change that removed it (a reset, `disable email`); None: look it
    /// up now.
    pub fn notify_at(
        self: &Arc<Self>,
        user: &str,
        confirmed: Option<String>,
        notice: Notice,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.config.notices {
            return None;
        }
        let outbox = self.clone();
        let user = user.to_string();
        Some(tokio::spawn(async move {
            let u = user.clone();
            let looked_up = match (&notice, confirmed) {
                (Notice::AddressChanged { old, .. }, _) => Ok(Some(old.clone())),
                (_, Some(address)) => Ok(Some(address)),
                (_, None) => outbox.store.run(move |c| email_codes::address(c, &u)).await,
            };
            let address = match looked_up {
                Ok(Some(address)) => address,
                Ok(None) if !outbox.config.mailbox_domain.is_empty() => {
                    format!("{user}@{}", outbox.config.mailbox_domain)
                }
                Ok(None) => return,
                Err(e) => {
                    outbox.audit.internal("notice", &e.to_string());
                    return;
                }
            };
            let to = crate::message::masked(&address);
            match outbox
                .send(notices::compose(&user, &address, &notice))
                .await
            {
                Ok(()) => outbox.audit.log(Event::MailSent {
                    user: &user,
                    purpose: "notice",
                    to: &to,
                }),
                Err(e) => outbox.audit.log(Event::MailFailed {
                    user: &user,
                    purpose: "notice",
                    error: &e.to_string(),
                }),
            }
        }))
    }
}
