//! The real `twofactord` on a private bus and a temporary store, with its
//! password re-check (`twofactor-reauth`) run through Debian's libpam-wrapper
//! from a private PAM service directory, so the machine's /etc/pam.d is
//! never read for it.
//!
//! libpam-wrapper copies the service files into `/tmp/pam.X` (one letter,
//! picked from the pid) at the first `pam_start`, and two processes that
//! start at once can pick the same directory; when one exits it removes the
//! directory under the other, whose next password check then fails. So, as
//! root, each daemon runs in its own mount namespace with a private tmpfs on
//! /tmp; everything it needs (config, state, PAM files, the bus socket) is
//! under /var/tmp instead.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bus::PrivateBus;
use crate::proc;

pub const BUS_NAME: &str = "org.twofactor.Daemon1";
pub const OBJECT_PATH: &str = "/org/twofactor/Daemon1";
pub const PAM_WRAPPER_LIB: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";

/// The settings of the test's twofactord.toml.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Empty: the daemon uses the host name.
    pub issuer: String,
    pub skew_steps: u32,
    pub max_failures: u32,
    pub lockout_seconds: u64,
    pub max_lockout_seconds: u64,
    pub session_timeout_seconds: u64,
    /// Extra TOML appended to the file (e.g. an `[email]` section).
    pub extra: String,
}

impl Default for DaemonConfig {
    /// The defaults of the design, except that failures lock out only after
    /// many attempts (tests about lockouts set their own small values).
    fn default() -> Self {
        DaemonConfig {
            issuer: String::new(),
            skew_steps: 1,
            max_failures: 100,
            lockout_seconds: 2,
            max_lockout_seconds: 4,
            session_timeout_seconds: 300,
            extra: String::new(),
        }
    }
}

impl DaemonConfig {
    pub fn to_toml(&self, state_dir: &Path) -> String {
        format!(
            "state_dir = {state:?}\n\
             key_file = {key:?}\n\
             issuer = {issuer:?}\n\
             reauth_service = \"twofactor-reauth\"\n\
             \n[totp]\nskew_steps = {skew}\n\
             \n[limits]\nmax_failures = {mf}\nlockout_seconds = {ls}\nmax_lockout_seconds = {mls}\n\
             \n[login]\nsession_timeout_seconds = {st}\n{extra}",
            state = state_dir.display().to_string(),
            key = key_file_for(state_dir).display().to_string(),
            issuer = self.issuer,
            skew = self.skew_steps,
            mf = self.max_failures,
            ls = self.lockout_seconds,
            mls = self.max_lockout_seconds,
            st = self.session_timeout_seconds,
            extra = self.extra,
        )
    }
}

/// Where a test daemon's key file is: beside its state directory, never
/// inside it.
pub fn key_file_for(state_dir: &Path) -> PathBuf {
    state_dir
        .parent()
        .unwrap_or(state_dir)
        .join("twofactord.key")
}

pub struct Daemon {
    dir: tempfile::TempDir,
    bus_address: String,
    child: Option<Child>,
    /// How long to wait for the bus name at start.
    pub start_timeout: Duration,
    /// More libraries to preload after libpam-wrapper (e.g. libfaketime).
    pub extra_preload: Vec<PathBuf>,
    /// More environment variables for the daemon.
    pub extra_env: Vec<(String, String)>,
    /// `--log-stderr` (true unless a test turns it off: every audit line
    /// is then copied to the log as `twofactord: EVENT …`).
    pub log_stderr: bool,
    /// More arguments for the daemon (e.g. `--syslog-socket PATH`).
    pub extra_args: Vec<String>,
    /// The login socket to serve, when not the bus's
    /// ([`PrivateBus::login_socket`]).
    pub login_socket: Option<PathBuf>,
    /// The `[store]` section added to every config written (see
    /// [`crate::postgres::STORE_ENV`]); empty for SQLite.
    store: String,
}

/// The reauth PAM service the daemon's libpam reads (through pam_wrapper):
/// the repository's own file, or pam_unix only if it does not exist yet.
fn reauth_service_text() -> String {
    let shipped = crate::repo_root().join("config/pam.d/twofactor-reauth");
    std::fs::read_to_string(shipped)
        .unwrap_or_else(|_| "auth required pam_unix.so\naccount required pam_unix.so\n".into())
}

impl Daemon {
    /// Starts twofactord on `bus` with `config`; returns when it owns its
    /// bus name.
    pub fn start(bus: &PrivateBus, config: &DaemonConfig) -> Daemon {
        let mut d = Daemon::prepare(config);
        d.launch(bus);
        d
    }

    /// Writes the config, the state directory (0700) and the PAM service
    /// directory, without starting the daemon (see [`Daemon::try_launch`]).
    pub fn prepare(config: &DaemonConfig) -> Daemon {
        let d = Daemon::prepare_files(config);
        let init = d.init();
        assert!(
            init.success(),
            "twofactord --init failed: {}",
            init.describe()
        );
        d
    }

    /// Another host of `first`'s fleet: `config` (which names the store
    /// `first` uses) and a copy of `first`'s key file, as an administrator
    /// distributes it; no `--init` (the store exists).
    pub fn prepare_sharing(config: &DaemonConfig, first: &Daemon) -> Daemon {
        let d = Daemon::prepare_files(config);
        let key = key_file_for(&d.state_dir());
        std::fs::copy(key_file_for(&first.state_dir()), &key).expect("copy the key file");
        crate::set_mode(&key, 0o600);
        d
    }

    /// Like [`Daemon::prepare`] without `--init` (no key file, no
    /// database): for tests that run [`Daemon::init`] themselves (e.g.
    /// several hosts initialising one PostgreSQL database at once).
    pub fn prepare_without_init(config: &DaemonConfig) -> Daemon {
        Daemon::prepare_files(config)
    }

    /// The config, the state directory and the PAM service directory.
    fn prepare_files(config: &DaemonConfig) -> Daemon {
        let dir = crate::var_temp_dir("tft-daemon-");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("create state dir");
        crate::set_mode(&state, 0o700);
        let pamdir = dir.path().join("pam.d");
        std::fs::create_dir(&pamdir).expect("create pam dir");
        crate::write_file(
            &pamdir.join("twofactor-reauth"),
            reauth_service_text(),
            0o644,
        );
        let store = if crate::postgres::selected() && !config.extra.contains("[store]") {
            crate::postgres::shared_store_toml()
        } else {
            String::new()
        };
        let d = Daemon {
            dir,
            bus_address: String::new(),
            child: None,
            start_timeout: Duration::from_secs(30),
            extra_preload: Vec::new(),
            extra_env: Vec::new(),
            log_stderr: true,
            extra_args: Vec::new(),
            login_socket: None,
            store,
        };
        d.write_config(&config.to_toml(&state));
        d
    }

    /// `twofactord --init --config <this daemon's config>`: the key file and
    /// the database, as at a first installation.
    pub fn init(&self) -> proc::Finished {
        self.command("--init")
    }

    /// `twofactord --rotate-key --config <this daemon's config>`.
    pub fn rotate_key(&self) -> proc::Finished {
        self.command("--rotate-key")
    }

    /// `twofactord FLAG --config <this daemon's config>`, run to its end.
    fn command(&self, flag: &str) -> proc::Finished {
        self.run_args(&[flag])
    }

    /// `twofactord ARGS... --config <this daemon's config>`, run to its
    /// end (e.g. `--add-host NAME FILE` at a fleet's verifier).
    pub fn run_args(&self, args: &[&str]) -> proc::Finished {
        proc::run(
            Command::new(crate::twofactord_bin())
                .args(args)
                .arg("--config")
                .arg(self.config_path())
                .env_clear()
                .env("PATH", crate::PATH),
            b"",
            Duration::from_secs(60),
        )
    }

    /// Replaces the config file with `text` (plus the `[store]` section of
    /// the suite's PostgreSQL database, when the tests run against
    /// PostgreSQL and `text` names no store).
    pub fn write_config(&self, text: &str) {
        let mut text = text.to_string();
        if !text.contains("[store]") && !self.store.is_empty() {
            text.push('\n');
            text.push_str(&self.store);
        }
        crate::write_file(&self.config_path(), text, 0o644);
    }

    /// `twofactord --check-config --config <this daemon's config>`.
    pub fn check_config(&self) -> proc::Finished {
        self.command("--check-config")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("twofactord.toml")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("twofactord.log")
    }

    /// Everything the daemon wrote to stderr (all its runs).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits (up to 10 s) until the log contains `text` (the daemon logs
    /// some events when the bus tells it a client left); returns the log.
    pub fn wait_log(&self, text: &str) -> String {
        crate::wait_until(Duration::from_secs(10), || self.log().contains(text));
        self.log()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn launch(&mut self, bus: &PrivateBus) {
        if let Err(e) = self.try_launch(bus) {
            panic!("{e}");
        }
    }

    /// The daemon's binary at a path the private /tmp does not hide: the
    /// build's own when it is outside /tmp, else a copy in this daemon's
    /// directory (under /var/tmp), made once.
    fn binary_outside_tmp(&self) -> PathBuf {
        let built = crate::twofactord_bin();
        if !built.starts_with("/tmp") {
            return built;
        }
        let copy = self.dir.path().join("twofactord");
        if !copy.exists() {
            std::fs::copy(&built, &copy).expect("copy twofactord out of /tmp");
        }
        copy
    }

    /// Starts the daemon on `bus` and waits until it owns its name; `Err`
    /// (with its stderr) if it exits first or takes too long.
    pub fn try_launch(&mut self, bus: &PrivateBus) -> Result<(), String> {
        assert!(self.child.is_none(), "daemon already running");
        self.bus_address = bus.address().to_string();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open daemon log");
        let mut preload = PAM_WRAPPER_LIB.to_string();
        for lib in &self.extra_preload {
            preload.push(':');
            preload.push_str(&lib.display().to_string());
        }
        let mut cmd = if crate::is_root() {
            // unshare and sh exec in place: the child's pid is the daemon's.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(
                    "mount -t tmpfs -o mode=1777 tft-private-tmp /tmp && \
                     exec env LD_PRELOAD=\"$TFT_PRELOAD\" \"$@\"",
                )
                .arg("sh")
                .arg(self.binary_outside_tmp())
                .env_clear()
                .env("TFT_PRELOAD", &preload);
            c
        } else {
            let mut c = Command::new(crate::twofactord_bin());
            c.env_clear().env("LD_PRELOAD", &preload);
            c
        };
        cmd.arg("--foreground")
            .arg("--config")
            .arg(self.config_path())
            .arg("--bus")
            .arg(&self.bus_address)
            .arg("--login-socket")
            .arg(
                self.login_socket
                    .clone()
                    .unwrap_or_else(|| bus.login_socket()),
            )
            .args(self.log_stderr.then_some("--log-stderr"))
            .args(&self.extra_args)
            .env("PATH", crate::PATH)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.dir.path().join("pam.d"))
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = cmd.spawn().expect("start twofactord");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + self.start_timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let pid = c.id();
                    self.child = None;
                    remove_pam_wrapper_dirs(pid);
                    return Err(format!(
                        "twofactord exited before taking its bus name ({status}).\n--- its stderr ---\n{}",
                        self.log()
                    ));
                }
            }
            if bus.has_owner(BUS_NAME) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "twofactord did not own {BUS_NAME} within {:?}.\n--- its stderr ---\n{}",
                    self.start_timeout,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the daemon to exit by itself (one that
    /// must refuse to start); its exit status, None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let status = proc::wait_timeout(c, timeout)?;
        let pid = c.id();
        self.child = None;
        remove_pam_wrapper_dirs(pid);
        Some(status)
    }

    fn end(&mut self, sig: i32, bus: Option<&PrivateBus>) {
        if let Some(mut c) = self.child.take() {
            proc::signal(c.id(), sig);
            if proc::wait_timeout(&mut c, Duration::from_secs(15)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
                remove_pam_wrapper_dirs(c.id());
                panic!(
                    "twofactord did not exit within 15 s of signal {sig}; killed.\n{}",
                    self.log()
                );
            }
            remove_pam_wrapper_dirs(c.id());
        }
        if let Some(bus) = bus {
            assert!(
                bus.wait_owner(BUS_NAME, false, Duration::from_secs(10)),
                "{BUS_NAME} still owned after the daemon exited"
            );
        }
    }

    /// Stops the daemon the normal way (SIGTERM) and waits until its bus name
    /// is gone.
    pub fn stop(&mut self, bus: &PrivateBus) {
        self.end(libc::SIGTERM, Some(bus));
    }

    /// Kills the daemon with SIGKILL (no chance to clean up) and waits until
    /// its bus name is gone.
    pub fn kill_hard(&mut self, bus: &PrivateBus) {
        self.end(libc::SIGKILL, Some(bus));
    }

    fn kill(&mut self) {
        self.end(libc::SIGKILL, None);
    }

    /// Starts the daemon again on the same config and state.
    pub fn restart(&mut self, bus: &PrivateBus) {
        if self.child.is_some() {
            self.stop(bus);
        }
        self.launch(bus);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            remove_pam_wrapper_dirs(c.id());
        }
    }
}

/// libpam-wrapper keeps a copy of the service files in /tmp/pam.X with the
/// pid of its process in a `pid` file and removes it at a normal exit only.
/// Removes the ones of `pid` (a daemon of ours that has been reaped).
fn remove_pam_wrapper_dirs(pid: u32) {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_pwrap = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pam.") && n.len() == 5);
        if !is_pwrap {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("pid")).unwrap_or_default();
        if owner.trim() == pid.to_string() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A private bus with a daemon on it: what most tests need.
pub struct Env {
    // Field order: the daemon is dropped before its bus.
    pub daemon: Daemon,
    pub bus: PrivateBus,
}

impl Env {
    pub fn start(config: &DaemonConfig) -> Env {
        let bus = PrivateBus::start();
        let daemon = Daemon::start(&bus, config);
        Env { daemon, bus }
    }

    pub fn with_defaults() -> Env {
        Env::start(&DaemonConfig::default())
    }

    /// [`Env::start`] with the daemon on `clock`.
    pub fn start_on(config: &DaemonConfig, clock: &crate::admin::FakeClock) -> Env {
        let bus = PrivateBus::start();
        let mut daemon = Daemon::prepare(config);
        clock.apply(&mut daemon);
        daemon.launch(&bus);
        Env { daemon, bus }
    }

    /// A second host sharing `first`'s store: its own bus and daemon,
    /// `first`'s key file.
    pub fn start_sharing(config: &DaemonConfig, first: &Env) -> Env {
        let bus = PrivateBus::start();
        let mut daemon = Daemon::prepare_sharing(config, &first.daemon);
        daemon.launch(&bus);
        Env { daemon, bus }
    }

    pub fn ctl(&self) -> crate::Ctl {
        crate::Ctl::new(self.bus.address())
    }

    /// A PAM service using the module with `bus=` this bus, plus `extra`
    /// module arguments.
    pub fn pam(&self, extra: &str) -> crate::PamService {
        crate::PamService::for_bus(&self.bus.plain_address(), extra)
    }

    /// A PAM service using the module as a host's PAM line does: the
    /// daemon's login socket first (`socket=`), this bus when it is
    /// missing; plus `extra` module arguments.
    pub fn pam_socket(&self, extra: &str) -> crate::PamService {
        crate::PamService::for_bus(
            &self.bus.plain_address(),
            &format!("socket={} {extra}", self.bus.login_socket().display()),
        )
    }

    pub fn stop_daemon(&mut self) {
        self.daemon.stop(&self.bus);
    }
    pub fn kill_daemon(&mut self) {
        self.daemon.kill_hard(&self.bus);
    }
    pub fn restart_daemon(&mut self) {
        self.daemon.restart(&self.bus);
    }
}
