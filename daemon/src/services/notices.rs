//! Security notices by email: the user is told when an administrator
//! resets their 2FA, when a method is added or removed, and when a new set
//! of backup codes is made. A notice goes to the user's confirmed email
//! address, else to their local mailbox (`USER@mailbox_domain`, as cron's
//! mail), and only when `[email] notices` is on. Notices are sent after
//! the change, off its path: the change never waits for or depends on one.

use crate::adapters::smtp::Mail;
use crate::adapters::syslog::Event;
use crate::rules::email_codes;
use crate::rules::methods::Method;
use crate::services::core::Core;
use std::sync::Arc;

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An administrator reset the account's 2FA.
    Reset {
        by: String,
    },
    MethodAdded(Method),
    /// Email codes moved to another address; told to the old address
    /// (`old`), the one an attacker who changed it cannot read.
    AddressChanged {
        old: String,
        new: String,
    },
    /// A method (or, with None, every method) was removed.
    MethodRemoved(Option<Method>),
    BackupCodesNew,
    /// A device was trusted: logins from it ask no code for `days` days.
    DeviceTrusted {
        label: String,
        days: u32,
    },
}

impl Notice {
    fn what(&self) -> String {
        match self {
            Notice::Reset { by } => format!(
                "An administrator ({by}) reset two-factor authentication for your account. \
                 Your methods and backup codes were removed; a recovery code was issued \
                 to the administrator."
            ),
            Notice::MethodAdded(m) => format!("A second-factor method was added: {}.", label(*m)),
            Notice::AddressChanged { new, .. } => format!(
                "Codes by email now go to another address ({}); this address no longer gets them.",
                crate::address::masked(new)
            ),
            Notice::MethodRemoved(Some(m)) => {
                format!("A second-factor method was removed: {}.", label(*m))
            }
            Notice::MethodRemoved(None) => {
                "Two-factor authentication was turned off: every method was removed.".into()
            }
            Notice::DeviceTrusted { label, days } => format!(
                "A device was trusted: logins from it ask for no code for {days} days ({label}). \
                 `twofactorctl devices` lists trusted devices and removes them."
            ),
            Notice::BackupCodesNew => {
                "A new set of backup codes was made; the previous codes no longer work.".into()
            }
        }
    }
}

fn label(m: Method) -> &'static str {
    match m {
        Method::App => "authenticator app",
        Method::Email => "codes by email",
    }
}

/// The notice mail for `user` on this host.
pub fn compose(user: &str, to: &str, notice: &Notice) -> Mail {
    let host = crate::config::hostname();
    Mail {
        to: to.to_string(),
        subject: format!("Two-factor authentication changed for {user} on {host}"),
        body: format!(
            "{}\n\nAccount: {user}\nMachine: {host}\n\nIf you did not do this, tell your \
             administrator at once.\n",
            notice.what()
        ),
    }
}

/// Sends `notice` to `user` in the background (when notices are on), to
/// their confirmed address as it is after the change. The returned handle
/// is for tests; the change never waits for it.
pub fn send(core: &Arc<Core>, user: &str, notice: Notice) -> Option<tokio::task::JoinHandle<()>> {
    send_to(core, user, None, notice)
}

/// [`send`] to `confirmed`, the address the user had before a change that
/// removed it (a reset, `disable email`); None: look it up now.
pub fn send_to(
    core: &Arc<Core>,
    user: &str,
    confirmed: Option<String>,
    notice: Notice,
) -> Option<tokio::task::JoinHandle<()>> {
    if !core.config.email.notices {
        return None;
    }
    let core = core.clone();
    let user = user.to_string();
    Some(tokio::spawn(async move {
        let u = user.clone();
        let looked_up = match (&notice, confirmed) {
            (Notice::AddressChanged { old, .. }, _) => Ok(Some(old.clone())),
            (_, Some(address)) => Ok(Some(address)),
            (_, None) => core.store.run(move |c| email_codes::address(c, &u)).await,
        };
        let address = match looked_up {
            Ok(Some(address)) => address,
            Ok(None) if !core.config.email.mailbox_domain.is_empty() => {
                format!("{user}@{}", core.config.email.mailbox_domain)
            }
            Ok(None) => return,
            Err(e) => {
                core.internal("notice", &e.to_string());
                return;
            }
        };
        let to = crate::address::masked(&address);
        match core.send_mail(compose(&user, &address, &notice)).await {
            Ok(()) => core.audit.log(Event::MailSent {
                user: &user,
                purpose: "notice",
                to: &to,
            }),
            Err(e) => core.audit.log(Event::MailFailed {
                user: &user,
                purpose: "notice",
                error: &e.to_string(),
            }),
        }
    }))
}
