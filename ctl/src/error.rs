//! Why a command failed, the one line shown for it, and the exit code.
//!
//! Every failure the user can meet is a [`Failure`]: a [`Reason`] (which
//! fixes the exit code, documented in `--help`) and a one-line message. Messages never contain a
//! password, a code, a secret or an otpauth URI.

use std::fmt;

/// Exit status when the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// The daemon (or the bus policy) refused: wrong password or code,
/// permission, already/not enrolled, rate limited, bad input; or the request
/// was not (all) carried out: a confirmation answered no, a user not
/// imported, no security key or one that was not touched or refused.
pub const EXIT_REFUSED: u8 = 1;
/// Wrong use of the command: bad arguments, missing or over-long input.
pub const EXIT_USAGE: u8 = 2;
/// twofactord could not be reached (not running, no bus, no answer).
pub const EXIT_UNREACHABLE: u8 = 3;
/// Anything else: daemon-side internal error, I/O error, unexpected reply.
pub const EXIT_OTHER: u8 = 4;

/// What went wrong, in terms a caller can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    // Refusals by the daemon (org.twofactor.Error.*).
    PermissionDenied,
    BadPassword,
    BadCode,
    NotFound,
    InvalidInput,
    AlreadyEnrolled,
    NotEnrolled,
    RateLimited,
    /// The person answered no to a confirmation question; nothing was done.
    Declined,
    /// Part of the request was refused (an import of several users); the
    /// output says which part.
    PartlyDone,
    /// The security key was not there, not touched in time, or refused
    /// (its PIN, the user verification asked for); nothing was registered.
    SecurityKey,
    /// The daemon reported an internal error; nothing was changed.
    Internal,
    /// No bus, no daemon owning the name, connection lost, or no answer.
    Unreachable,
    /// Wrong use of the command or of its stdin protocol.
    Usage,
    /// Local I/O error (terminal, stdin, stdout).
    Io,
    /// An answer or error this version does not understand.
    Unexpected,
}

impl Reason {
    /// The process exit status for this reason.
    pub const fn exit_code(self) -> u8 {
        match self {
            Reason::PermissionDenied
            | Reason::BadPassword
            | Reason::BadCode
            | Reason::NotFound
            | Reason::InvalidInput
            | Reason::AlreadyEnrolled
            | Reason::NotEnrolled
            | Reason::RateLimited
            | Reason::Declined
            | Reason::PartlyDone
            | Reason::SecurityKey => EXIT_REFUSED,
            Reason::Usage => EXIT_USAGE,
            Reason::Unreachable => EXIT_UNREACHABLE,
            Reason::Internal | Reason::Io | Reason::Unexpected => EXIT_OTHER,
        }
    }
}

/// A failed command: why, and the line to show on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    message: String,
}

impl Failure {
    /// `message` is made safe for one terminal line (see [`crate::text`]).
    pub fn new(reason: Reason, message: impl AsRef<str>) -> Self {
        Failure {
            reason,
            message: crate::text::one_line(message.as_ref()),
        }
    }

    pub fn usage(message: impl AsRef<str>) -> Self {
        Failure::new(Reason::Usage, message)
    }

    /// A local I/O error, with what was being done.
    pub fn io(doing: &str, err: &std::io::Error) -> Self {
        Failure::new(Reason::Io, format!("{doing}: {err}"))
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn exit_code(&self) -> u8 {
        self.reason.exit_code()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_class() {
        assert_eq!(Reason::BadPassword.exit_code(), 1);
        assert_eq!(Reason::BadCode.exit_code(), 1);
        assert_eq!(Reason::PermissionDenied.exit_code(), 1);
        assert_eq!(Reason::RateLimited.exit_code(), 1);
        assert_eq!(Reason::Declined.exit_code(), 1);
        assert_eq!(Reason::PartlyDone.exit_code(), 1);
        assert_eq!(Reason::SecurityKey.exit_code(), 1);
        assert_eq!(Reason::Usage.exit_code(), 2);
        assert_eq!(Reason::Unreachable.exit_code(), 3);
        assert_eq!(Reason::Internal.exit_code(), 4);
        assert_eq!(Reason::Io.exit_code(), 4);
        assert_eq!(Reason::Unexpected.exit_code(), 4);
    }

    #[test]
    fn message_is_one_line() {
        let f = Failure::new(Reason::Internal, "first\nsecond\x1b[31m");
        assert!(!f.message().contains('\n'));
        assert!(!f.message().contains('\x1b'));
        assert!(f.message().starts_with("first"));
    }
}
