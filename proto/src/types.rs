//! Shared types returned by `Account1` and `Admin1`.

#[cfg(feature = "zbus")]
use serde::{Deserialize, Serialize};
#[cfg(feature = "zbus")]
use zbus::zvariant::Type;

/// Method names as they appear in status and audit lines.
pub mod method {
    /// TOTP authenticator app.
    pub const APP: &str = "app";
    /// A single-use backup code (recorded as the last method used; never
    /// asked for first).
    pub const BACKUP_CODE: &str = "backup-code";
}

/// What a user (or an admin) sees about one account.
/// D-Bus signature `(sasssxuxbu)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct AccountStatus {
    /// Login name.
    pub user: String,
    /// Active methods, e.g. `["app"]`.
    pub methods: Vec<String>,
    /// Method asked for first at login (empty: none set).
    pub preferred: String,
    /// Method used at the last successful 2FA login (empty: never).
    pub last_method: String,
    /// Unix time of the last successful 2FA login (0: never).
    pub last_login: i64,
    /// Failed attempts counted since the last success.
    pub failures: u32,
    /// Unix time until which logins wait (0: not locked).
    pub locked_until: i64,
    /// True while an enrolment was started but not yet confirmed.
    pub enrolment_pending: bool,
    /// Unused backup codes (never the codes themselves).
    pub backup_codes_left: u32,
}

/// What `Account1.EnrollApp` returns: shown once to the user, never stored
/// anywhere but in the daemon's database.
/// D-Bus signature `(sss)`.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct AppEnrolment {
    /// Opaque id to pass to `ConfirmApp`.
    pub enrolment: String,
    /// The secret in base32, for manual entry.
    pub secret_base32: String,
    /// `otpauth://totp/...` URI, for the QR code.
    pub uri: String,
}

impl std::fmt::Debug for AppEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppEnrolment")
            .field("enrolment", &self.enrolment)
            .field("secret_base32", &"<redacted>")
            .field("uri", &"<redacted>")
            .finish()
    }
}
