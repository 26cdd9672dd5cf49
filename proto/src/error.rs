//! Typed errors of the daemon, so that clients branch on the error name
//! (`org.twofactor.Error.*`) instead of parsing text. Messages never carry a
//! code, secret or password.

use zbus::DBusError;

#[derive(Debug, DBusError)]
#[zbus(prefix = "org.twofactor.Error")]
pub enum Error {
    /// Transport-level error (not sent by the daemon itself).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not do this (wrong uid, not an administrator).
    PermissionDenied(String),
    /// The account password given again was wrong.
    BadPassword(String),
    /// A confirmation code was wrong.
    BadCode(String),
    /// No such user, enrolment or session.
    NotFound(String),
    /// The request is malformed (too long, empty, wrong characters).
    InvalidInput(String),
    /// The method is already active.
    AlreadyEnrolled(String),
    /// The method is not active.
    NotEnrolled(String),
    /// Too many failures; the message says how long to wait.
    RateLimited(String),
    /// The daemon could not complete the request (storage, PAM); nothing was
    /// changed.
    Internal(String),
}

impl Error {
    /// The text part, for showing to a person.
    pub fn text(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::PermissionDenied(s)
            | Error::BadPassword(s)
            | Error::BadCode(s)
            | Error::NotFound(s)
            | Error::InvalidInput(s)
            | Error::AlreadyEnrolled(s)
            | Error::NotEnrolled(s)
            | Error::RateLimited(s)
            | Error::Internal(s) => s.clone(),
        }
    }
}
