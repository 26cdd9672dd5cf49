//! Security keys: the module carries the daemon's request to a key and the
//! key's answer back, and decides nothing.
//!
//! The key is driven by a helper program (`twofactor-key`, installed in
//! `/usr/libexec/twofactor/`), not by this module: libfido2, with
//! libcrypto, libcbor and libudev, is then loaded only when a user with a
//! key logs in, never into every login's sshd, su or sudo. The helper is
//! started with an empty environment, reads the request on its standard
//! input and writes its answer (a `KeyAnswer`) on its standard output. The
//! module reads that answer with a deadline, kills a helper that overstays
//! it, and always reaps it: no thread, no process left behind.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twofactor_proto::key::{HelperInput, KeyAnswer};
use zeroize::Zeroizing;

/// The most a helper may write (an assertion is well under 1 KiB).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Beyond the touch timeout the helper gets, the time it may take to
/// start, find the keys and answer.
const GRACE: Duration = Duration::from_secs(5);

/// What the login loop needs from a key.
pub trait Keys {
    /// Whether a key can be used at all (the helper is installed).
    fn available(&self) -> bool;
    /// Finds out, without a touch, whether a key that may hold one of the
    /// request's credentials is plugged in: `KeyAnswer::Ready`, or the
    /// answer to pass on (NoDevice, NotRegistered, Failed).
    fn probe(&mut self, request: &[u8]) -> Zeroizing<Vec<u8>>;
    /// Runs the key for `request` (the daemon's, unread) with `pin` (empty:
    /// none) and returns the helper's answer, or a `KeyAnswer::Failed`
    /// saying why there is none.
    fn run(&mut self, request: &[u8], pin: &str) -> Zeroizing<Vec<u8>>;
}

/// The real keys, through the helper program.
pub struct HelperKeys {
    pub helper: Option<PathBuf>,
    /// How long the helper waits for a touch.
    pub touch_timeout: Duration,
    /// A test build's software key (`key_device=`).
    pub test_device: Option<PathBuf>,
}

impl Keys for HelperKeys {
    fn available(&self) -> bool {
        self.helper.as_deref().is_some_and(trusted_program)
    }

    fn probe(&mut self, request: &[u8]) -> Zeroizing<Vec<u8>> {
        self.call(request, "", true)
    }

    fn run(&mut self, request: &[u8], pin: &str) -> Zeroizing<Vec<u8>> {
        self.call(request, pin, false)
    }
}

/// Whether `path` may be run from inside sshd, su or sudo: a regular
/// file owned by root (or by this process's user: a screen locker, the
/// demo) that nobody else may write. A helper anyone could replace would
/// run as root at the next key login.
fn trusted_program(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    // SAFETY: geteuid takes no arguments, has no preconditions and cannot
    // fail.
    let euid = unsafe { libc::geteuid() };
    meta.is_file() && (meta.uid() == 0 || meta.uid() == euid) && meta.mode() & 0o022 == 0
}

fn failed(why: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(KeyAnswer::Failed(why.to_string()).encode())
}

impl HelperKeys {
    fn call(&self, request: &[u8], pin: &str, probe: bool) -> Zeroizing<Vec<u8>> {
        let Some(helper) = self.helper.clone() else {
            return failed("no key helper");
        };
        match self.run_helper(&helper, request, pin, probe) {
            Ok(answer) => answer,
            Err(why) => failed(&why),
        }
    }

    fn run_helper(
        &self,
        helper: &Path,
        request: &[u8],
        pin: &str,
        probe: bool,
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut command = Command::new(helper);
        command.env_clear();
        if probe {
            command.arg("--probe");
        }
        command
            .arg("--timeout-ms")
            .arg(self.touch_timeout.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(device) = &self.test_device {
            command.arg("--test-device").arg(device);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", helper.display()))?;
        let input = HelperInput {
            request: request.to_vec(),
            pin: Zeroizing::new(pin.to_string()),
        }
        .encode();
        let written = match child.stdin.take() {
            // Dropped at the end of this block: the helper sees the end of
            // its input.
            Some(mut stdin) => stdin.write_all(&input),
            None => Ok(()),
        };
        let deadline = Instant::now() + self.touch_timeout + GRACE;
        let read = read_until(&mut child, deadline);
        end(&mut child);
        written.map_err(|e| format!("writing to the key helper: {e}"))?;
        read
    }
}

/// Reads the helper's whole output, until it closes it or `deadline`.
fn read_until(child: &mut Child, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, String> {
    let Some(stdout) = child.stdout.as_mut() else {
        return Err("no output from the key helper".into());
    };
    let mut answer = Zeroizing::new(Vec::new());
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the key helper did not answer in time".into());
        }
        let mut pfd = libc::pollfd {
            fd: stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one valid pollfd for the duration of the call,
        // and its fd is the open read end of the helper's pipe.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("waiting for the key helper: {e}"));
        }
        if ready == 0 {
            continue; // the deadline is checked at the top
        }
        match stdout.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) if answer.len() + n > MAX_ANSWER_BYTES => {
                return Err("the key helper wrote too much".into())
            }
            Ok(n) => answer.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading from the key helper: {e}")),
        }
    }
}

/// Ends the helper: killed if still running, always reaped (an
/// application that reaps every child itself makes `wait` fail; that is
/// fine, the helper is gone either way).
fn end(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A helper made of a shell script, in a directory of its own.
    fn script(body: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("helper");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "pam-twofactor-key-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn keys(helper: PathBuf, timeout: Duration) -> HelperKeys {
        HelperKeys {
            helper: Some(helper),
            touch_timeout: timeout,
            test_device: None,
        }
    }

    #[test]
    fn the_helpers_answer_is_passed_on_and_it_gets_an_empty_environment() {
        // Answers NoDevice ('n') when its environment is empty, else
        // NotRegistered ('r'); reads its input first.
        let (_d, path) = script(
            "cat >/dev/null; if [ -z \"$TWOFACTOR_SHOULD_NOT_LEAK\" ]; then printf n; else printf r; fi",
        );
        std::env::set_var("TWOFACTOR_SHOULD_NOT_LEAK", "1");
        let mut k = keys(path, Duration::from_secs(5));
        assert!(k.available());
        assert_eq!(&k.run(b"req", "")[..], &KeyAnswer::NoDevice.encode()[..]);
    }

    #[test]
    fn a_helper_others_may_write_is_not_used() {
        let (_d, path) = script("printf n");
        assert!(keys(path.clone(), Duration::from_secs(1)).available());
        for mode in [0o775, 0o757] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                !keys(path.clone(), Duration::from_secs(1)).available(),
                "{mode:o}"
            );
        }
        // A directory is no program.
        assert!(!keys(std::env::temp_dir(), Duration::from_secs(1)).available());
    }

    #[test]
    fn a_helper_that_overstays_is_killed_and_the_answer_says_so() {
        let (_d, path) = script("exec sleep 600");
        let mut k = keys(path, Duration::from_millis(100));
        let started = Instant::now();
        let answer = k.run(b"req", "");
        assert!(started.elapsed() < GRACE + Duration::from_secs(3));
        assert!(matches!(
            KeyAnswer::decode(&answer),
            Ok(KeyAnswer::Failed(why)) if why.contains("in time")
        ));
    }

    #[test]
    fn a_missing_or_flooding_helper_is_a_failure_not_a_panic() {
        let mut none = keys(PathBuf::from("/nonexistent/helper"), Duration::from_secs(1));
        assert!(!none.available());
        assert!(matches!(
            KeyAnswer::decode(&none.run(b"r", "")),
            Ok(KeyAnswer::Failed(_))
        ));
        let (_d, path) = script("head -c 100000 /dev/zero");
        let mut flood = keys(path, Duration::from_secs(5));
        assert!(matches!(
            KeyAnswer::decode(&flood.run(b"r", "")),
            Ok(KeyAnswer::Failed(why)) if why.contains("too much")
        ));
    }
}
