//! The module's view of `twofactord`: the three `org.twofactor.Login1` calls,
//! behind a trait so that the login loop can be tested with a scripted fake.
//!
//! The real implementation ([`libdbus::BusDaemon`]) talks to the bus through
//! libdbus, synchronously, on a private connection: no threads and no async
//! runtime inside the host process (sshd, su, sudo, a screen locker).

pub mod libdbus;

use std::fmt;

use twofactor_proto::Step;

/// What the module knows about the login it is asked to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// `PAM_USER`.
    pub user: String,
    /// `PAM_SERVICE`.
    pub service: String,
    /// `PAM_RHOST`, empty if unset.
    pub rhost: String,
    /// `PAM_TTY`, empty if unset.
    pub tty: String,
}

/// `org.twofactor.Login1`, as the module calls it.
pub trait Daemon {
    /// `Begin(user, service, rhost, tty) -> (session, step)`.
    fn begin(&mut self, request: &LoginRequest) -> Result<(String, Step), DaemonError>;
    /// `Answer(session, answer) -> step`. The answer is raw bytes (`ay`).
    fn answer(&mut self, session: &str, answer: &[u8]) -> Result<Step, DaemonError>;
    /// `Cancel(session)`: the conversation failed; the daemon forgets it.
    fn cancel(&mut self, session: &str) -> Result<(), DaemonError>;
}

/// Why a call to the daemon did not give a step.
///
/// The texts are error names and messages from the bus or the daemon; they
/// never contain an answer the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonError {
    /// The daemon could not be reached: no bus, no owner of the name, no reply
    /// in time, the connection dropped. This is what `failmode=` is about.
    Unavailable(String),
    /// The daemon answered with an error (`org.twofactor.Error.*`), or with a
    /// reply the module cannot read. Never subject to `failmode=`.
    Failed(String),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Unavailable(s) => write!(f, "unavailable: {s}"),
            DaemonError::Failed(s) => write!(f, "failed: {s}"),
        }
    }
}

/// Error names that mean "the daemon is not there (now)", as opposed to an
/// answer from it. Everything else is [`DaemonError::Failed`].
const UNAVAILABLE_ERRORS: &[&str] = &[
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Timeout",
    "org.freedesktop.DBus.Error.TimedOut",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.NoNetwork",
    "org.freedesktop.DBus.Error.FileNotFound",
];

/// Bus activation failures (`org.freedesktop.DBus.Error.Spawn.*`): the daemon
/// could not be started.
const UNAVAILABLE_PREFIX: &str = "org.freedesktop.DBus.Error.Spawn.";

/// Sorts an error of a method call by its D-Bus error name.
pub fn classify(name: Option<&str>, message: Option<&str>) -> DaemonError {
    let text = format!(
        "{}: {}",
        name.unwrap_or("(no error name)"),
        message.unwrap_or("")
    );
    match name {
        Some(n) if UNAVAILABLE_ERRORS.contains(&n) || n.starts_with(UNAVAILABLE_PREFIX) => {
            DaemonError::Unavailable(text)
        }
        _ => DaemonError::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_unavailable() {
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.NoReply",
            "org.freedesktop.DBus.Error.Timeout",
            "org.freedesktop.DBus.Error.Disconnected",
            "org.freedesktop.DBus.Error.NoServer",
            "org.freedesktop.DBus.Error.FileNotFound",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
        ] {
            assert!(
                matches!(classify(Some(name), Some("x")), DaemonError::Unavailable(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn daemon_errors_are_failures() {
        for name in [
            Some("org.twofactor.Error.PermissionDenied"),
            Some("org.twofactor.Error.Internal"),
            Some("org.freedesktop.DBus.Error.AccessDenied"),
            Some("org.freedesktop.DBus.Error.UnknownMethod"),
            Some("org.freedesktop.DBus.Error.LimitsExceeded"),
            Some("org.freedesktop.DBus.Error.Failed"),
            None,
        ] {
            assert!(
                matches!(classify(name, None), DaemonError::Failed(_)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn text_carries_name_and_message() {
        assert_eq!(
            classify(
                Some("org.twofactor.Error.NotFound"),
                Some("no such session")
            ),
            DaemonError::Failed("org.twofactor.Error.NotFound: no such session".into())
        );
    }
}
