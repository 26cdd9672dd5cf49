//! One notion of a method: a way to give the second factor that a user
//! sets up and can remove (backup and recovery codes are fallbacks, not
//! methods). Login, account, admin and policy ask this module, never a
//! method's own table: adding a method is a variant here, its module and
//! its migration.

use crate::store::{Db, DbResult};
use twofactor_proto::types::method;

use crate::config::Config;
use crate::rules::{
    backup_codes, bookkeeping, email_codes, recovery_codes, security_keys, ssh_keys, totp,
    trusted_devices,
};

/// A second-factor method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// An authenticator app (TOTP).
    App,
    /// A code sent to the user's confirmed email address.
    Email,
    /// A security-key SSH key proved to sshd (never asked at a prompt).
    SshKey,
    /// A FIDO2 security key touched at a local login (never a code typed:
    /// the module runs the key when the daemon asks for it).
    Key,
}

impl Method {
    /// Every method, in the order they are listed and offered.
    pub const ALL: &'static [Method] = &[Method::App, Method::Email, Method::SshKey, Method::Key];

    /// The method's name on the bus and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::App => method::APP,
            Method::Email => method::EMAIL,
            Method::SshKey => method::SSH_KEY,
            Method::Key => method::KEY,
        }
    }

    /// Whether a login asks for a code of this method at its prompt (a
    /// security key over SSH is proved to sshd, one at a local login is
    /// touched: neither is typed).
    pub fn asked_at_prompt(self) -> bool {
        match self {
            Method::App | Method::Email => true,
            Method::SshKey | Method::Key => false,
        }
    }

    /// Whether this machine offers the method: email codes only when an
    /// administrator turned them on (`[email] codes`). A method that is
    /// not offered is neither asked at login nor set up; users who have it
    /// keep it stored.
    pub fn offered(self, config: &Config) -> bool {
        match self {
            Method::App => true,
            Method::Email => config.email.codes,
            Method::SshKey => config.keys.ssh,
            Method::Key => config.keys.local,
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Whether `user` has this method.
    pub fn is_enrolled(self, conn: &Db, user: &str) -> DbResult<bool> {
        match self {
            Method::App => totp::is_enrolled(conn, user),
            Method::Email => email_codes::is_enrolled(conn, user),
            Method::SshKey => ssh_keys::is_enrolled(conn, user),
            Method::Key => security_keys::is_enrolled(conn, user),
        }
    }

    /// Removes this method of `user`; false if there was none.
    pub fn remove(self, conn: &Db, user: &str) -> DbResult<bool> {
        match self {
            Method::App => totp::remove(conn, user),
            Method::Email => email_codes::remove(conn, user),
            Method::SshKey => ssh_keys::remove(conn, user),
            Method::Key => security_keys::remove(conn, user),
        }
    }
}

/// The methods `user` has, in [`Method::ALL`] order.
pub fn enrolled(conn: &Db, user: &str) -> DbResult<Vec<Method>> {
    let mut found = Vec::new();
    for m in Method::ALL {
        if m.is_enrolled(conn, user)? {
            found.push(*m);
        }
    }
    Ok(found)
}

/// The method a login asks for first, among `enrolled`: the user's
/// preferred one if they have it, else the one they used last, else the
/// first they have. None when they have none.
pub fn first_to_ask(enrolled: &[Method], preferred: &str, last_used: &str) -> Option<Method> {
    let has = |name: &str| enrolled.iter().copied().find(|m| m.name() == name);
    has(preferred)
        .or_else(|| has(last_used))
        .or_else(|| enrolled.first().copied())
}

/// Whether `user` has any method (a second factor to ask for).
pub fn has_any(conn: &Db, user: &str) -> DbResult<bool> {
    Ok(!enrolled(conn, user)?.is_empty())
}

/// Removes every method of `user` (an administrator's reset, `disable
/// all`); true if there was one.
pub fn remove_all(conn: &Db, user: &str) -> DbResult<bool> {
    let mut removed = false;
    for m in Method::ALL {
        removed |= m.remove(conn, user)?;
    }
    Ok(removed)
}

/// The method a user is given.
pub enum NewMethod<'a> {
    /// An app secret; codes of `step` and earlier are refused.
    App { secret: &'a totp::Secret, step: i64 },
    /// Email codes to a confirmed address (replacing an older address).
    Email { address: &'a str },
    /// One more security-key SSH key, as `id`.
    SshKey { id: &'a str, key: &'a ssh_keys::Key },
    /// One more FIDO2 security key, as `id`, with the user's label.
    Key {
        id: &'a str,
        label: &'a str,
        credential: &'a security_keys::Credential,
    },
    /// A method whose own confirmation has already written it
    /// (`totp::confirm_pending` moves the pending secret in place, in the
    /// same transaction).
    Written(Method),
}

impl NewMethod<'_> {
    pub fn method(&self) -> Method {
        match self {
            NewMethod::App { .. } => Method::App,
            NewMethod::Email { .. } => Method::Email,
            NewMethod::SshKey { .. } => Method::SshKey,
            NewMethod::Key { .. } => Method::Key,
            NewMethod::Written(m) => *m,
        }
    }
}

/// What becomes of the user's backup codes.
pub enum BackupCodes<'a> {
    /// A new set (selector, hash) replaces the old one.
    Replace(&'a [(String, String)]),
    /// The set stays as it is.
    Keep,
}

/// What [`activate`] did, for the audit log and the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    pub method: Method,
    /// Codes in the new set; None when the set was kept.
    pub backup_codes: Option<usize>,
    /// Trusted devices whose trust ended.
    pub devices_ended: u32,
}

/// A method was added: the one place that says what that does, inside the
/// caller's transaction.
///
/// - the account row exists and the method is stored;
/// - the backup codes are replaced or kept, as the caller says (see
///   [`BackupCodes`]: `enable app` always shows a new set; email brings one
///   only as a first method; an import brings the user's scratch codes);
/// - an administrator's open recovery code is removed: the account has a
///   way in again, and a code left lying about would be one more;
/// - every trusted device ends: trust was given under the old factors.
///
/// Failure counts are left alone (a login that adds a method clears them
/// because the login succeeded, not because a method was added). The
/// caller audits who did it and hands [`Added`] to the outbox's notice.
pub fn activate(
    conn: &Db,
    user: &str,
    new: NewMethod<'_>,
    backups: BackupCodes<'_>,
    now: i64,
) -> DbResult<Added> {
    bookkeeping::ensure(conn, user, now)?;
    match &new {
        NewMethod::App { secret, step } => totp::activate(conn, user, secret, *step, now)?,
        NewMethod::Email { address } => email_codes::activate(conn, user, address, now)?,
        NewMethod::SshKey { id, key } => {
            ssh_keys::add(conn, user, id, key, now)?;
        }
        NewMethod::Key {
            id,
            label,
            credential,
        } => {
            security_keys::add(conn, user, id, label, credential, now)?;
        }
        NewMethod::Written(_) => {}
    }
    let backup_codes = match backups {
        BackupCodes::Replace(hashed) => {
            backup_codes::replace_set(conn, user, hashed, now)?;
            Some(hashed.len())
        }
        BackupCodes::Keep => None,
    };
    recovery_codes::remove(conn, user)?;
    let devices_ended = trusted_devices::remove_all(conn, user)?;
    Ok(Added {
        method: new.method(),
        backup_codes,
        devices_ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(*m));
        }
        assert_eq!(Method::from_name("email"), Some(Method::Email));
        assert_eq!(Method::from_name("sms"), None);
        assert_eq!(Method::from_name("all"), None);
        assert_eq!(Method::from_name(""), None);
    }

    #[test]
    fn preferred_then_last_used_then_the_first() {
        let app = [Method::App];
        assert_eq!(first_to_ask(&app, "app", ""), Some(Method::App));
        assert_eq!(first_to_ask(&app, "", "app"), Some(Method::App));
        assert_eq!(
            first_to_ask(&app, "email", "backup-code"),
            Some(Method::App)
        );
        assert_eq!(first_to_ask(&[], "app", "app"), None);
        let both = [Method::App, Method::Email];
        assert_eq!(first_to_ask(&both, "email", "app"), Some(Method::Email));
        assert_eq!(first_to_ask(&both, "", "email"), Some(Method::Email));
        assert_eq!(first_to_ask(&both, "app", "email"), Some(Method::App));
        assert_eq!(first_to_ask(&both, "", "backup-code"), Some(Method::App));
        // A preference for a method the user no longer has falls through.
        assert_eq!(
            first_to_ask(&[Method::Email], "app", ""),
            Some(Method::Email)
        );
    }

    #[test]
    fn enrolled_lists_what_the_user_has() {
        let c = crate::store::testing::connection();
        crate::rules::bookkeeping::ensure(&c, "u", 0).unwrap();
        assert!(!has_any(&c, "u").unwrap());
        totp::activate(&c, "u", &totp::Secret::from_bytes(vec![7; 20]), 0, 0).unwrap();
        assert_eq!(enrolled(&c, "u").unwrap(), vec![Method::App]);
        email_codes::activate(&c, "u", "u@example.com", 0).unwrap();
        assert_eq!(enrolled(&c, "u").unwrap(), vec![Method::App, Method::Email]);
        assert!(remove_all(&c, "u").unwrap());
        assert!(!has_any(&c, "u").unwrap());
        assert!(!remove_all(&c, "u").unwrap());
    }

    #[test]
    fn activate_stores_the_method_ends_devices_and_the_recovery_code() {
        let c = crate::store::testing::connection();
        bookkeeping::ensure(&c, "u", 0).unwrap();
        recovery_codes::replace(&c, "u", "hash", 0, "root").unwrap();
        let presented = trusted_devices::Presented::for_tests("u");
        trusted_devices::trust(&c, "u", "0123456789abcdef", &presented, b"", 0, 1_000).unwrap();
        backup_codes::replace_set(&c, "u", &[("abcd".into(), "h".into())], 0).unwrap();
        let secret = totp::Secret::from_bytes(vec![7; 20]);
        let added = activate(
            &c,
            "u",
            NewMethod::App {
                secret: &secret,
                step: 0,
            },
            BackupCodes::Keep,
            10,
        )
        .unwrap();
        assert_eq!(
            added,
            Added {
                method: Method::App,
                backup_codes: None,
                devices_ended: 1
            }
        );
        assert_eq!(enrolled(&c, "u").unwrap(), vec![Method::App]);
        assert_eq!(recovery_codes::pending(&c, "u", 10).unwrap(), None);
        assert_eq!(trusted_devices::count(&c, "u", 10).unwrap(), 0);
        assert_eq!(backup_codes::remaining(&c, "u").unwrap(), Some(1), "kept");
        let set = [
            ("efgh".to_string(), "h2".to_string()),
            ("ijkl".into(), "h3".into()),
        ];
        let added = activate(
            &c,
            "u",
            NewMethod::Email {
                address: "u@example.com",
            },
            BackupCodes::Replace(&set),
            20,
        )
        .unwrap();
        assert_eq!(added.backup_codes, Some(2));
        assert_eq!(
            backup_codes::remaining(&c, "u").unwrap(),
            Some(2),
            "replaced"
        );
        assert_eq!(enrolled(&c, "u").unwrap(), vec![Method::App, Method::Email]);
    }
}
