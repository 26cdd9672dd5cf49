//! The system's user database (passwd), behind a trait so that tests of the
//! login machine do not need real accounts.

/// Longest user name accepted anywhere (Linux allows 32; be generous).
pub const MAX_USER_LEN: usize = 256;

pub trait Users: Send + Sync {
    /// Login name of a uid, if the system knows it.
    fn name_of(&self, uid: u32) -> Option<String>;
    /// uid of a login name, if the system knows it.
    fn uid_of(&self, name: &str) -> Option<u32>;
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
        if !plausible_name(name) {
            return None;
        }
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
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
