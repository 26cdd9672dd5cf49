//! The built `twofactorctl`, run as a given user (uid/gid set, supplementary
//! groups dropped) against the private bus, answered through stdin.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::proc::{self, Finished, Interactive};
use crate::totp;
use crate::users::TestUser;

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Ctl {
    address: String,
}

/// What one run of `twofactorctl enable app` showed.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret as printed after `Secret:` (grouped, with spaces).
    pub secret: String,
    /// The `otpauth://` URI as printed after `URI:`.
    pub uri: String,
    /// The confirmation code that was typed.
    pub code: String,
    pub output: Finished,
}

impl Enrolment {
    /// The backup codes the enrolment printed (a first method's set).
    pub fn backup_codes(&self) -> Vec<String> {
        self.output
            .stdout()
            .lines()
            .map(str::trim)
            .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
            .map(str::to_string)
            .collect()
    }

    /// The secret without spaces.
    pub fn compact_secret(&self) -> String {
        self.secret.chars().filter(|c| !c.is_whitespace()).collect()
    }
}

impl Ctl {
    pub fn new(address: &str) -> Ctl {
        Ctl {
            address: address.to_string(),
        }
    }

    /// `twofactorctl --bus ADDR ARGS...` as `user`, with a clean environment.
    pub fn command(&self, user: &TestUser, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::twofactorctl_bin());
        cmd.arg("--bus")
            .arg(&self.address)
            .args(args)
            .env_clear()
            .env("PATH", crate::PATH)
            .env("HOME", user.home())
            .env("USER", &user.name)
            .env("LOGNAME", &user.name)
            .env("LANG", "C.UTF-8")
            .uid(user.uid)
            .gid(user.gid);
        cmd
    }

    pub fn run(&self, user: &TestUser, args: &[&str], stdin: &[u8]) -> Finished {
        proc::run(&mut self.command(user, args), stdin, TIMEOUT)
    }

    /// `twofactorctl status --json` as `user`, parsed.
    pub fn status_json(&self, user: &TestUser) -> serde_json::Value {
        let out = self.run(user, &["status", "--json"], b"");
        assert!(
            out.success(),
            "twofactorctl status --json failed for {}: {}",
            user.name,
            out.describe()
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}): {}", out.describe()))
    }

    /// Active methods of `user`, from `status --json`.
    pub fn methods(&self, user: &TestUser) -> Vec<String> {
        let v = self.status_json(user);
        let m = v
            .get("methods")
            .and_then(|m| m.as_array())
            .unwrap_or_else(|| panic!("status --json has no \"methods\" array: {v}"));
        m.iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Failed attempts counted for `user`, from `status --json`.
    pub fn failures(&self, user: &TestUser) -> u64 {
        let v = self.status_json(user);
        v.get("failures")
            .and_then(|f| f.as_u64())
            .unwrap_or_else(|| panic!("status --json has no numeric \"failures\": {v}"))
    }

    /// Runs `twofactorctl enable app` as `user`: types `password`, waits for
    /// the `Secret:` and `URI:` lines, types the code `code_for(secret)`.
    /// Does not judge the result.
    pub fn enable_app_with(
        &self,
        user: &TestUser,
        password: &str,
        code_for: impl FnOnce(&str) -> String,
    ) -> Enrolment {
        self.enable_app_args(user, &["enable", "app"], password, code_for)
    }

    /// `twofactorctl enable app` for a user who has a method already: the
    /// password, then `current` (a current second factor), then as
    /// [`Ctl::enable_app_with`].
    pub fn replace_app_with(
        &self,
        user: &TestUser,
        password: &str,
        current: &str,
        code_for: impl FnOnce(&str) -> String,
    ) -> Enrolment {
        let typed = format!("{password}\n{current}");
        self.enable_app_args(user, &["enable", "app"], &typed, code_for)
    }

    /// Like [`Ctl::enable_app_with`], with the arguments `args` (e.g.
    /// `["enable", "app", "--save", FILE]`).
    pub fn enable_app_args(
        &self,
        user: &TestUser,
        args: &[&str],
        password: &str,
        code_for: impl FnOnce(&str) -> String,
    ) -> Enrolment {
        let mut p = Interactive::spawn(&mut self.command(user, args));
        p.write(format!("{password}\n").as_bytes());
        let mut secret = None;
        let mut uri = None;
        while secret.is_none() || uri.is_none() {
            let line = p.expect_line(TIMEOUT, |l| {
                l.contains("Secret:") || l.contains("otpauth://")
            });
            if let Some(i) = line.find("Secret:") {
                secret = Some(line[i + "Secret:".len()..].trim().to_string());
            } else if let Some(i) = line.find("otpauth://") {
                uri = Some(line[i..].trim().to_string());
            }
        }
        let secret = secret.unwrap_or_default();
        let code = code_for(&secret);
        p.write(format!("{code}\n").as_bytes());
        let output = p.finish(TIMEOUT);
        Enrolment {
            secret,
            uri: uri.unwrap_or_default(),
            code,
            output,
        }
    }

    /// Enrols `user`'s authenticator app with the right password and a
    /// right code (from oathtool); asserts that it worked and returns what
    /// was shown. The confirming code is the one of the *previous* step
    /// (accepted within the ±1 step window): the daemon marks the step of the
    /// confirming code as used, so this way the current code is still unused
    /// and a test can log in with it at once.
    pub fn enroll_app(&self, user: &TestUser) -> Enrolment {
        let e = self.enable_app_with(user, user.password(), |secret| {
            totp::ensure_step_margin(4);
            totp::code_at_step_offset(secret, -1)
        });
        let text = format!("{}{}", e.output.stdout(), e.output.stderr());
        assert!(
            e.output.success() && text.to_lowercase().contains("enabled"),
            "twofactorctl enable app did not enable the app for {}: {}",
            user.name,
            e.output.describe()
        );
        e
    }

    /// `twofactorctl disable METHOD` as `user`, typing `password`, then
    /// `code` (a current second factor: a code of a method, or a backup
    /// code) when the account has a method.
    pub fn disable(&self, user: &TestUser, method: &str, password: &str, code: &str) -> Finished {
        self.run(
            user,
            &["disable", method],
            format!("{password}\n{code}\n").as_bytes(),
        )
    }
}
