//! zbus proxies for the three interfaces (async and blocking).

use crate::types::{
    AccountStatus, AppEnrolment, Device, ImportReport, Policy, Recovery, SshKey, UserReport,
};
use crate::WireStep;

#[zbus::proxy(
    interface = "org.twofactor.Login1",
    default_service = "org.twofactor.Daemon1",
    default_path = "/org/twofactor/Daemon1"
)]
pub trait Login1 {
    /// Starts a login with its details (see `names::detail`); returns the
    /// session id and the first step.
    fn begin(
        &self,
        details: std::collections::HashMap<&str, zbus::zvariant::Value<'_>>,
    ) -> zbus::Result<(String, WireStep)>;
    /// Answers the question of the last step.
    fn answer(&self, session: &str, answer: &[u8]) -> zbus::Result<WireStep>;
    /// Forgets a session (the conversation failed).
    fn cancel(&self, session: &str) -> zbus::Result<()>;
    /// Stores what the login left pending, once the whole PAM auth stack
    /// has succeeded.
    fn commit(&self, session: &str) -> zbus::Result<WireStep>;
}

#[zbus::proxy(
    interface = "org.twofactor.Account1",
    default_service = "org.twofactor.Daemon1",
    default_path = "/org/twofactor/Daemon1"
)]
pub trait Account1 {
    /// The caller's own account.
    fn status(&self) -> zbus::Result<AccountStatus>;
    /// Starts enrolment of an authenticator app; needs the account password
    /// and, when the account has a method already, a current second factor
    /// (`code`: a code of a method the user has, or a backup code; empty
    /// for a first method). The method is active only after `ConfirmApp`.
    fn enroll_app(&self, password: &[u8], code: &[u8]) -> zbus::Result<AppEnrolment>;
    /// Confirms an enrolment with a code from the app. Returns a new set of
    /// backup codes (shown once; any earlier set stops working).
    fn confirm_app(&self, enrolment: &str, code: &str) -> zbus::Result<Vec<String>>;
    /// A new set of backup codes; the old set stops working. Needs the
    /// account password and a current second factor.
    fn new_backup_codes(&self, password: &[u8], code: &[u8]) -> zbus::Result<Vec<String>>;
    /// Sends a code to `address` to confirm it; needs the account password
    /// (and a current second factor when the account has a method).
    /// Returns the address masked. Email codes are active only after
    /// `ConfirmEmail`.
    fn enroll_email(&self, address: &str, password: &[u8], code: &[u8]) -> zbus::Result<String>;
    /// Sends a code to the user's confirmed address, to be given as the
    /// `code` of a change (rate limited). Returns the address masked.
    fn send_code(&self) -> zbus::Result<String>;
    /// Sends a new code to the address being confirmed (rate limited).
    fn resend_email(&self) -> zbus::Result<String>;
    /// Confirms the address with the code sent. Returns a new set of backup
    /// codes when email is the first method, else an empty list.
    fn confirm_email(&self, code: &str) -> zbus::Result<Vec<String>>;
    /// The method a login asks first (`app`, `email`, or "" for the one
    /// used last).
    fn set_preferred(&self, method: &str) -> zbus::Result<()>;
    /// Removes a method (`app`, `email`, or `all`); needs the account
    /// password and a current second factor.
    fn disable(&self, method: &str, password: &[u8], code: &[u8]) -> zbus::Result<()>;
    /// The caller's trusted devices (expired ones are not listed).
    fn list_devices(&self) -> zbus::Result<Vec<Device>>;
    /// Removes a trusted device by id, or every one with `all`; needs the
    /// account password and a current second factor. Returns how many were
    /// removed.
    fn remove_devices(&self, id: &str, password: &[u8], code: &[u8]) -> zbus::Result<u32>;
    /// Registers an OpenSSH security-key public key (one `authorized_keys`
    /// line: `sk-ssh-ed25519@openssh.com AAAA… [comment]`) as a method;
    /// needs the account password and, when the account has a method
    /// already, a current second factor. Returns the key's id and, when it
    /// is the first method, a first set of backup codes (else none).
    /// `key_handle` (from the key's private file; empty: none) makes the
    /// same credential serve local logins too, under its `ssh:` relying
    /// party.
    fn enroll_ssh_key(
        &self,
        public_key: &str,
        key_handle: &[u8],
        password: &[u8],
        code: &[u8],
    ) -> zbus::Result<(String, Vec<String>)>;
    /// The caller's registered security-key SSH keys.
    fn list_ssh_keys(&self) -> zbus::Result<Vec<SshKey>>;
    /// Starts registering a FIDO2 security key after the password (and a
    /// current second factor when the account has a method): the
    /// enrolment's id and an encoded `key::CredentialRequest`.
    fn enroll_key(&self, password: &[u8], code: &[u8]) -> zbus::Result<(String, Vec<u8>)>;
    /// Finishes it with the key's encoded `key::Attestation` and a name:
    /// the key's id and, as a first method, backup codes (else none).
    fn confirm_key(
        &self,
        enrolment: &str,
        label: &str,
        attestation: &[u8],
    ) -> zbus::Result<(String, Vec<String>)>;
    /// The caller's security keys.
    fn list_keys(&self) -> zbus::Result<Vec<SshKey>>;
    /// Removes one security key by id (password and a current second
    /// factor).
    fn remove_key(&self, id: &str, password: &[u8], code: &[u8]) -> zbus::Result<()>;
}

/// Administrators: uid 0, or members of `admin_group` (who give their own
/// password for every change; root passes an empty password).
#[zbus::proxy(
    interface = "org.twofactor.Admin1",
    default_service = "org.twofactor.Daemon1",
    default_path = "/org/twofactor/Daemon1"
)]
pub trait Admin1 {
    /// The mandatory policy.
    fn get_policy(&self) -> zbus::Result<Policy>;
    /// Sets the mandatory policy (`from`: `YYYY-MM-DD` or empty).
    fn set_policy(
        &self,
        mandatory: bool,
        groups: Vec<String>,
        from: &str,
        password: &[u8],
    ) -> zbus::Result<()>;
    /// The system's human users and every user the daemon knows.
    fn list_users(&self) -> zbus::Result<Vec<UserReport>>;
    /// One user.
    fn get_user(&self, user: &str) -> zbus::Result<UserReport>;
    /// Removes the user's methods, backup codes and trusted state; returns a
    /// single-use recovery code valid for 24 hours.
    fn reset(&self, user: &str, password: &[u8]) -> zbus::Result<Recovery>;
    /// Clears a lockout.
    fn unlock(&self, user: &str, password: &[u8]) -> zbus::Result<()>;
    /// A user's trusted devices.
    fn list_devices(&self, user: &str) -> zbus::Result<Vec<Device>>;
    /// Removes a user's trusted device by id, or every one with `all`.
    /// Returns how many were removed.
    /// A user's security keys: (method, key), method `key` (FIDO2) or
    /// `ssh-key`.
    fn list_keys(&self, user: &str) -> zbus::Result<Vec<(String, SshKey)>>;
    fn remove_devices(&self, user: &str, id: &str, password: &[u8]) -> zbus::Result<u32>;
    /// Imports `~user/.google_authenticator` (or `path`).
    fn import_google_authenticator(
        &self,
        user: &str,
        path: &str,
        password: &[u8],
    ) -> zbus::Result<ImportReport>;
    /// Imports the file of every user who has one.
    fn import_google_authenticator_all(&self, password: &[u8]) -> zbus::Result<Vec<ImportReport>>;
}
