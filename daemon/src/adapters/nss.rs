//! The system's user database (passwd, groups, shadow), behind a trait so
//! that tests of the login machine do not need real accounts.

use crate::origin::HostFacts;
use zeroize::Zeroizing;

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
    /// The user's shadow entry (getspnam): None when the shadow database
    /// has no entry for the name (an account whose password is kept
    /// elsewhere: LDAP, SSSD). An error when it could not say (callers
    /// fail closed). A name service that cannot read shadow says so.
    fn shadow_of(&self, name: &str) -> Result<Option<Shadow>, LookupError> {
        Err(LookupError(format!(
            "this name service gives no shadow entries (asked for {name:?})"
        )))
    }

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

/// What the shadow database says of a user's password: the hash field as
/// it is (a crypt hash, or `!`, `*`, `x`, empty) and the date of the last
/// change (`sp_lastchg`, days since 1970; -1 when the field is empty).
#[derive(Clone, PartialEq, Eq)]
pub struct Shadow {
    pub hash: Zeroizing<Vec<u8>>,
    pub last_change: i64,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow")
            .field("last_change", &self.last_change)
            .finish_non_exhaustive()
    }
}

/// getpwnam/getpwuid through NSS; the account a name stands for
/// remembered while `/etc/passwd` alone decides it
/// ([`super::passwd_cache`]).
#[derive(Default)]
pub struct SystemUsers {
    accounts: super::passwd_cache::PasswdCache,
}

impl Users for SystemUsers {
    fn canonical(&self, name: &str) -> Option<(String, u32)> {
        if !plausible_name(name) {
            return None;
        }
        self.accounts.canonical(name, |name| {
            let uid = self.uid_of(name)?;
            Some((self.name_of(uid)?, uid))
        })
    }
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
    fn shadow_of(&self, name: &str) -> Result<Option<Shadow>, LookupError> {
        if !plausible_name(name) {
            return Err(LookupError("not a user name".into()));
        }
        shadow::entry(name)
    }
}

/// getspnam_r, the one shadow call, which nix does not wrap.
mod shadow {
    use super::{LookupError, Shadow};
    use zeroize::Zeroizing;

    /// The largest buffer tried for one entry (glibc asks for more with
    /// ERANGE; a shadow line is far shorter).
    const MAX_BUFFER: usize = 1 << 20;

    pub fn entry(name: &str) -> Result<Option<Shadow>, LookupError> {
        let c_name =
            std::ffi::CString::new(name).map_err(|_| LookupError("a name with NUL".into()))?;
        let mut size = 1024;
        loop {
            let mut buf = Zeroizing::new(vec![0u8; size]);
            // SAFETY: an all-zero spwd is a valid value of a plain C struct
            // (null pointers, zero numbers); getspnam_r fills it.
            let mut entry: libc::spwd = unsafe { std::mem::zeroed() };
            let mut found: *mut libc::spwd = std::ptr::null_mut();
            // SAFETY: every pointer is valid for the call: the name is a
            // NUL-terminated string, `entry` and `found` are ours, `buf` is
            // `size` writable bytes that outlive every use of the pointers
            // getspnam_r stores into `entry`, which are read below before
            // `buf` is dropped. getspnam_r is the reentrant form: no
            // static storage is shared with other threads.
            let rc = unsafe {
                libc::getspnam_r(
                    c_name.as_ptr(),
                    &mut entry,
                    buf.as_mut_ptr().cast(),
                    size,
                    &mut found,
                )
            };
            if rc == libc::ERANGE && size < MAX_BUFFER {
                size *= 4;
                continue;
            }
            if rc != 0 {
                return Err(LookupError(format!(
                    "getspnam: {}",
                    std::io::Error::from_raw_os_error(rc)
                )));
            }
            if found.is_null() {
                return Ok(None);
            }
            let hash = if entry.sp_pwdp.is_null() {
                Zeroizing::new(Vec::new())
            } else {
                // SAFETY: sp_pwdp points into `buf` (alive), NUL-terminated
                // by getspnam_r.
                Zeroizing::new(
                    unsafe { std::ffi::CStr::from_ptr(entry.sp_pwdp) }
                        .to_bytes()
                        .to_vec(),
                )
            };
            // c_long is i64 here, i32 on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            let last_change = i64::from(entry.sp_lstchg);
            return Ok(Some(Shadow { hash, last_change }));
        }
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

/// The name service of a fleet's host, as it answered for one login's
/// user ([`HostFacts`]): what a verifier decides with, in place of its own
/// name service, for a login that host forwarded. It knows that one user
/// and nothing else.
pub struct Reported(pub HostFacts);

impl Users for Reported {
    fn name_of(&self, uid: u32) -> Option<String> {
        self.0
            .account
            .as_ref()
            .filter(|(_, u)| *u == uid)
            .map(|(n, _)| n.clone())
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.0
            .account
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, u)| *u)
    }
    fn groups_of(&self, name: &str) -> Result<Vec<String>, LookupError> {
        match &self.0.account {
            Some((n, _)) if n == name => self.0.groups.clone().map_err(LookupError),
            _ => Ok(Vec::new()),
        }
    }
    fn home_of(&self, _name: &str) -> Option<std::path::PathBuf> {
        None
    }
    fn human_users(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
    fn shadow_of(&self, name: &str) -> Result<Option<Shadow>, LookupError> {
        match &self.0.account {
            Some((n, _)) if n == name => match &self.0.shadow {
                Ok(Some((digest, last_change))) => Ok(Some(Shadow {
                    hash: Zeroizing::new(digest.as_bytes().to_vec()),
                    last_change: *last_change,
                })),
                Ok(None) => Ok(None),
                Err(e) => Err(LookupError(e.clone())),
            },
            _ => Ok(None),
        }
    }
    /// The host resolved the name already: its account, whatever the
    /// spelling it was asked with.
    fn canonical(&self, _name: &str) -> Option<(String, u32)> {
        self.0.account.clone()
    }
}

/// What a fleet's host reports of `shadow`: a digest of its hash field
/// (the hash itself never leaves the host) and its date of last change.
/// Equal entries give equal digests, which is all a trusted device
/// compares.
pub fn shadow_digest(shadow: &Shadow) -> (String, i64) {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"twofactor fleet shadow entry\0");
    h.update(&*shadow.hash);
    (hex::encode(h.finalize()), shadow.last_change)
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A fixed table of users, and their shadow entries, which a test
    /// may change (a password change, an account without an entry, a
    /// name service that fails).
    pub struct FakeUsers(
        pub HashMap<String, u32>,
        pub Mutex<HashMap<String, ShadowAnswer>>,
    );

    /// What [`FakeUsers::shadow_of`] answers for one user.
    #[derive(Clone)]
    pub enum ShadowAnswer {
        Entry(Shadow),
        NoEntry,
        Fails,
    }

    impl FakeUsers {
        /// Every user has a shadow entry of their own (`$y$fake$NAME`, last
        /// changed on day 20000); a name starting with "ldapdown" fails.
        pub fn new(users: &[(&str, u32)]) -> Self {
            let shadow = users
                .iter()
                .map(|(n, _)| {
                    let answer = if n.starts_with("ldapdown") {
                        ShadowAnswer::Fails
                    } else {
                        ShadowAnswer::Entry(Shadow {
                            hash: Zeroizing::new(format!("$y$fake${n}").into_bytes()),
                            last_change: 20_000,
                        })
                    };
                    (n.to_string(), answer)
                })
                .collect();
            FakeUsers(
                users.iter().map(|(n, u)| (n.to_string(), *u)).collect(),
                Mutex::new(shadow),
            )
        }

        /// What the shadow database answers for `name` from now on.
        pub fn set_shadow(&self, name: &str, answer: ShadowAnswer) {
            if let Ok(mut table) = self.1.lock() {
                table.insert(name.to_string(), answer);
            }
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
        fn shadow_of(&self, name: &str) -> Result<Option<Shadow>, LookupError> {
            let table = self
                .1
                .lock()
                .map_err(|_| LookupError("the fake shadow table is poisoned".into()))?;
            match table.get(name) {
                Some(ShadowAnswer::Entry(entry)) => Ok(Some(entry.clone())),
                Some(ShadowAnswer::NoEntry) | None => Ok(None),
                Some(ShadowAnswer::Fails) => {
                    Err(LookupError("the directory does not answer".into()))
                }
            }
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
        assert!(!SystemUsers::default()
            .human_users()
            .iter()
            .any(|(n, _)| n == "root"));
    }

    /// The real shadow database (root only: others may not read it): an
    /// account has an entry, a name nobody has has none, and neither is an
    /// error.
    #[test]
    fn shadow_entries_through_nss() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                SystemUsers::default().shadow_of("root").is_err(),
                "not root: no answer"
            );
            return;
        }
        let root = SystemUsers::default()
            .shadow_of("root")
            .unwrap()
            .expect("root's entry");
        assert!(!root.hash.is_empty());
        assert_eq!(
            SystemUsers::default()
                .shadow_of("tf-nobody-has-this-name")
                .unwrap(),
            None
        );
        assert!(SystemUsers::default().shadow_of("a:b").is_err());
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
