//! Where the real twofactord's audit lines go: to the syslog socket it is
//! given (`--syslog-socket`), and to stderr while that socket cannot take
//! them, with one line when that begins and one when it ends. Logins run
//! through the built module under real libpam; the daemon runs without
//! `--log-stderr`, so what its stderr holds is what the fallback wrote.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use twofactor_tests::admin::FakeClock;
use twofactor_tests::daemon::Daemon;
use twofactor_tests::{need_root, totp, wait_until, DaemonConfig, Env, PamService, PrivateBus};
use twofactor_tests::{PamRun, TestUser};

/// A syslog socket of the test's own: a datagram socket bound at a path
/// the daemon's private /tmp does not hide.
struct Receiver {
    sock: UnixDatagram,
    records: Vec<String>,
}

impl Receiver {
    fn bind(path: &Path) -> Receiver {
        let sock = UnixDatagram::bind(path).expect("bind the syslog socket");
        sock.set_nonblocking(true).expect("non-blocking socket");
        Receiver {
            sock,
            records: Vec::new(),
        }
    }

    /// Every record received so far (raw: `<PRI>… twofactord[PID]: LINE`).
    fn records(&mut self) -> Vec<String> {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.records
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.records.clone()
    }

    fn count(&mut self, text: &str) -> usize {
        self.records().iter().filter(|r| r.contains(text)).count()
    }
}

/// A daemon whose syslog socket is `socket` (which may not exist), without
/// `--log-stderr`, on `clock` if any, and an enrolled user.
struct Setup {
    pam: PamService,
    env: Env,
    secret: String,
    user: TestUser,
}

impl Setup {
    fn start(socket: &Path, clock: Option<&FakeClock>) -> Setup {
        let bus = PrivateBus::start();
        let mut daemon = Daemon::prepare(&DaemonConfig::default());
        if let Some(clock) = clock {
            clock.apply(&mut daemon);
        }
        daemon.log_stderr = false;
        daemon.extra_args = vec!["--syslog-socket".into(), socket.display().to_string()];
        if let Err(e) = daemon.try_launch(&bus) {
            panic!("{e}");
        }
        let env = Env { daemon, bus };
        let user = TestUser::new();
        let secret = env.ctl().enroll_app(&user).compact_secret();
        let pam = env.pam("");
        Setup {
            pam,
            env,
            secret,
            user,
        }
    }

    /// A login with a wrong code, from its own address (so that no
    /// per-source wait gets in the way), refused.
    fn failed_login(&self, n: u32) -> PamRun {
        let wrong = totp::wrong_code(&totp::code_now(&self.secret));
        let run = self
            .pam
            .login(&self.user.name)
            .rhost(&format!("192.0.2.{}", n % 250 + 1))
            .answer(&wrong)
            .run();
        run.assert_result("PAM_AUTH_ERR");
        run
    }

    /// The audit line of a failed login of this user, as it starts.
    fn failure_line(&self) -> String {
        format!("login-failure user={} service=", self.user.name)
    }

    fn stderr(&self) -> String {
        self.env.daemon.log()
    }
}

/// A path for the syslog socket (nothing there yet), in a directory of the
/// test's own under /var/tmp, which the directory's guard removes.
fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = twofactor_tests::var_temp_dir("tft-devlog-");
    let path = dir.path().join("log");
    (dir, path)
}

/// How many lines of `text` contain `what`.
fn lines_with(text: &str, what: &str) -> usize {
    text.lines().filter(|l| l.contains(what)).count()
}

/// With the syslog socket missing, the lines of two failed logins are on
/// the daemon's stderr, each with its syslog level as the journal reads it
/// (`<4>` warning), after one `audit-syslog-unreachable` line. When the
/// socket appears, the next try ends the outage with one
/// `audit-syslog-restored` line there that counts the lines stderr took,
/// and lines go to the socket again, no longer to stderr. Before the
/// fallback, these lines went nowhere at all.
#[test]
fn without_the_syslog_socket_lines_go_to_stderr_and_back_once_it_returns() {
    if !need_root!() {
        return;
    }
    let (_dir, socket) = socket_path();
    let clock = FakeClock::new();
    let s = Setup::start(&socket, Some(&clock));
    s.failed_login(1);
    s.failed_login(2);
    let failure = format!("<4>{}", s.failure_line());
    assert!(
        wait_until(Duration::from_secs(10), || lines_with(
            &s.stderr(),
            &failure
        ) == 2),
        "the two failures are not on stderr as {failure:?}:\n{}",
        s.stderr()
    );
    let log = s.stderr();
    let notice = format!(
        "<4>audit-syslog-unreachable socket={} error=",
        socket.display()
    );
    assert_eq!(
        lines_with(&log, "audit-syslog-unreachable"),
        1,
        "the outage is said once:\n{log}"
    );
    assert!(
        log.lines()
            .find(|l| l.starts_with('<'))
            .is_some_and(|l| l.starts_with(&notice)),
        "the notice comes before any line it diverts:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.starts_with("<6>start version=")),
        "the start line is on stderr too:\n{log}"
    );
    assert!(
        !log.contains("twofactord: login-failure"),
        "no --log-stderr copy was asked for:\n{log}"
    );

    // The socket appears. The daemon tries it again when a line comes
    // after a wait (1 s, doubling with each try that fails, at most 60 s):
    // its clock moves 2 min on, and the next failure ends the outage.
    let mut syslog = Receiver::bind(&socket);
    clock.set_offset(120);
    s.failed_login(3);
    assert!(
        wait_until(Duration::from_secs(10), || syslog.count(&s.failure_line())
            == 1),
        "the socket was not used again: {:#?}\n--- stderr ---\n{}",
        syslog.records(),
        s.stderr()
    );
    let records = syslog.records();
    let restored = &records[0];
    assert!(
        restored.starts_with("<85>"),
        "an authpriv notice: {restored}"
    );
    assert!(
        restored.contains(&format!(
            "audit-syslog-restored socket={}",
            socket.display()
        )) && restored.contains(" dropped=0 "),
        "the first record ends the outage: {records:#?}"
    );
    // It counts every line stderr took instead of syslog.
    let log = s.stderr();
    let diverted = log
        .lines()
        .take_while(|l| !l.contains("audit-syslog-restored"))
        .filter(|l| l.starts_with('<') && !l.contains("audit-syslog-unreachable"))
        .count();
    assert!(
        restored.contains(&format!(" stderr_lines={diverted} ")),
        "{restored} does not count the {diverted} lines on stderr:\n{log}"
    );
    assert_eq!(
        lines_with(&log, "audit-syslog-restored"),
        1,
        "stderr hears of the end too, once:\n{log}"
    );

    // From now on the failures go to syslog, not to stderr.
    assert_eq!(
        records.len(),
        2,
        "the notice, then the failure that ended the outage: {records:#?}"
    );
    let on_stderr = lines_with(&log, &s.failure_line());
    s.failed_login(4);
    assert!(
        wait_until(Duration::from_secs(10), || syslog.count(&s.failure_line())
            == 2),
        "the next failure did not reach the socket: {:#?}",
        syslog.records()
    );
    assert_eq!(
        lines_with(&s.stderr(), &s.failure_line()),
        on_stderr,
        "a line went to stderr although syslog took it:\n{}",
        s.stderr()
    );
    assert_eq!(lines_with(&s.stderr(), "audit-syslog-unreachable"), 1);
}

/// With a syslog socket there, the lines of two failed logins reach it as
/// authpriv warnings from `twofactord[PID]`, and none of them, nor any
/// notice, is on stderr.
#[test]
fn with_the_syslog_socket_lines_go_there_and_not_to_stderr() {
    if !need_root!() {
        return;
    }
    let (_dir, socket) = socket_path();
    let mut syslog = Receiver::bind(&socket);
    let s = Setup::start(&socket, None);
    s.failed_login(1);
    s.failed_login(2);
    let failure = s.failure_line();
    assert!(
        wait_until(Duration::from_secs(10), || syslog.count(&failure) == 2),
        "the two failures did not reach the socket: {:#?}\n--- stderr ---\n{}",
        syslog.records(),
        s.stderr()
    );
    let pid = s.env.daemon.pid().expect("the daemon runs");
    let records = syslog.records();
    for record in records.iter().filter(|r| r.contains(&failure)) {
        assert!(
            record.starts_with("<84>")
                && record.contains(&format!(" twofactord[{pid}]: {failure}")),
            "not an authpriv warning of twofactord: {record}"
        );
    }
    assert!(
        records.iter().any(|r| r.contains(": start version=")),
        "{records:#?}"
    );
    let log = s.stderr();
    assert_eq!(lines_with(&log, "login-failure"), 0, "{log}");
    assert_eq!(lines_with(&log, "audit-syslog-"), 0, "{log}");
}
