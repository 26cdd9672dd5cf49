//! What `/proc` says of a calling process: the user a root process acts
//! for. `su` and `sudo` are setuid root: their real uid is still the user
//! who ran them. A root process whose real uid is root too may still carry
//! the audit login uid of the session it was started from
//! (`/proc/PID/loginuid`, set by pam_loginuid at login and kept across
//! `su`, `sudo`, `setpriv`).
//!
//! Read once per connection, right after the kernel gave the pid
//! (`SO_PEERCRED`, or the bus's `GetConnectionCredentials`). A process
//! that is gone by then (or a pid reused since) gives what that pid is
//! now, or nothing: the answer is only ever used to charge a login in
//! progress to a quota, never to grant anything.

use std::path::Path;

/// The audit login uid of a process that has none.
const NO_LOGIN_UID: u32 = u32::MAX;

/// The user a root process with `pid` acts for: its real uid when that is
/// not root, else its login uid when it has one that is not root; None
/// when it acts for no user (sshd, the console's `login`, a service) or
/// `/proc` does not say.
pub fn invoker_of(pid: u32) -> Option<u32> {
    invoker_in(Path::new("/proc"), pid)
}

fn invoker_in(proc_root: &Path, pid: u32) -> Option<u32> {
    let dir = proc_root.join(pid.to_string());
    let status = read_small(&dir.join("status"))?;
    match real_uid(&status)? {
        0 => {
            let text = read_small(&dir.join("loginuid"))?;
            login_uid(&text)
        }
        uid => Some(uid),
    }
}

/// The start of a `/proc` file, in one read of up to 4 KiB: the kernel
/// renders `status` and `loginuid` whole into one read (`status` is about
/// 1.5 KiB, and its `Uid:` line comes before the long ones, `Groups:`
/// among them). Three system calls (open, read, close) where reading to
/// the end took six, at every connection to the login socket.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

/// The real uid on the `Uid:` line of `/proc/PID/status` (real, effective,
/// saved, filesystem).
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `/proc/PID/loginuid`: a number, `4294967295` when unset; root's is no
/// invoker.
fn login_uid(text: &str) -> Option<u32> {
    match text.trim().parse().ok()? {
        0 | NO_LOGIN_UID => None,
        uid => Some(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_uid_is_the_first_on_the_uid_line() {
        let status = "Name:\tsu\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\n\
                      Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(real_uid(status), Some(1000));
        assert_eq!(real_uid("Uid:\t0\t0\t0\t0\n"), Some(0));
        assert_eq!(real_uid("Name:\tx\n"), None);
        assert_eq!(real_uid("Uid:\tx\t0\n"), None);
    }

    #[test]
    fn an_unset_or_root_login_uid_is_no_invoker() {
        assert_eq!(login_uid("4294967295"), None);
        assert_eq!(login_uid("0\n"), None);
        assert_eq!(login_uid("1001"), Some(1001));
        assert_eq!(login_uid(""), None);
    }

    #[test]
    fn a_process_is_read_from_its_proc_directory() {
        let root = std::env::temp_dir().join(format!("twofactord-procfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let write = |pid: &str, status: &str, loginuid: Option<&str>| {
            let dir = root.join(pid);
            assert!(std::fs::create_dir_all(&dir).is_ok());
            assert!(std::fs::write(dir.join("status"), status).is_ok());
            if let Some(l) = loginuid {
                assert!(std::fs::write(dir.join("loginuid"), l).is_ok());
            }
        };
        // su run by uid 1000: setuid root, real uid 1000.
        write("10", "Uid:\t1000\t0\t0\t0\n", Some("4294967295"));
        // sudo's child, or a root shell of a user who logged in as 1002.
        write("11", "Uid:\t0\t0\t0\t0\n", Some("1002"));
        // sshd: root, no login uid.
        write("12", "Uid:\t0\t0\t0\t0\n", Some("4294967295"));
        assert_eq!(invoker_in(&root, 10), Some(1000));
        assert_eq!(invoker_in(&root, 11), Some(1002));
        assert_eq!(invoker_in(&root, 12), None);
        assert_eq!(invoker_in(&root, 13), None, "a process that is gone");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn this_process_is_read() {
        // The test runs as some real uid: root's has no invoker unless it
        // has a login uid.
        let me = nix::unistd::getuid().as_raw();
        let got = invoker_of(std::process::id());
        if me != 0 {
            assert_eq!(got, Some(me));
        }
    }
}
