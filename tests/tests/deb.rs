//! The Debian packages on this machine, for real (issue 10): built by
//! `make deb` into target/deb, installed with `apt-get install ./…deb`,
//! enabled with `pam-auth-update`, logged in through Debian's own
//! common-auth/common-account with a code from oathtool, removed, reinstalled,
//! upgraded, purged. It changes the machine's packages and PAM stacks, so it
//! is `#[ignore]`d in the normal run and runs alone, as root, from
//! `make deb-test` (the end of `make test`); it undoes what it did, by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use twofactor_tests::pam::PamRun;
use twofactor_tests::proc::{self, Finished};
use twofactor_tests::wait_until;
use twofactor_tests::{totp, Ctl, TestUser, CODE_PROMPT};

const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
const PACKAGES: [&str; 2] = ["libpam-twofactor", "twofactor"];

fn run(program: &str, args: &[&str]) -> Finished {
    proc::run(
        Command::new(program)
            .args(args)
            .env("PATH", twofactor_tests::PATH)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        b"",
        Duration::from_secs(300),
    )
}

fn ok(program: &str, args: &[&str]) -> Finished {
    let out = run(program, args);
    assert!(out.success(), "{program} {args:?}: {}", out.describe());
    out
}

fn output(program: &str, args: &[&str]) -> String {
    ok(program, args).stdout().trim().to_string()
}

/// Every file of /etc/pam.d with its bytes.
fn pam_d() -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir("/etc/pam.d")
        .expect("/etc/pam.d")
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
        .collect()
}

fn installed(package: &str) -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", package])
        .stdout()
        .contains("install ok installed")
}

/// The workspace's version (Cargo.toml) — the packages must carry it.
fn workspace_version() -> String {
    let toml = std::fs::read_to_string(twofactor_tests::repo_root().join("Cargo.toml"))
        .expect("Cargo.toml");
    toml.lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("workspace version")
}

/// What the test started, stopped by pid on drop; the packages purged and
/// the test's own PAM file removed whatever happens.
struct Machine {
    bus: Option<Child>,
    daemon: Option<Child>,
    daemon_log: PathBuf,
    service: PathBuf,
    dir: tempfile::TempDir,
    /// Whether /run/twofactor (the login socket's directory, which the
    /// daemon makes when no systemd passes it the socket) was there before.
    had_run_dir: bool,
}

/// The directory of the login socket the installed daemon makes.
const RUN_DIR: &str = "/run/twofactor";

impl Machine {
    fn new() -> Machine {
        let dir = twofactor_tests::temp_dir("tft-deb-");
        Machine {
            bus: None,
            daemon: None,
            daemon_log: dir.path().join("twofactord.log"),
            service: PathBuf::from(format!("/etc/pam.d/tft-deb-{}", std::process::id())),
            dir,
            had_run_dir: Path::new(RUN_DIR).exists(),
        }
    }

    /// The system bus: the machine's own if it runs, else one started here.
    fn system_bus(&mut self) {
        if bus_answers() {
            // Pick up the policy the package installed.
            ok(
                "dbus-send",
                &[
                    "--system",
                    "--type=method_call",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig",
                ],
            );
            return;
        }
        let _ = std::fs::remove_file("/run/dbus/pid");
        let child = Command::new("dbus-daemon")
            .args(["--system", "--nofork", "--nopidfile", "--nosyslog"])
            .env("PATH", twofactor_tests::PATH)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the system bus");
        self.bus = Some(child);
        assert!(
            wait_until(Duration::from_secs(20), bus_answers),
            "no system bus"
        );
    }

    fn start_daemon(&mut self) {
        self.stop_daemon();
        let log = std::fs::File::create(&self.daemon_log).expect("daemon log");
        let child = Command::new("/usr/sbin/twofactord")
            .args(["--foreground", "--log-stderr", "--no-syslog"])
            .env_clear()
            .env("PATH", twofactor_tests::PATH)
            .stderr(log)
            .spawn()
            .expect("start twofactord");
        self.daemon = Some(child);
        assert!(
            wait_until(Duration::from_secs(20), || name_owned(
                "org.twofactor.Daemon1"
            )),
            "twofactord did not take its name:\n{}",
            std::fs::read_to_string(&self.daemon_log).unwrap_or_default()
        );
    }

    fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            proc::signal(c.id(), libc::SIGTERM);
            if proc::wait_timeout(&mut c, Duration::from_secs(15)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
            wait_until(Duration::from_secs(10), || {
                !name_owned("org.twofactor.Daemon1")
            });
        }
    }

    fn login(&self, user: &TestUser, answers: &[&str]) -> PamRun {
        let service = self
            .service
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .expect("service name");
        let mut input = Vec::new();
        for a in answers {
            input.extend_from_slice(a.as_bytes());
            input.push(b'\n');
        }
        PamRun::parse(proc::run(
            Command::new(twofactor_tests::pam_harness_bin())
                .args(["--confdir", "/etc/pam.d", "--service", &service])
                .args(["--user", &user.name])
                .env_clear()
                .env("PATH", twofactor_tests::PATH),
            &input,
            Duration::from_secs(60),
        ))
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop_daemon();
        if !self.had_run_dir {
            let _ = std::fs::remove_file(Path::new(RUN_DIR).join("login"));
            let _ = std::fs::remove_dir(RUN_DIR);
        }
        let _ = std::fs::remove_file(&self.service);
        let installed: Vec<&str> = PACKAGES.into_iter().filter(|p| installed(p)).collect();
        if !installed.is_empty() {
            let mut args = vec!["purge", "-y"];
            args.extend(installed);
            let out = run("apt-get", &args);
            if !out.success() {
                eprintln!("cleanup: apt-get purge failed: {}", out.describe());
            }
        }
        if let Some(mut c) = self.bus.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bus_answers() -> bool {
    Path::new("/run/dbus/system_bus_socket").exists() && name_owned("org.freedesktop.DBus")
}

fn name_owned(name: &str) -> bool {
    run(
        "dbus-send",
        &[
            "--system",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ],
    )
    .stdout()
    .contains("boolean true")
}

/// The lines of a PAM file that are not comments.
fn stack(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A copy of `deb` whose version is `version` (an upgrade of the same
/// build, as dpkg sees it).
fn with_version(deb: &Path, version: &str, dir: &Path) -> PathBuf {
    let tree = dir.join(format!(
        "tree-{}",
        deb.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    ok(
        "dpkg-deb",
        &[
            "-R",
            &deb.display().to_string(),
            &tree.display().to_string(),
        ],
    );
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    let old = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("Version")
        .to_string();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("Version: ") {
                format!("Version: {version}")
            } else {
                l.replace(&format!("(= {old})"), &format!("(= {version})"))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&control, format!("{text}\n")).expect("write control");
    let out = dir.join(format!(
        "{}-{version}.deb",
        deb.file_stem()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    ok(
        "dpkg-deb",
        &[
            "-b",
            &tree.display().to_string(),
            &out.display().to_string(),
        ],
    );
    out
}

#[test]
#[ignore = "installs the Debian packages system-wide; run alone by `make deb-test`"]
fn debian_packages_install_enable_log_in_remove_upgrade_purge() {
    assert!(twofactor_tests::is_root(), "the package test needs root");
    let version = workspace_version();
    let changelog = output(
        "dpkg-parsechangelog",
        &[
            "-l",
            &twofactor_tests::repo_root()
                .join("debian/changelog")
                .display()
                .to_string(),
            "-S",
            "Version",
        ],
    );
    assert_eq!(
        changelog, version,
        "debian/changelog and Cargo.toml disagree"
    );
    let arch = output("dpkg-architecture", &["-qDEB_HOST_ARCH"]);
    let multiarch = output("dpkg-architecture", &["-qDEB_HOST_MULTIARCH"]);
    let debdir = twofactor_tests::target_root().join("deb");
    let debs: Vec<PathBuf> = ["twofactor", "libpam-twofactor"]
        .iter()
        .map(|p| debdir.join(format!("{p}_{version}_{arch}.deb")))
        .collect();
    for d in &debs {
        assert!(d.exists(), "{} is missing: run `make deb`", d.display());
    }
    let deb_args: Vec<String> = debs.iter().map(|d| d.display().to_string()).collect();
    for p in PACKAGES {
        assert!(
            !installed(p),
            "{p} is installed already; this test installs and purges it"
        );
    }

    // lintian: no error and no warning.
    let mut lint = vec!["--fail-on", "error,warning"];
    lint.extend(deb_args.iter().map(String::as_str));
    let out = run("lintian", &lint);
    assert!(out.success(), "lintian: {}", out.describe());

    // The login socket's unit ships, and the maintainer scripts enable and
    // start it with the service, and stop both on remove.
    let twofactor_deb = deb_args[0].as_str();
    let contents = output("dpkg-deb", &["-c", twofactor_deb]);
    assert!(
        contents.contains("./lib/systemd/system/twofactord.socket"),
        "{contents}"
    );
    for (script, wanted) in [
        ("postinst", "twofactord.socket"),
        ("prerm", "twofactord.socket"),
        ("postrm", "twofactord.socket"),
    ] {
        let text = output("dpkg-deb", &["-I", twofactor_deb, script]);
        assert!(
            text.contains(wanted),
            "{script} does not name {wanted}:\n{text}"
        );
    }

    let mut m = Machine::new();
    let pam_before = pam_d();
    let passwd_before = std::fs::read_to_string("/etc/passwd").expect("passwd");
    let group_before = std::fs::read_to_string("/etc/group").expect("group");

    // Install: no PAM file changes; the key and the database are made.
    let mut install = vec!["install", "-y"];
    install.extend(deb_args.iter().map(String::as_str));
    ok("apt-get", &install);
    let mut after = pam_d();
    assert!(
        after
            .remove(Path::new("/etc/pam.d/twofactor-reauth"))
            .is_some(),
        "no /etc/pam.d/twofactor-reauth"
    );
    assert_eq!(
        after, pam_before,
        "installing the packages changed a PAM stack"
    );
    let module = format!("/lib/{multiarch}/security/pam_twofactor.so");
    ok(
        &twofactor_tests::repo_root()
            .join("scripts/check-module")
            .display()
            .to_string(),
        &[&module, "/usr/libexec/twofactor/twofactor-key"],
    );
    for (path, mode) in [
        ("/etc/twofactor/twofactord.key", 0o600),
        ("/var/lib/twofactor/twofactor.db", 0o600),
        ("/var/lib/twofactor", 0o700),
    ] {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{path}");
    }
    for page in [
        "pam_twofactor",
        "twofactord",
        "twofactorctl",
        "twofactord.toml",
    ] {
        assert!(run("man", &["-w", page]).success(), "no man page {page}");
    }
    assert!(Path::new("/usr/share/bash-completion/completions/twofactorctl").exists());

    // Enable the profile: the module after the password, in common-auth and
    // common-account.
    ok("pam-auth-update", &["--enable", "twofactor"]);
    let auth = stack("/etc/pam.d/common-auth");
    let at = auth
        .iter()
        .position(|l| l.ends_with("pam_twofactor.so") && l.starts_with("auth"))
        .unwrap_or_else(|| panic!("common-auth has no pam_twofactor.so: {auth:?}"));
    let unix = auth
        .iter()
        .position(|l| l.contains("pam_unix.so"))
        .expect("pam_unix in common-auth");
    assert!(
        at > unix,
        "the module must come after the password: {auth:?}"
    );
    assert!(
        stack("/etc/pam.d/common-account")
            .iter()
            .any(|l| l.starts_with("account") && l.ends_with("pam_twofactor.so")),
        "common-account has no pam_twofactor.so"
    );

    // A service like Debian's own: common-auth and common-account.
    std::fs::write(
        &m.service,
        "@include common-auth\n@include common-account\n",
    )
    .expect("test PAM service");
    m.system_bus();
    m.start_daemon();
    let user = TestUser::new();
    let ctl = Ctl::new(SYSTEM_BUS);
    let secret = ctl.enroll_app(&user).compact_secret();
    totp::ensure_step_margin(3);
    let right = m.login(
        &user,
        &[user.password(), &totp::code_at_step_offset(&secret, 0)],
    );
    right.assert_result("PAM_SUCCESS");
    assert_eq!(
        right.prompts.last().map(|p| p.text.as_str()),
        Some(CODE_PROMPT)
    );
    m.login(&user, &[user.password(), ""])
        .assert_result("PAM_AUTH_ERR");
    // The profile's stack ends at a wrong password: the module is never
    // reached (no code prompt; the daemon sees no login).
    let wrong = m.login(&user, &[&format!("{}-not", user.password()), "000000"]);
    wrong.assert_result("PAM_AUTH_ERR");
    assert_eq!(
        wrong.prompts.len(),
        1,
        "only the password is asked after a wrong one: {}",
        wrong.describe()
    );
    let status = ctl.status_json(&user);
    assert_eq!(status["methods"], serde_json::json!(["app"]), "{status}");

    // Remove: no stack names the module, the password alone logs in, the
    // enrolled secrets stay.
    m.stop_daemon();
    ok(
        "apt-get",
        &["remove", "-y", "libpam-twofactor", "twofactor"],
    );
    for f in ["/etc/pam.d/common-auth", "/etc/pam.d/common-account"] {
        assert!(
            !std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("pam_twofactor"),
            "{f} still names the module after remove"
        );
    }
    let plain = m.login(&user, &[user.password()]);
    plain.assert_result("PAM_SUCCESS");
    assert_eq!(
        plain.prompts.len(),
        1,
        "only the password: {}",
        plain.describe()
    );
    assert!(
        Path::new("/var/lib/twofactor/twofactor.db").exists(),
        "remove lost the database"
    );
    assert!(
        Path::new("/etc/twofactor/twofactord.key").exists(),
        "remove lost the key"
    );

    // Reinstall, then upgrade to a newer build: the enrolment is still there.
    ok("apt-get", &install);
    m.start_daemon();
    assert_eq!(
        ctl.status_json(&user)["methods"],
        serde_json::json!(["app"])
    );
    let newer = format!("{version}+upgrade1");
    let upgrades: Vec<String> = debs
        .iter()
        .map(|d| with_version(d, &newer, m.dir.path()).display().to_string())
        .collect();
    let mut upgrade = vec!["install", "-y"];
    upgrade.extend(upgrades.iter().map(String::as_str));
    ok("apt-get", &upgrade);
    assert_eq!(
        output("dpkg-query", &["-W", "-f=${Version}", "twofactor"]),
        newer
    );
    m.start_daemon();
    assert_eq!(
        ctl.status_json(&user)["methods"],
        serde_json::json!(["app"])
    );
    m.stop_daemon();

    // Purge: nothing of the packages is left.
    ok("apt-get", &["purge", "-y", "libpam-twofactor", "twofactor"]);
    for gone in [
        "/etc/twofactor",
        "/var/lib/twofactor",
        "/usr/share/pam-configs/twofactor",
        "/etc/pam.d/twofactor-reauth",
        "/usr/sbin/twofactord",
        module.as_str(),
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    std::fs::remove_file(&m.service).expect("remove test service");
    drop(user);
    assert_eq!(pam_d(), pam_before, "/etc/pam.d differs after purge");
    assert_eq!(
        std::fs::read_to_string("/etc/passwd").expect("passwd"),
        passwd_before
    );
    assert_eq!(
        std::fs::read_to_string("/etc/group").expect("group"),
        group_before
    );
}
