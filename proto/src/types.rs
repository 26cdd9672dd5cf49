//! Shared types returned by `Account1` and `Admin1`.

#[cfg(feature = "zbus")]
use serde::{Deserialize, Serialize};
#[cfg(feature = "zbus")]
use zbus::zvariant::Type;

/// Method names as they appear in status and audit lines.
pub mod method {
    /// TOTP authenticator app.
    pub const APP: &str = "app";
    /// A code sent by email.
    pub const EMAIL: &str = "email";
    /// A single-use backup code (recorded as the last method used; never
    /// asked for first).
    pub const BACKUP_CODE: &str = "backup-code";
    /// A single-use recovery code from an administrator's reset.
    pub const RECOVERY_CODE: &str = "recovery-code";
    /// A device the user trusts (no code asked; audit lines only).
    pub const TRUSTED_DEVICE: &str = "trusted-device";
    /// An OpenSSH security-key public key (`sk-ssh-ed25519@openssh.com`,
    /// `sk-ecdsa-sha2-nistp256@openssh.com`): an SSH login that proved it,
    /// on an sshd that requires a touch for every key, needs no code.
    pub const SSH_KEY: &str = "ssh-key";
    /// A FIDO2 security key touched at a local login (console, `su`,
    /// `sudo`, a screen locker).
    pub const KEY: &str = "key";
}

/// What a user (or an admin) sees about one account.
/// D-Bus signature `(sasssxuxbuu)`.
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
    /// Devices trusted now (not expired).
    pub trusted_devices: u32,
}

/// A device its user trusted ("don't ask again on this device").
/// D-Bus signature `(sssxxx)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct Device {
    /// Short id, for `devices remove ID`.
    pub id: String,
    /// How it is identified: the SSH key's type and SHA-256 fingerprint
    /// (`ssh-ed25519 SHA256:...`), or `address` for address-based trust.
    pub label: String,
    /// The client address the trust is also bound to ("" if none).
    pub address: String,
    /// Unix times: when it was trusted, last used (0: never), and when
    /// the trust ends (at most 30 days after it was given).
    pub added: i64,
    pub last_used: i64,
    pub expires: i64,
}

/// A security-key SSH public key registered as a method.
/// D-Bus signature `(ssxx)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct SshKey {
    /// Short id.
    pub id: String,
    /// The key's type and SHA-256 fingerprint
    /// (`sk-ssh-ed25519@openssh.com SHA256:...`).
    pub label: String,
    /// Unix times: when it was registered, last used at a login (0: never).
    pub added: i64,
    pub last_used: i64,
}

/// A FIDO2 security key registered as a method: the same shape, with the
/// label the user gave it. D-Bus signature `(ssxx)`.
pub type SecurityKey = SshKey;

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

/// The mandatory-2FA policy. D-Bus signature `(basssx)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct Policy {
    /// 2FA is mandatory (for `groups`, or everyone if empty).
    pub mandatory: bool,
    /// Only members of these groups (empty: everyone).
    pub groups: Vec<String>,
    /// `YYYY-MM-DD` from which it is enforced (local time of the daemon);
    /// before it, users without 2FA get a reminder. Empty: now.
    pub from: String,
    /// Who set it last (`config` for the initial value from the file).
    pub updated_by: String,
    /// When (Unix time; 0 = never set).
    pub updated_at: i64,
}

/// One account as an administrator sees it.
/// D-Bus signature `(suasussxxubbbs)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct UserReport {
    pub user: String,
    /// uid on this system (0 if the system no longer knows the user).
    pub uid: u32,
    /// Active methods, e.g. `["app"]`.
    pub methods: Vec<String>,
    pub backup_codes_left: u32,
    pub preferred: String,
    pub last_method: String,
    /// Unix time of the last successful 2FA login (0: never).
    pub last_login: i64,
    /// Unix time until which logins wait (0: not locked).
    pub locked_until: i64,
    pub failures: u32,
    /// The mandatory policy applies to this user now.
    pub policy_applies: bool,
    /// An unused, unexpired recovery code exists (after a reset).
    pub recovery_pending: bool,
    /// The system's user database knows this user.
    pub known_to_system: bool,
    /// The host of the last successful 2FA login (empty: never, or before
    /// hosts were recorded); with a store shared by many hosts, any of
    /// them.
    pub last_host: String,
}

/// What an import of a google-authenticator file did.
/// D-Bus signature `(sbus)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct ImportReport {
    pub user: String,
    /// The TOTP secret was imported.
    pub imported: bool,
    /// Scratch codes imported as backup codes.
    pub scratch_codes: u32,
    /// What was done or why not (no secret in it).
    pub message: String,
}

/// A recovery code made by a reset: shown once to the administrator.
/// D-Bus signature `(sx)`.
#[derive(Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct Recovery {
    pub code: String,
    /// Unix time after which the code no longer works.
    pub expires: i64,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("code", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}
