//! Real local users, made with useradd and removed with userdel by their
//! own names on Drop.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::proc::{self, Finished};

/// useradd/userdel/chpasswd lock /etc/passwd; one at a time in this process,
/// and retried while another process holds the lock.
static USER_DB: Mutex<()> = Mutex::new(());

/// Runs a user-database tool (useradd, groupadd, gpasswd, ...) one at a
/// time in this process, retried while another process holds the lock.
pub(crate) fn run_locked(cmd: &[&str], input: &[u8]) -> Finished {
    let _guard = USER_DB.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    for _ in 0..50 {
        let out = proc::run(
            Command::new(cmd[0])
                .args(&cmd[1..])
                .env("PATH", crate::PATH),
            input,
            Duration::from_secs(30),
        );
        // 10: cannot lock the password file (another process has it);
        // 8 (userdel): a process of the user is still ending.
        if out.success() || !matches!(out.status.code(), Some(10) | Some(8)) {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    last.expect("at least one attempt")
}

pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    password: String,
    home: tempfile::TempDir,
}

// `new()` creates a real user: an action, not a default value.
#[allow(clippy::new_without_default)]
impl TestUser {
    /// A new user `tft<pid>x<n>` with a random password and a home directory
    /// in a temporary directory.
    pub fn new() -> TestUser {
        TestUser::with_home_under(&std::env::temp_dir())
    }

    /// Like [`TestUser::new`], with the home directory in a temporary
    /// directory under `parent` (e.g. /var/tmp, which the daemon sees:
    /// its own /tmp is private).
    pub fn with_home_under(parent: &std::path::Path) -> TestUser {
        let name = format!("tft{}x{}", std::process::id(), crate::unique());
        assert!(name.len() <= 32);
        let password = format!("Pw-{}-{}", crate::random_hex(8), crate::unique());
        let base = crate::temp_dir_in(parent, "tft-home-");
        let home = base.path().join(&name);
        let home_s = home.display().to_string();
        let out = run_locked(
            &["useradd", "-M", "-N", "-s", "/bin/sh", "-d", &home_s, &name],
            b"",
        );
        assert!(out.success(), "useradd {name} failed: {}", out.describe());
        let mut user = TestUser {
            name,
            uid: 0,
            gid: 0,
            password,
            home: base,
        };
        let (uid, gid) = lookup(&user.name).expect("new user is in the user database");
        user.uid = uid;
        user.gid = gid;
        std::fs::create_dir(&home).expect("create home");
        crate::set_mode(&home, 0o755);
        user.chown(&home);
        // The password goes through stdin, never argv.
        let line = format!("{}:{}\n", user.name, user.password);
        let out = run_locked(&["chpasswd"], line.as_bytes());
        assert!(out.success(), "chpasswd failed: {}", out.stderr());
        user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Gives the user a new random password with `chpasswd` (through
    /// stdin), as an administrator or `passwd` would; returns it.
    pub fn change_password(&mut self) -> &str {
        let password = format!("Pw-{}-{}", crate::random_hex(8), crate::unique());
        let line = format!("{}:{}\n", self.name, password);
        let out = run_locked(&["chpasswd"], line.as_bytes());
        assert!(out.success(), "chpasswd failed: {}", out.stderr());
        self.password = password;
        &self.password
    }

    pub fn home(&self) -> PathBuf {
        self.home.path().join(&self.name)
    }

    pub fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// Gives `path` to the user and their primary group.
    pub fn chown(&self, path: &std::path::Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }

    /// Makes `group` (an existing group) the user's primary group
    /// (`usermod -g`); the passwd entry goes with the user on Drop.
    pub fn set_primary_group(&mut self, group: &str) {
        let out = run_locked(&["usermod", "-g", group, &self.name], b"");
        assert!(
            out.success(),
            "usermod -g {group} {} failed: {}",
            self.name,
            out.describe()
        );
        let (_, gid) = lookup(&self.name).expect("the user is in the user database");
        self.gid = gid;
    }

    /// A second passwd entry with this user's uid (`useradd -o`), as an
    /// administrator makes `toor` for root; removed by its name on Drop.
    pub fn alias(&self) -> Alias {
        let name = format!("tfa{}x{}", std::process::id(), crate::unique());
        let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
        let home = self.home().display().to_string();
        let out = run_locked(
            &[
                "useradd", "-o", "-u", &uid, "-g", &gid, "-M", "-N", "-s", "/bin/sh", "-d", &home,
                &name,
            ],
            b"",
        );
        assert!(
            out.success(),
            "useradd -o {name} failed: {}",
            out.describe()
        );
        Alias { name }
    }
}

/// A same-uid alias of a [`TestUser`].
pub struct Alias {
    pub name: String,
}

impl Drop for Alias {
    fn drop(&mut self) {
        let out = run_locked(&["userdel", &self.name], b"");
        if !out.success() {
            eprintln!("warning: userdel {} failed: {}", self.name, out.stderr());
        }
    }
}

/// uid and primary gid of a user, from `id` (goes through NSS).
pub fn lookup(name: &str) -> Option<(u32, u32)> {
    let get = |flag: &str| -> Option<u32> {
        let out = proc::run(
            Command::new("id").arg(flag).arg(name),
            b"",
            Duration::from_secs(10),
        );
        if !out.success() {
            return None;
        }
        out.stdout().trim().parse().ok()
    };
    Some((get("-u")?, get("-g")?))
}

/// A name that no user has (for "unknown user" tests).
pub fn unknown_user_name() -> String {
    let name = format!("tftnouser{}x{}", std::process::id(), crate::unique());
    assert!(lookup(&name).is_none(), "{name} unexpectedly exists");
    name
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let out = run_locked(&["userdel", &self.name], b"");
        if !out.success() {
            eprintln!("warning: userdel {} failed: {}", self.name, out.stderr());
        }
        // The home directory goes with the TempDir.
    }
}
