//! The system's user database (passwd), behind a trait so that tests of the
//! login machine do not need real accounts.

/// Longest user name accepted anywhere (Linux allows 32; be generous).
pub const MAX_USER_LEN: usize = 256;

pub trait Users: Send + Sync {
    /// Login name of a uid, if the system knows it.
    fn name_of(&self, uid: u32) -> Option<String>;
    /// uid of a login name, if the system knows it.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// Names of the groups the user is in (primary and supplementary).
    fn groups_of(&self, name: &str) -> Vec<String>;
    /// Home directory.
    fn home_of(&self, name: &str) -> Option<std::path::PathBuf>;
    /// The system's human users: uids in `/etc/login.defs`'s
    /// UID_MIN..=UID_MAX (default 1000..=60000).
    fn human_users(&self) -> Vec<(String, u32)>;
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
    fn groups_of(&self, name: &str) -> Vec<String> {
        let Some(u) = user(name) else {
            return Vec::new();
        };
        let Ok(c_name) = std::ffi::CString::new(name) else {
            return Vec::new();
        };
        nix::unistd::getgrouplist(&c_name, u.gid)
            .unwrap_or_else(|_| vec![u.gid])
            .into_iter()
            .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
            .map(|g| g.name)
            .collect()
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
        fn groups_of(&self, name: &str) -> Vec<String> {
            // Every fake user is in a group of their own name and in "users";
            // names starting with "staff" are also in "staff".
            let mut g = vec![name.to_string(), "users".to_string()];
            if name.starts_with("staff") {
                g.push("staff".into());
            }
            g
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
            self.0
                .iter()
                .find(|(_, u)| **u == uid)
                .map(|(n, _)| n.clone())
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            self.0.get(name).copied()
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
