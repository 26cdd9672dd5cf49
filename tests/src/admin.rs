//! Fixtures for the administrator side (issue 4): a daemon whose config has
//! an `admin_group` and an initial `[policy]`, optionally under libfaketime
//! (a clock the test moves), and the built `twofactorctl` run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bus::PrivateBus;
use crate::daemon::{Daemon, DaemonConfig, Env};
use crate::proc::{self, Finished};

/// libfaketime, multi-threaded flavour (the daemon runs tokio threads).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// What goes into the daemon's config on top of [`DaemonConfig`].
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub base: DaemonConfig,
    /// `admin_group = "..."`; empty: only root.
    pub admin_group: String,
    /// `protected_groups = [...]`, if written (None: the built-in list).
    pub protected_groups: Option<Vec<String>>,
    /// The `[policy]` table's body (e.g. `mandatory = true`), if any.
    pub policy_toml: Option<String>,
}

impl AdminConfig {
    pub fn to_toml(&self, state_dir: &Path) -> String {
        // Top-level keys must come before the first table.
        let mut text = format!("admin_group = {:?}\n", self.admin_group);
        if let Some(groups) = &self.protected_groups {
            let quoted: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            text.push_str(&format!("protected_groups = [{}]\n", quoted.join(", ")));
        }
        text.push_str(&self.base.to_toml(state_dir));
        if let Some(p) = &self.policy_toml {
            text.push_str("\n[policy]\n");
            text.push_str(p);
            text.push('\n');
        }
        text
    }
}

/// The daemon's clock, shifted by the test through libfaketime's
/// `FAKETIME_TIMESTAMP_FILE` (re-read at every clock call). Only the wall
/// clock moves; monotonic clocks (tokio's timers) are left alone.
/// Clones are the same clock.
#[derive(Clone)]
pub struct FakeClock(std::sync::Arc<ClockFile>);

struct ClockFile {
    dir: tempfile::TempDir,
    /// The offset last written, in seconds (the file holds it too).
    offset: std::sync::atomic::AtomicI64,
}

// `new()` creates a file: an action, not a default value.
#[allow(clippy::new_without_default)]
impl FakeClock {
    pub fn new() -> FakeClock {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: install Debian's faketime package"
        );
        let dir = crate::var_temp_dir("tft-faketime-");
        let c = FakeClock(std::sync::Arc::new(ClockFile {
            dir,
            offset: std::sync::atomic::AtomicI64::new(0),
        }));
        c.set_offset(0);
        c
    }

    fn file(&self) -> PathBuf {
        self.0.dir.path().join("faketime")
    }

    /// From now on the daemon's wall clock is the real one plus `seconds`.
    pub fn set_offset(&self, seconds: i64) {
        let tmp = self.0.dir.path().join("faketime.new");
        crate::write_file(&tmp, format!("{seconds:+}\n"), 0o644);
        std::fs::rename(&tmp, self.file()).expect("move the faketime file into place");
        self.0
            .offset
            .store(seconds, std::sync::atomic::Ordering::SeqCst);
    }

    /// How far ahead of the real clock the daemon's is, in seconds.
    pub fn offset(&self) -> i64 {
        self.0.offset.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the daemon's clock `seconds` further on (never back).
    pub fn advance(&self, seconds: u32) {
        self.set_offset(self.offset() + i64::from(seconds));
    }

    /// Runs `daemon` (not started yet) on this clock.
    pub fn apply(&self, daemon: &mut Daemon) {
        daemon.extra_preload.push(PathBuf::from(LIBFAKETIME));
        let env = [
            ("FAKETIME_TIMESTAMP_FILE", self.file().display().to_string()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ];
        for (k, v) in env {
            daemon.extra_env.push((k.into(), v));
        }
    }
}

/// A private bus and a daemon started with `config` (and `clock`, if any).
pub fn start_env(config: &AdminConfig, clock: Option<&FakeClock>) -> Env {
    let bus = PrivateBus::start();
    let mut daemon = Daemon::prepare(&config.base);
    daemon.write_config(&config.to_toml(&daemon.state_dir()));
    if let Some(c) = clock {
        c.apply(&mut daemon);
    }
    if let Err(e) = daemon.try_launch(&bus) {
        panic!("{e}");
    }
    Env { daemon, bus }
}

/// `twofactorctl --bus ADDR ARGS...` as root, clean environment.
pub fn root_command(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::twofactorctl_bin());
    cmd.arg("--bus")
        .arg(env.bus.address())
        .args(args)
        .env_clear()
        .env("PATH", crate::PATH)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("LANG", "C.UTF-8");
    cmd
}

/// Runs `twofactorctl ARGS...` as root with `stdin`.
pub fn root_ctl(env: &Env, args: &[&str], stdin: &[u8]) -> Finished {
    proc::run(&mut root_command(env, args), stdin, crate::ctl::TIMEOUT)
}

/// Runs `twofactorctl ARGS...` as root and asserts success.
pub fn root_ok(env: &Env, args: &[&str]) -> Finished {
    let out = root_ctl(env, args, b"");
    assert!(
        out.success(),
        "twofactorctl {} (as root) failed: {}\n--- daemon log ---\n{}",
        args.join(" "),
        out.describe(),
        env.daemon.log()
    );
    out
}

/// `admin policy mandatory on|off [extra...]` as root; asserts success.
pub fn set_policy(env: &Env, on: bool, extra: &[&str]) -> Finished {
    let mut args = vec![
        "admin",
        "policy",
        "mandatory",
        if on { "on" } else { "off" },
    ];
    args.extend_from_slice(extra);
    root_ok(env, &args)
}

/// `admin user NAME --json` as root, parsed.
pub fn user_json(env: &Env, name: &str) -> serde_json::Value {
    let out = root_ok(env, &["admin", "user", name, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "admin user --json printed no JSON ({e}): {}",
            out.describe()
        )
    })
}

/// `admin reset NAME --yes` as root; asserts success and returns the
/// recovery code printed after `Recovery code:`.
pub fn reset(env: &Env, name: &str) -> (String, Finished) {
    let out = root_ok(env, &["admin", "reset", name, "--yes"]);
    let code = out
        .stdout()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Recovery code:")
                .map(|c| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no `Recovery code:` line: {}", out.describe()));
    (code, out)
}
