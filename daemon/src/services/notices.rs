//! Security notices by email, what they say (the outbox sends them): the user is told when an administrator
//! resets their 2FA, when a method is added or removed, and when a new set
//! of backup codes is made. A notice goes to the user's confirmed email
//! address, else to their local mailbox (`USER@mailbox_domain`, as cron's
//! mail), and only when `[email] notices` is on. Notices are sent after
//! the change, off its path: the change never waits for or depends on one.

use crate::message::Mail;
use crate::rules::methods::Method;

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
                crate::message::masked(new)
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
                "A new set of backup codes was made; the previous codes no longer work, and \
                 every trusted device asks for a code again."
                    .into()
            }
        }
    }
}

fn label(m: Method) -> &'static str {
    match m {
        Method::App => "authenticator app",
        Method::Email => "codes by email",
        Method::SshKey => "security key over SSH",
        Method::Key => "security key",
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
