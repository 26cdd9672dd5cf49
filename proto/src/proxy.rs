//! zbus proxies for the three interfaces (async and blocking).

use crate::types::{AccountStatus, AppEnrolment};
use crate::WireStep;

#[zbus::proxy(
    interface = "org.twofactor.Login1",
    default_service = "org.twofactor.Daemon1",
    default_path = "/org/twofactor/Daemon1"
)]
pub trait Login1 {
    /// Starts a login for `user`; returns the session id and the first step.
    fn begin(
        &self,
        user: &str,
        service: &str,
        rhost: &str,
        tty: &str,
    ) -> zbus::Result<(String, WireStep)>;
    /// Answers the question of the last step.
    fn answer(&self, session: &str, answer: &[u8]) -> zbus::Result<WireStep>;
    /// Forgets a session (the conversation failed).
    fn cancel(&self, session: &str) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.twofactor.Account1",
    default_service = "org.twofactor.Daemon1",
    default_path = "/org/twofactor/Daemon1"
)]
pub trait Account1 {
    /// The caller's own account.
    fn status(&self) -> zbus::Result<AccountStatus>;
    /// Starts enrolment of an authenticator app; needs the account password.
    /// The method is active only after `ConfirmApp`.
    fn enroll_app(&self, password: &[u8]) -> zbus::Result<AppEnrolment>;
    /// Confirms an enrolment with a code from the app. Returns a new set of
    /// backup codes (shown once; any earlier set stops working).
    fn confirm_app(&self, enrolment: &str, code: &str) -> zbus::Result<Vec<String>>;
    /// A new set of backup codes; the old set stops working. Needs the
    /// account password and an active method.
    fn new_backup_codes(&self, password: &[u8]) -> zbus::Result<Vec<String>>;
    /// Removes a method (`app`, or `all`); needs the account password.
    fn disable(&self, method: &str, password: &[u8]) -> zbus::Result<()>;
}
