//! The system's user database (passwd), behind a trait so that tests of the
//! login machine do not need real accounts.

/// Longest user name accepted anywhere (Linux allows 32; be generous).
pub const MAX_USER_LEN: usize = 256;

pub trait Users: Send + Sync {
    /// Login name of a uid, if the system knows it.
    fn name_of(&self, uid: u32) -> Option<String>;
    /// uid of a login name, if the system knows it.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// Names of the groups the user is in (primary and supplementary). An
    /// error when the name service could not say: callers fail closed.
    fn groups_of(&self, name: &str) -> Result<Vec<String>, LookupError>;
    /// Home directory.
    fn home_of(&self, name: &str) -> Option<std::path::PathBuf>;
    /// The system's human users: uids in `/etc/login.defs`'s
    /// UID_MIN..=UID_MAX (default 1000..=60000).
    fn human_users(&self) -> Vec<(String, u32)>;

    /// The account a name stands for, as (canonical name, uid): the name
    /// is looked up (getpwnam), and the uid's own name (getpwuid) is the
    /// account. A same-uid alias (`toor` for root) and another spelling
    /// that a case-insensitive name service accepts (`Alice` for `alice`)
    /// lead to the same account, so all state is keyed by one name.
    fn canonical(&self, name: &str) -> Option<(String, u32)> {
        if !plausible_name(name) {
            return None;
        }
        let uid = self.uid_of(name)?;
        Some((self.name_of(uid)?, uid))
    }
}

/// The name service could not answer (as opposed to "no such entry").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError(pub String);

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "name service look-up failed: {}", self.0)
    }
}

/// getpwnam/getpwuid through NSS.
pub struct SystemUsers;

impl Users for SystemUsers {
    fn name_of(&self, uid: u32) -> Option<String> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        user(name).map(|u| u.uid.as_raw())
    }
    fn groups_of(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let failed = |what: &str, e: nix::Error| LookupError(format!("{what}: {e}"));
        let u = match nix::unistd::User::from_name(name) {
            Ok(Some(u)) if plausible_name(name) => u,
            Ok(_) => return Err(LookupError(format!("no passwd entry for {name:?}"))),
            Err(e) => return Err(failed("getpwnam", e)),
        };
        let c_name =
            std::ffi::CString::new(name).map_err(|_| LookupError("a name with NUL".into()))?;
        let gids =
            nix::unistd::getgrouplist(&c_name, u.gid).map_err(|e| failed("getgrouplist", e))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            match nix::unistd::Group::from_gid(gid) {
                Ok(Some(g)) => names.push(g.name),
                // A gid without a name cannot match a group in the policy.
                Ok(None) => {}
                Err(e) => return Err(failed("getgrgid", e)),
            }
        }
        Ok(names)
    }
    fn home_of(&self, name: &str) -> Option<std::path::PathBuf> {
        user(name).map(|u| u.dir)
    }
    fn human_users(&self) -> Vec<(String, u32)> {
        let (min, max) = uid_range(&std::fs::read_to_string("/etc/login.defs").unwrap_or_default());
        passwd::all()
            .into_iter()
            .filter(|(_, uid)| (min..=max).contains(uid))
            .collect()
    }
}

fn user(name: &str) -> Option<nix::unistd::User> {
    if !plausible_name(name) {
        return None;
    }
    nix::unistd::User::from_name(name).ok().flatten()
}

/// UID_MIN and UID_MAX from the text of `/etc/login.defs`.
pub fn uid_range(login_defs: &str) -> (u32, u32) {
    let value = |key: &str| {
        login_defs.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(key))
                .then(|| words.next().and_then(|v| v.parse::<u32>().ok()))
                .flatten()
        })
    };
    (
        value("UID_MIN").unwrap_or(1000),
        value("UID_MAX").unwrap_or(60000),
    )
}

/// Enumerating the user database (getpwent), the one libc call here that
/// nix does not wrap. getpwent is not thread-safe: a lock serialises it.
mod passwd {
    use std::ffi::CStr;
    use std::sync::Mutex;

    static LOCK: Mutex<()> = Mutex::new(());

    pub fn all() -> Vec<(String, u32)> {
        let Ok(_guard) = LOCK.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // SAFETY: setpwent/getpwent/endpwent are called under LOCK, so no
        // other thread of this process uses the enumeration at the same
        // time; each returned pointer is read before the next call.
        unsafe {
            libc::setpwent();
            loop {
                let p = libc::getpwent();
                if p.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*p).pw_name).to_string_lossy().into_owned();
                out.push((name, (*p).pw_uid));
                if out.len() > 1_000_000 {
                    break;
                }
            }
            libc::endpwent();
        }
        out
    }
}

/// A name worth looking up: not empty, not too long, no control characters
/// or separators that could confuse logs and files.
pub fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_LEN
        && !name
            .chars()
            .any(|c| c.is_control() || c == ':' || c == '/' || c.is_whitespace())
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use std::collections::HashMap;

    /// A fixed table of users.
    pub struct FakeUsers(pub HashMap<String, u32>);

    impl FakeUsers {
        pub fn new(users: &[(&str, u32)]) -> Self {
            FakeUsers(users.iter().map(|(n, u)| (n.to_string(), *u)).collect())
        }
    }

    impl Users for FakeUsers {
        fn groups_of(&self, name: &str) -> Result<Vec<String>, LookupError> {
            // Every fake user is in a group of their own name and in "users";
            // names starting with "staff" are also in "staff", those
            // starting with "sudo" in "sudo"; the name service fails for
            // names starting with "ldapdown".
            if name.starts_with("ldapdown") {
                return Err(LookupError("the directory does not answer".into()));
            }
            let mut g = vec![name.to_string(), "users".to_string()];
            if name.starts_with("staff") {
                g.push("staff".into());
            }
            if name.starts_with("sudo") {
                g.push("sudo".into());
            }
            Ok(g)
        }
        fn home_of(&self, name: &str) -> Option<std::path::PathBuf> {
            self.0
                .contains_key(name)
                .then(|| std::path::PathBuf::from(format!("/home/{name}")))
        }
        fn human_users(&self) -> Vec<(String, u32)> {
            let mut v: Vec<_> = self
                .0
                .iter()
                .filter(|(_, u)| **u >= 1000)
                .map(|(n, u)| (n.clone(), *u))
                .collect();
            v.sort();
            v
        }
        fn name_of(&self, uid: u32) -> Option<String> {
            // The first name of a uid, like getpwuid on /etc/passwd: the
            // shortest here, so that an alias ("toor") maps to "root".
            self.0
                .iter()
                .filter(|(_, u)| **u == uid)
                .map(|(n, _)| n.clone())
                .min_by_key(|n| (n.len(), n.clone()))
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            // Like a case-insensitive name service (SSSD, winbind).
            self.0
                .get(name)
                .or_else(|| self.0.get(&name.to_lowercase()))
                .copied()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_defs_range() {
        assert_eq!(uid_range(""), (1000, 60000));
        assert_eq!(
            uid_range("# c\nUID_MIN\t\t 2000\nUID_MAX 3000\nSYS_UID_MIN 100\n"),
            (2000, 3000)
        );
        assert!(!SystemUsers.human_users().iter().any(|(n, _)| n == "root"));
    }

    #[test]
    fn plausible_names() {
        assert!(plausible_name("alice"));
        assert!(plausible_name("tft123-x_y.z"));
        assert!(!plausible_name(""));
        assert!(!plausible_name("a b"));
        assert!(!plausible_name("a\nb"));
        assert!(!plausible_name("../x"));
        assert!(!plausible_name(&"a".repeat(MAX_USER_LEN + 1)));
    }
}
