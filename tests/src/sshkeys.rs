//! Real OpenSSH key pairs for SSH logins that prove a key before
//! keyboard-interactive (`AuthenticationMethods publickey,keyboard-interactive`
//! on the test [`crate::sshd::Sshd`]): `ssh-keygen` makes them, a test user's
//! `~/.ssh/authorized_keys` lists them, and [`AuthInfoProbe`] records what
//! sshd put into the PAM environment as `SSH_AUTH_INFO_0`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc;
use crate::users::TestUser;

/// The kinds of keys the tests make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    /// RSA, 2048 bits (the smallest OpenSSH accepts by default; quick to
    /// make).
    Rsa,
    /// A security key's Ed25519 key (`ed25519-sk`), held by OpenSSH's
    /// software security key ([`crate::sk_dummy`]), which signs as if
    /// touched.
    Ed25519Sk,
    /// The same made with `-O no-touch-required`: it signs without a
    /// touch, and sshd accepts that only where `authorized_keys` says
    /// `no-touch-required` and sshd does not require a touch.
    Ed25519SkNoTouch,
}

impl KeyKind {
    /// `ssh-keygen -t` and `-b` arguments.
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "2048"],
            KeyKind::Ed25519Sk => &["-t", "ed25519-sk"],
            KeyKind::Ed25519SkNoTouch => &["-t", "ed25519-sk", "-O", "no-touch-required"],
        }
    }

    /// Whether a security key holds it (the client needs the middleware).
    pub fn is_security_key(self) -> bool {
        matches!(self, KeyKind::Ed25519Sk | KeyKind::Ed25519SkNoTouch)
    }
}

/// Makes a key pair without a passphrase at `private` (and `private`.pub)
/// with `ssh-keygen`.
pub fn keygen(kind: KeyKind, private: &Path, comment: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q").args(kind.keygen_args());
    if kind.is_security_key() {
        cmd.arg("-w").arg(crate::sk_dummy::provider());
    }
    let out = proc::run(
        cmd.args(["-N", "", "-C", comment, "-f"])
            .arg(private)
            .env_clear()
            .env("PATH", crate::PATH),
        b"",
        Duration::from_secs(30),
    );
    assert!(out.success(), "ssh-keygen: {}", out.describe());
}

/// A client key pair in its own temporary directory (removed on Drop).
pub struct KeyPair {
    pub kind: KeyKind,
    /// The private key file (mode 0600, owned by the test's user: root),
    /// for `ssh -i`.
    pub private: PathBuf,
    /// The public key line as ssh-keygen wrote it: `TYPE BASE64 COMMENT`.
    pub public: String,
    /// Its OpenSSH SHA-256 fingerprint, `SHA256:...` (as sshd logs it).
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

impl KeyPair {
    pub fn new(kind: KeyKind) -> KeyPair {
        let dir = crate::temp_dir("tft-key-");
        let private = dir.path().join("id");
        keygen(
            kind,
            &private,
            &format!("tft-{}-{}", std::process::id(), crate::unique()),
        );
        let public_path = dir.path().join("id.pub");
        let public = std::fs::read_to_string(&public_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", public_path.display()))
            .trim()
            .to_string();
        let out = proc::run(
            Command::new("ssh-keygen")
                .args(["-E", "sha256", "-lf"])
                .arg(&public_path)
                .env_clear()
                .env("PATH", crate::PATH),
            b"",
            Duration::from_secs(30),
        );
        assert!(out.success(), "ssh-keygen -lf: {}", out.describe());
        // "256 SHA256:... comment (ED25519)"
        let fingerprint = out
            .stdout()
            .split_whitespace()
            .nth(1)
            .filter(|f| f.starts_with("SHA256:"))
            .unwrap_or_else(|| panic!("no fingerprint in {:?}", out.stdout()))
            .to_string();
        KeyPair {
            kind,
            private,
            public,
            fingerprint,
            _dir: dir,
        }
    }

    /// The key's type as OpenSSH names it (`ssh-ed25519`, `ssh-rsa`).
    pub fn key_type(&self) -> &str {
        self.field(0)
    }

    /// The key's base64 blob.
    pub fn base64(&self) -> &str {
        self.field(1)
    }

    /// What sshd puts into `SSH_AUTH_INFO_0` after this key was proved:
    /// `publickey TYPE BASE64` (without the line end sshd adds).
    pub fn auth_info(&self) -> String {
        format!("publickey {} {}", self.key_type(), self.base64())
    }

    fn field(&self, n: usize) -> &str {
        self.public
            .split_whitespace()
            .nth(n)
            .unwrap_or_else(|| panic!("public key line {:?} has no field {n}", self.public))
    }
}

impl TestUser {
    /// Adds `key` to the user's `~/.ssh/authorized_keys`, made as sshd's
    /// StrictModes wants: `.ssh` 0700 and the file 0600, both owned by the
    /// user. They live in the home directory, which goes with the user.
    pub fn authorize_key(&self, key: &KeyPair) {
        self.authorize_key_with(key, "");
    }

    /// [`TestUser::authorize_key`] with `options` before the key on its
    /// line (e.g. `no-touch-required`; "" for none).
    pub fn authorize_key_with(&self, key: &KeyPair, options: &str) {
        use std::io::Write;
        let ssh = self.home().join(".ssh");
        if !ssh.exists() {
            std::fs::create_dir(&ssh).expect("mkdir ~/.ssh");
        }
        crate::set_mode(&ssh, 0o700);
        self.chown(&ssh);
        let file = ssh.join("authorized_keys");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        let line = if options.is_empty() {
            key.public.clone()
        } else {
            format!("{options} {}", key.public)
        };
        writeln!(f, "{line}").expect("write authorized_keys");
        crate::set_mode(&file, 0o600);
        self.chown(&file);
    }
}

/// A `pam_exec.so` line for a test's PAM stack that records the value of
/// `SSH_AUTH_INFO_0` in the PAM environment when the auth phase gets to it
/// (pam_exec hands the PAM environment to its program).
pub struct AuthInfoProbe {
    dir: tempfile::TempDir,
}

// `new()` writes a script: an action, not a default value.
#[allow(clippy::new_without_default)]
impl AuthInfoProbe {
    pub fn new() -> AuthInfoProbe {
        let dir = crate::temp_dir("tft-authinfo-");
        crate::write_file(
            &dir.path().join("probe"),
            format!(
                "#!/bin/sh\n\
                 [ \"$PAM_TYPE\" = auth ] || exit 0\n\
                 printf '%s' \"${{SSH_AUTH_INFO_0-(unset)}}\" > '{out}.tmp'\n\
                 mv '{out}.tmp' '{out}'\n",
                out = dir.path().join("auth-info").display()
            ),
            0o755,
        );
        AuthInfoProbe { dir }
    }

    /// The PAM line to put before the module's auth line (optional: it
    /// never changes the result of the stack).
    pub fn pam_line(&self) -> String {
        format!(
            "auth optional pam_exec.so quiet {}\n",
            self.dir.path().join("probe").display()
        )
    }

    /// What the last auth phase found in `SSH_AUTH_INFO_0` (`(unset)` if
    /// it was not there), or `None` if the probe never ran.
    pub fn recorded(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("auth-info")).ok()
    }
}
