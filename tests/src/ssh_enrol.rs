//! The real OpenSSH client going through the enrolment at login (mandatory
//! policy) on a test [`Sshd`]: keyboard-interactive, answered through an
//! SSH_ASKPASS program that
//! - answers `Password` prompts with the password (from a file),
//! - answers `Code from the app` with the current code computed by oathtool
//!   from the `Secret:` line: taken from the prompt text itself if sshd put
//!   the PAM info messages there, else from the client's stderr, where ssh
//!   prints what the server sent before the prompt,
//! - answers `Type yes` with `yes`,
//! - answers `Verification code` with the code in a file,
//! - logs every prompt text it was given.
//!
//! The ssh command is `ssh -n -T ... 'echo LOGGED-IN'`: no terminal, a
//! command, as a script would log in.

use std::path::PathBuf;
use std::process::Command;

use crate::proc::{self, Finished};
use crate::sshd::{Sshd, SSH_TIMEOUT};
use crate::users::TestUser;

/// What one ssh run left behind.
pub struct SshRun {
    pub out: Finished,
    /// The client's stderr (written to a file: the askpass program reads it).
    pub stderr: String,
    /// Every prompt text the askpass program got, each followed by a line
    /// `----`.
    pub prompts: String,
    /// The secret the askpass program found (compact), if it was asked for
    /// the app's code.
    pub secret: Option<String>,
    /// The code it typed for the app.
    pub code: Option<String>,
    _dir: tempfile::TempDir,
}

impl SshRun {
    pub fn logged_in(&self) -> bool {
        self.out.success() && self.out.stdout().lines().any(|l| l == "LOGGED-IN")
    }
    pub fn describe(&self) -> String {
        format!(
            "{}\n--- client stderr (file) ---\n{}\n--- askpass prompts ---\n{}",
            self.out.describe(),
            self.stderr,
            self.prompts
        )
    }
}

const ASKPASS: &str = r#"#!/bin/sh
d="$TFT_CLIENT_DIR"
printf '%s\n----\n' "$1" >> "$d/prompts"
case "$1" in
*"Code from the app"*)
  secret=$(printf '%s\n' "$1" | sed -n 's/^.*Secret: *//p' | tr -d ' \r' | tail -n 1)
  if [ -z "$secret" ]; then
    secret=$(sed -n 's/^.*Secret: *//p' "$d/stderr" | tr -d ' \r' | tail -n 1)
  fi
  [ -n "$secret" ] || exit 1
  printf '%s\n' "$secret" > "$d/secret"
  printf '%s\n' "$secret" | oathtool --totp -b - > "$d/code" || exit 1
  exec cat "$d/code"
  ;;
*"Type yes"*) echo yes ;;
*[Vv]erification*) exec cat "$d/login-code" ;;
*[Pp]assword*) exec cat "$d/password" ;;
*) exit 1 ;;
esac
"#;

/// Logs in as `user` on `sshd` with `password`; `login_code` answers a
/// `Verification code` prompt if one comes. The client runs in the locale
/// `locale` (`LC_ALL`), or in the C locale if `None`: the OpenSSH client
/// escapes what the locale cannot print (e.g. UTF-8 in the C locale, as
/// octal `\342\226\210`) in prompt texts.
pub fn ssh(
    sshd: &Sshd,
    user: &TestUser,
    password: &str,
    login_code: &str,
    locale: Option<&str>,
) -> SshRun {
    let dir = crate::temp_dir("tft-sshc-");
    crate::set_mode(dir.path(), 0o700);
    let d = dir.path();
    crate::write_file(&d.join("password"), format!("{password}\n"), 0o600);
    crate::write_file(&d.join("login-code"), format!("{login_code}\n"), 0o600);
    crate::write_file(&d.join("askpass"), ASKPASS, 0o700);
    let home = d.join("home");
    std::fs::create_dir(&home).expect("client home");
    let stderr_path: PathBuf = d.join("stderr");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$@\" 2>\"$TFT_CLIENT_DIR/stderr\"")
        .arg("sh")
        .arg("setsid")
        .arg("-w")
        .args(crate::sshd::ssh_client_args(sshd.port, &user.name))
        .env_clear()
        .env("PATH", crate::PATH)
        .env("HOME", &home)
        .env("TFT_CLIENT_DIR", d)
        .env("SSH_ASKPASS", d.join("askpass"))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0");
    if let Some(l) = locale {
        cmd.env("LC_ALL", l);
    }
    let out = proc::run(&mut cmd, b"", SSH_TIMEOUT);
    let read = |name: &str| {
        std::fs::read(d.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok()
    };
    let trimmed = |name: &str| read(name).map(|s| s.trim().to_string());
    SshRun {
        stderr: std::fs::read(&stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        prompts: read("prompts").unwrap_or_default(),
        secret: trimmed("secret"),
        code: trimmed("code"),
        out,
        _dir: dir,
    }
}
