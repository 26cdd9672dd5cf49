//! What sshd's effective configuration says of one login: whether it
//! requires a touch (user presence) for every public key,
//! `PubkeyAuthOptions touch-required`. That is what makes a security-key
//! SSH key a second factor: without it, an `authorized_keys` line with
//! `no-touch-required` lets a key sign with nobody at the token, and
//! `SSH_AUTH_INFO_0` looks the same either way.
//!
//! Read from `sshd -T -C user=…,host=…,addr=…`, which follows `Include`
//! and applies the `Match` blocks for that user and client address as sshd
//! would (about 10 ms). `Match` blocks on `LocalAddress`/`LocalPort` are
//! not applied: PAM does not say which address and port the client came
//! to. A client address that is not an IP address (sshd's `UseDNS`) is
//! refused: the `Match Address` blocks could not be applied to it.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest `sshd -T` may take.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How often a running `sshd -T` is looked at.
const POLL: Duration = Duration::from_millis(5);

/// Why a security key does not count for this login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRequired {
    #[error(
        "sshd does not require a touch for every key (its PubkeyAuthOptions is {0:?}): add \
         `PubkeyAuthOptions touch-required` to sshd_config"
    )]
    NoTouch(String),
    #[error(
        "the client address {0:?} is not an IP address, so sshd's Match blocks cannot be \
         applied to it"
    )]
    Address(String),
    #[error("the user name cannot be given to sshd -T")]
    User,
    #[error("sshd -T failed: {0}")]
    Failed(String),
}

/// Whether `sshd` (with `config`, or its default when empty) requires a
/// touch for every key of a login of `user` from `rhost`.
pub fn touch_required(
    sshd: &Path,
    config: &Path,
    user: &str,
    rhost: &str,
) -> Result<(), NotRequired> {
    if user.is_empty()
        || user
            .chars()
            .any(|c| c == ',' || c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err(NotRequired::User);
    }
    let addr: IpAddr = rhost
        .parse()
        .map_err(|_| NotRequired::Address(rhost.chars().take(64).collect()))?;
    let mut cmd = Command::new(sshd);
    cmd.env_clear().arg("-T");
    if !config.as_os_str().is_empty() {
        cmd.arg("-f").arg(config);
    }
    cmd.arg("-C")
        .arg(format!("user={user},host={addr},addr={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let failed = |e: &dyn std::fmt::Display| NotRequired::Failed(e.to_string());
    let mut child = cmd.spawn().map_err(|e| failed(&e))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| failed(&e))? {
            Some(status) => break status,
            None if started.elapsed() >= DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(&format!(
                    "no answer within {} s",
                    DEADLINE.as_secs()
                )));
            }
            None => std::thread::sleep(POLL),
        }
    };
    // sshd -T writes a few KiB: the pipes held all of it.
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).map_err(|e| failed(&e))?;
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        let first = err.lines().next().unwrap_or("").chars().take(200);
        return Err(failed(&format!("{status}: {}", first.collect::<String>())));
    }
    let options = pubkey_options(&out).unwrap_or("none");
    if requires_touch(options) {
        Ok(())
    } else {
        Err(NotRequired::NoTouch(options.chars().take(100).collect()))
    }
}

/// The value of `pubkeyauthoptions` in `sshd -T`'s output.
fn pubkey_options(output: &str) -> Option<&str> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        key.eq_ignore_ascii_case("pubkeyauthoptions")
            .then_some(value.trim())
    })
}

/// Whether a `pubkeyauthoptions` value includes `touch-required`.
fn requires_touch(options: &str) -> bool {
    options
        .split(|c: char| c == ',' || c.is_whitespace())
        .any(|o| o == "touch-required")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_read_from_sshd_output() {
        let out = "port 22\npubkeyauthentication yes\npubkeyauthoptions touch-required\n";
        assert_eq!(pubkey_options(out), Some("touch-required"));
        assert!(requires_touch("touch-required"));
        assert!(requires_touch("verify-required,touch-required"));
        assert!(requires_touch("touch-required verify-required"));
        assert!(!requires_touch("none"));
        assert!(!requires_touch("verify-required"));
        assert!(!requires_touch("no-touch-required"));
        assert_eq!(pubkey_options("port 22\n"), None);
    }

    #[test]
    fn names_and_addresses_that_could_say_more_are_refused() {
        let sshd = Path::new("/nonexistent/sshd");
        for user in ["a,addr=1.2.3.4", "a=b", "a b", "", "a\nb"] {
            assert_eq!(
                touch_required(sshd, Path::new(""), user, "127.0.0.1"),
                Err(NotRequired::User),
                "{user:?}"
            );
        }
        assert!(matches!(
            touch_required(sshd, Path::new(""), "alice", "host.example"),
            Err(NotRequired::Address(_))
        ));
        assert!(matches!(
            touch_required(sshd, Path::new(""), "alice", "::1"),
            Err(NotRequired::Failed(_))
        ));
    }

    /// The real sshd, when the machine has one: a configuration with and
    /// without the option, and a Match block that turns it off for one
    /// user.
    #[test]
    fn the_real_sshd_is_asked() {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("twofactord-sshd-{}", std::process::id()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let key = dir.join("host_key");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            return;
        }
        let config = dir.join("sshd_config");
        let write = |text: &str| std::fs::write(&config, text);
        let base = format!("HostKey {}\n", key.display());
        assert!(write(&format!(
            "{base}PubkeyAuthOptions touch-required\nMatch User nobody\n  PubkeyAuthOptions none\n"
        ))
        .is_ok());
        assert_eq!(touch_required(sshd, &config, "alice", "127.0.0.1"), Ok(()));
        assert!(matches!(
            touch_required(sshd, &config, "nobody", "127.0.0.1"),
            Err(NotRequired::NoTouch(_))
        ));
        assert!(write(&base).is_ok());
        assert!(matches!(
            touch_required(sshd, &config, "alice", "127.0.0.1"),
            Err(NotRequired::NoTouch(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
