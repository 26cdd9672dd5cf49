//! One notion of a method: a way to give the second factor that a user
//! sets up and can remove (backup and recovery codes are fallbacks, not
//! methods). Login, account, admin and policy ask this module, never a
//! method's own table: adding a method is a variant here, its module and
//! its migration.

use crate::store::{Db, DbResult};
use twofactor_proto::types::method;

use crate::config::Config;
use crate::rules::{email_codes, totp};

/// A second-factor method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// An authenticator app (TOTP).
    App,
    /// A code sent to the user's confirmed email address.
    Email,
}

impl Method {
    /// Every method, in the order they are listed and offered.
    pub const ALL: &'static [Method] = &[Method::App, Method::Email];

    /// The method's name on the bus and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::App => method::APP,
            Method::Email => method::EMAIL,
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
        }
    }

    /// Removes this method of `user`; false if there was none.
    pub fn remove(self, conn: &Db, user: &str) -> DbResult<bool> {
        match self {
            Method::App => totp::remove(conn, user),
            Method::Email => email_codes::remove(conn, user),
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
}
