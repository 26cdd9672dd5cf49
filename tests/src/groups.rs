//! Real local groups, made with groupadd and removed with groupdel by their
//! own names on Drop; members added with gpasswd (supplementary groups, as
//! an administrator would do it).

use crate::users::{run_locked, TestUser};

pub struct TestGroup {
    pub name: String,
}

// `new()` creates a real group: an action, not a default value.
#[allow(clippy::new_without_default)]
impl TestGroup {
    /// A new group `tftg<pid>x<n>` with no members.
    pub fn new() -> TestGroup {
        let name = format!("tftg{}x{}", std::process::id(), crate::unique());
        let out = run_locked(&["groupadd", &name], b"");
        assert!(out.success(), "groupadd {name} failed: {}", out.describe());
        TestGroup { name }
    }

    /// Makes `user` a (supplementary) member.
    pub fn add(&self, user: &TestUser) {
        let out = run_locked(&["gpasswd", "-a", &user.name, &self.name], b"");
        assert!(
            out.success(),
            "gpasswd -a {} {} failed: {}",
            user.name,
            self.name,
            out.describe()
        );
    }

    /// Removes `user` from the group.
    pub fn remove(&self, user: &TestUser) {
        let out = run_locked(&["gpasswd", "-d", &user.name, &self.name], b"");
        assert!(
            out.success(),
            "gpasswd -d {} {} failed: {}",
            user.name,
            self.name,
            out.describe()
        );
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let out = run_locked(&["groupdel", &self.name], b"");
        if !out.success() {
            eprintln!("warning: groupdel {} failed: {}", self.name, out.stderr());
        }
    }
}
