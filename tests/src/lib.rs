//! Fixtures for the end-to-end tests of twofactor: a private system-like
//! `dbus-daemon` with the shipped policy, the real `twofactord` on a
//! temporary store, real local users, the built `twofactorctl`, the built
//! `pam_twofactor.so` under real libpam (through `pam-harness`), a real
//! `sshd` and `sudo`, TOTP codes computed independently by `oathtool`, and
//! a private PostgreSQL server for the daemon's `postgresql` store.
//!
//! Every fixture cleans up after itself on `Drop` (also when a test panics):
//! processes are killed by pid, users removed by their own names, files in
//! `/etc` removed.

pub mod admin;
pub mod bus;
pub mod contract;
pub mod conversation;
pub mod ctl;
pub mod daemon;
pub mod email;
pub mod etc;
pub mod fleet_ca;
pub mod groups;
pub mod pam;
pub mod postgres;
pub mod proc;
pub mod qr;
pub mod scenario;
pub mod sk_dummy;
pub mod smtp;
pub mod soft_key;
pub mod ssh_enrol;
pub mod sshd;
pub mod sshkeys;
pub mod syslog;
pub mod tcp_proxy;
pub mod totp;
pub mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use bus::PrivateBus;
pub use ctl::Ctl;
pub use daemon::Env;
pub use daemon::{Daemon, DaemonConfig, BUS_NAME};
pub use pam::{PamRun, PamService};
pub use postgres::PgServer;
pub use scenario::Enrolled;
pub use users::TestUser;

/// Environment variable that turns "skipped, needs root" into a failure (CI).
pub const REQUIRE_ROOT_ENV: &str = "TWOFACTOR_REQUIRE_ROOT";

/// The prompt the daemon asks for a code with.
pub const CODE_PROMPT: &str = "Verification code from your authenticator app: ";
/// The refusal for a wrong, replayed or unknown-user code.
pub const INVALID_CODE: &str = "Invalid verification code.";

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that need root call this first and return when it gives false:
/// without root they are skipped, unless `TWOFACTOR_REQUIRE_ROOT=1`, where
/// running without root is a failure.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var(REQUIRE_ROOT_ENV).as_deref() == Ok("1") {
        panic!("{test} needs root, and {REQUIRE_ROOT_ENV}=1 says root is required");
    }
    eprintln!("SKIPPED (needs root): {test}");
    false
}

/// `if !need_root!() { return; }` with the test's name in the message.
#[macro_export]
macro_rules! need_root {
    () => {
        $crate::root_or_skip(module_path!())
    };
}

/// The repository's root (the workspace).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// The cargo profile directory the running test was built in
/// (`target/<profile>/deps/<test>` -> `target/<profile>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("test binary has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Polls `done` until it holds or `timeout` passes (then asks once more);
/// whether it held. For conditions another process brings about.
pub fn wait_until(timeout: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

/// Cargo's target directory itself (`target`, or $CARGO_TARGET_DIR): the
/// parent of [`target_dir`].
pub fn target_root() -> PathBuf {
    let profile = target_dir();
    profile.parent().map(Path::to_path_buf).unwrap_or(profile)
}

/// A built program or library of the workspace, by file name.
pub fn built(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    if !p.exists() {
        panic!(
            "{name} is not built (looked for {}): build the whole workspace first — run `make test` \
             (cargo build --workspace --all-targets && cargo test --workspace)",
            p.display()
        );
    }
    p
}

pub fn twofactord_bin() -> PathBuf {
    built("twofactord")
}
pub fn twofactorctl_bin() -> PathBuf {
    built("twofactorctl")
}
pub fn pam_harness_bin() -> PathBuf {
    built("pam-harness")
}
pub fn pam_module_so() -> PathBuf {
    built("libpam_twofactor.so")
}

/// A temporary directory that every user can enter (sockets, PAM files and
/// home directories inside are used by the test users too).
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    temp_dir_in(&std::env::temp_dir(), prefix)
}

/// Like [`temp_dir`], under /var/tmp: for what the daemon must reach while
/// its own /tmp is private (see [`daemon`]).
pub fn var_temp_dir(prefix: &str) -> tempfile::TempDir {
    temp_dir_in(Path::new("/var/tmp"), prefix)
}

/// Like [`temp_dir`], under `base`.
pub fn temp_dir_in(base: &Path, prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("create a temporary directory");
    set_mode(dir.path(), 0o755);
    dir
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

/// A process-unique number, for unique names.
pub fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The machine's host name (what the daemon puts in `user@host`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Shell lines (for `unshare --mount --propagation private sh -c`) that
/// give the program a system bus socket of the test's choosing, whatever
/// the machine has: an empty tmpfs on /run/dbus (on /run if /run/dbus does
/// not exist), and, if `$TFT_SYSTEM_BUS` is set, the fixed socket path
/// /run/dbus/system_bus_socket as a symlink to that socket. A host's own
/// login socket (/run/twofactor, which the module tries before the bus)
/// is hidden under an empty tmpfs too. Nothing outside the namespace
/// changes.
pub const FIXED_SYSTEM_BUS_SETUP: &str = r#"set -e
if [ -d /run/dbus ]; then
  mount -t tmpfs -o mode=755 tft-run-dbus /run/dbus
else
  mount -t tmpfs -o mode=755 tft-run /run
  mkdir /run/dbus
fi
if [ -n "$TFT_SYSTEM_BUS" ]; then
  ln -s "$TFT_SYSTEM_BUS" /run/dbus/system_bus_socket
fi
if [ -d /run/twofactor ]; then
  mount -t tmpfs -o mode=755 tft-run-twofactor /run/twofactor
fi
"#;

/// `unshare ... sh -c '<FIXED_SYSTEM_BUS_SETUP> exec [setpriv ...] "$@"' sh
/// PROGRAM`: PROGRAM runs (as `as_user` if given) with the fixed system bus
/// socket pointing at `system_bus` (or absent). Root only.
pub fn with_fixed_system_bus(
    program: &Path,
    system_bus: Option<&Path>,
    as_user: Option<(u32, u32)>,
) -> std::process::Command {
    assert!(
        is_root(),
        "a private /run/dbus needs root (mount namespace)"
    );
    let exec = match as_user {
        Some((uid, gid)) => {
            format!("exec setpriv --reuid={uid} --regid={gid} --clear-groups \"$@\"\n")
        }
        None => "exec \"$@\"\n".to_string(),
    };
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{FIXED_SYSTEM_BUS_SETUP}{exec}"))
        .arg("sh")
        .arg(program)
        .env(
            "TFT_SYSTEM_BUS",
            system_bus
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        );
    cmd
}

/// A PATH for child programs.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
