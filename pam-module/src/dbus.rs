//! The module's view of `twofactord`: the `org.twofactor.Login1` calls,
//! behind a trait so that the login loop can be tested with a scripted fake.
//!
//! The real implementation ([`bus::BusDaemon`]) talks to the bus itself
//! ([`wire`] is the part of the D-Bus format it needs), synchronously, on a
//! private connection: no threads, no async runtime and no library beyond
//! libc and libpam inside the host process (sshd, su, sudo, a screen
//! locker).

pub mod bus;
/// The D-Bus wire format, shared with the daemon's login socket.
pub use twofactor_proto::wire;

#[cfg(test)]
mod proptests;

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
    /// `SSH_AUTH_INFO_0` from the PAM environment, empty if unset.
    pub ssh_auth_info: String,
    /// The module can run a security key (its helper is installed).
    pub security_keys: bool,
}

/// `org.twofactor.Login1`, as the module calls it.
pub trait Daemon {
    /// `Begin(details) -> (session, step)`: user, service, rhost and tty as
    /// a dictionary (`a{sv}`).
    fn begin(&mut self, request: &LoginRequest) -> Result<(String, Step), DaemonError>;
    /// `Answer(session, answer) -> step`. The answer is raw bytes (`ay`).
    fn answer(&mut self, session: &str, answer: &[u8]) -> Result<Step, DaemonError>;
    /// `Cancel(session)`: the conversation failed; the daemon forgets it.
    fn cancel(&mut self, session: &str) -> Result<(), DaemonError>;
    /// `Commit(session) -> step`: the whole auth stack succeeded; the daemon
    /// stores what the login left pending.
    fn commit(&mut self, session: &str) -> Result<Step, DaemonError>;
    /// `Commit(session)` after [`twofactor_proto::Action::AcceptReport`]:
    /// the daemon only audits the login's success, so its reply is not
    /// waited for where the path allows (the login socket).
    fn report(&mut self, session: &str) -> Result<(), DaemonError>;
}

/// Why a call to the daemon did not give a step.
///
/// The texts are error names and messages from the bus or the daemon; they
/// never contain an answer the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonError {
    /// The daemon is definitely not there: no bus socket, or its name has
    /// no owner and cannot be activated. The only error `failmode=safe`
    /// lets pass, and only at `Begin`.
    Absent(String),
    /// The daemon did not answer: no reply in time, the connection dropped,
    /// a half-finished exchange. Always a refusal: a user who can make the
    /// daemon or the bus slow (stop their own `su`, load the bus) must not
    /// get in without a code.
    Unavailable(String),
    /// The daemon answered with an error (`org.twofactor.Error.*`), or with a
    /// reply the module cannot read. Never subject to `failmode=`.
    Failed(String),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Absent(s) => write!(f, "not running: {s}"),
            DaemonError::Unavailable(s) => write!(f, "unavailable: {s}"),
            DaemonError::Failed(s) => write!(f, "failed: {s}"),
        }
    }
}

/// Error names that mean "the daemon is definitely not there": the bus
/// says the name has no owner and cannot be activated, or the bus socket
/// does not exist or refuses connections.
const ABSENT_ERRORS: &[&str] = &[
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.FileNotFound",
];

/// Bus activation failures (`org.freedesktop.DBus.Error.Spawn.*`): the bus
/// tried to start the daemon and it did not start (it exited, could not be
/// executed, has no service file): a definite "no daemon". A start that
/// timed out is `TimedOut`, below.
const ABSENT_PREFIX: &str = "org.freedesktop.DBus.Error.Spawn.";
/// A daemon killed by a signal while it started may have been stopped on
/// purpose; not definite.
const SPAWN_SIGNALED: &str = "org.freedesktop.DBus.Error.Spawn.ChildSignaled";

/// Error names that mean "no answer from the daemon": it may be there but
/// slow, stopped or gone mid-call.
const UNAVAILABLE_ERRORS: &[&str] = &[
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Timeout",
    "org.freedesktop.DBus.Error.TimedOut",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoNetwork",
    "org.freedesktop.DBus.Error.LimitsExceeded",
];

/// Sorts an error of a method call by its D-Bus error name.
pub fn classify(name: Option<&str>, message: Option<&str>) -> DaemonError {
    let text = format!(
        "{}: {}",
        name.unwrap_or("(no error name)"),
        message.unwrap_or("")
    );
    match name {
        Some(n) if ABSENT_ERRORS.contains(&n) => DaemonError::Absent(text),
        Some(n) if n.starts_with(ABSENT_PREFIX) && n != SPAWN_SIGNALED => DaemonError::Absent(text),
        Some(n) if UNAVAILABLE_ERRORS.contains(&n) || n == SPAWN_SIGNALED => {
            DaemonError::Unavailable(text)
        }
        _ => DaemonError::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_owner_and_no_socket_are_absent() {
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.NoServer",
            "org.freedesktop.DBus.Error.FileNotFound",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
            "org.freedesktop.DBus.Error.Spawn.ExecFailed",
            "org.freedesktop.DBus.Error.Spawn.ServiceNotFound",
        ] {
            assert!(
                matches!(classify(Some(name), Some("x")), DaemonError::Absent(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn no_answer_in_time_is_unavailable_not_absent() {
        for name in [
            "org.freedesktop.DBus.Error.NoReply",
            "org.freedesktop.DBus.Error.Timeout",
            "org.freedesktop.DBus.Error.TimedOut",
            "org.freedesktop.DBus.Error.Disconnected",
            "org.freedesktop.DBus.Error.Spawn.ChildSignaled",
            "org.freedesktop.DBus.Error.LimitsExceeded",
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
