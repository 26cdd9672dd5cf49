//! Logins over the daemon's own login socket (`Login1` peer to peer, no
//! bus): the built module under real libpam (pam-harness) and real `su`,
//! the real twofactord serving its socket beside a private bus, codes from
//! oathtool.
//!
//! What is proved here: the socket path works end to end and carries the
//! whole login (no `Login1` call crosses the bus); the bus is used when the
//! socket is missing; a socket served by another user is never asked; a
//! stopped daemon behind the socket is refused even with `failmode=safe`;
//! one user's flood of connections, or of idle `su` at the code prompt,
//! never stops another user's login; libdbus's own client (`dbus-send
//! --peer`) is answered as a D-Bus library would answer it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twofactor_tests::bus::BusMonitor;
use twofactor_tests::proc::{self, Finished};
use twofactor_tests::sshd::{logged_in, su_as_user, su_command, Sshd};
use twofactor_tests::{need_root, totp, wait_until, Enrolled, TestUser};

/// The most connections one user may hold (the daemon's
/// `admission::MAX_CONNECTIONS_PER_USER`).
const PER_USER: usize = 32;
/// The most logins in progress charged to one user (the daemon's
/// `sessions::MAX_SESSIONS_PER_USER`).
const PER_USER_LOGINS: usize = 16;
/// The time a connection has to authenticate (`login_socket::AUTH_DEADLINE`):
/// a login that waited behind a flood would take at least this long.
const AUTH_DEADLINE: Duration = Duration::from_secs(5);

/// An enrolled user whose PAM line is a host's: the login socket first.
fn enrolled_on_socket() -> Enrolled {
    let mut s = Enrolled::with_defaults();
    s.pam = s.env.pam_socket("");
    s
}

#[test]
fn a_login_goes_through_the_socket_and_not_the_bus() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    let log = s.env.daemon.wait_log(&format!(
        "login-socket path={}",
        s.env.bus.login_socket().display()
    ));
    assert!(log.contains("from=daemon"), "{log}");
    let monitor = BusMonitor::start(&s.env.bus);
    let code = s.code_now();
    s.login(totp::wrong_code(&code))
        .assert_result("PAM_AUTH_ERR");
    s.login(&code)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    // The same code again: used up, whichever path it came by.
    s.login(&code).assert_result("PAM_AUTH_ERR");
    // A call on the bus, to show the monitor was listening.
    let status = s.env.ctl().status_json(&s.user);
    assert!(status.is_object(), "{status}");
    let seen = monitor.text();
    assert!(
        seen.contains("org.twofactor.Account1"),
        "the monitor saw nothing:\n{seen}"
    );
    assert!(
        !seen.contains("org.twofactor.Login1"),
        "a login crossed the bus:\n{seen}"
    );
    // The account phase told the daemon without waiting for its reply
    // (AcceptReport): the line comes when the daemon has read it.
    let log = s.env.daemon.wait_log("login-success");
    assert!(log.contains("login-success"), "{log}");
}

/// Real sshd and the OpenSSH client: the module in sshd asks the daemon
/// on its socket; the login is charged to the client's address.
#[test]
fn ssh_logs_in_through_the_socket() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    let args = format!(
        "socket={} bus={}",
        s.env.bus.login_socket().display(),
        s.env.bus.plain_address()
    );
    let sshd = Sshd::start(&args);
    let monitor = BusMonitor::start(&s.env.bus);
    let code = s.code_now();
    let wrong = sshd.ssh(&s.user, s.user.password(), &totp::wrong_code(&code));
    assert!(!logged_in(&wrong), "{}", wrong.describe());
    let right = sshd.ssh(&s.user, s.user.password(), &code);
    assert!(
        logged_in(&right),
        "{}\nsshd log:\n{}\ndaemon log:\n{}",
        right.describe(),
        sshd.log(),
        s.env.daemon.log()
    );
    let replay = sshd.ssh(&s.user, s.user.password(), &code);
    assert!(!logged_in(&replay), "{}", replay.describe());
    let log = s.env.daemon.wait_log("login-success");
    assert!(
        log.contains(&format!(
            "login-success user={} service={} rhost=127.0.0.1",
            s.user.name, sshd.service
        )),
        "{log}"
    );
    assert!(
        !monitor.text().contains("org.twofactor.Login1"),
        "a login crossed the bus:\n{}",
        monitor.text()
    );
}

#[test]
fn without_the_socket_the_bus_is_used() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let missing = s.env.bus.login_socket().with_file_name("no-such-socket");
    let pam = s.env.pam(&format!("socket={}", missing.display()));
    let monitor = BusMonitor::start(&s.env.bus);
    let code = s.code_now();
    pam.login(&s.user.name)
        .answer(&code)
        .run()
        .assert_result("PAM_SUCCESS");
    let seen = monitor.text();
    assert!(
        seen.contains("member=Begin") && seen.contains("member=Commit"),
        "the login did not go over the bus:\n{seen}"
    );
}

/// A listener run by `user` at a socket in a directory of theirs: it
/// accepts one connection and writes `accepted N` to `received` (N: the
/// bytes it was sent within 3 s).
fn fake_daemon(user: &TestUser, dir: &std::path::Path) -> Child {
    let script = r#"
import socket, sys, os
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(8)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(3)
n = 0
try:
    while True:
        b = c.recv(4096)
        if not b:
            break
        n += len(b)
except socket.timeout:
    pass
open(out, "w").write("accepted %d" % n)
"#;
    let login = dir.join("login").display().to_string();
    let received = dir.join("received").display().to_string();
    python_as(user, script, &[&login, &received], "listening")
}

/// `script` run by python3 as `user` with `args`, its stdin a pipe it may
/// wait on; returns once it has printed `ready` (its first line).
fn python_as(user: &TestUser, script: &str, args: &[&str], ready: &str) -> Child {
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .env("PATH", twofactor_tests::PATH)
        .args(["python3", "-c", script])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), ready);
    child
}

#[test]
fn a_socket_served_by_another_user_is_never_asked() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let faker = TestUser::with_home_under(std::path::Path::new("/var/tmp"));
    for failmode in ["secure", "safe"] {
        let dir = twofactor_tests::temp_dir("tft-fake-socket-");
        faker.chown(dir.path());
        let mut fake = fake_daemon(&faker, dir.path());
        let pam = s.env.pam(&format!(
            "socket={} failmode={failmode}",
            dir.path().join("login").display()
        ));
        let run = pam.login(&s.user.name).answer(s.code_now()).run();
        let _ = fake.wait();
        let received = std::fs::read_to_string(dir.path().join("received")).unwrap_or_default();
        assert_eq!(
            received,
            "accepted 0",
            "the module connected and sent nothing (failmode={failmode}): {}",
            run.describe()
        );
        assert_ne!(
            run.result,
            "PAM_SUCCESS",
            "failmode={failmode}: {}",
            run.describe()
        );
        assert!(
            run.prompts.is_empty(),
            "a prompt from a fake daemon: {}",
            run.describe()
        );
    }
}

#[test]
fn a_stopped_daemon_behind_the_socket_is_refused_even_with_failmode_safe() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let pam = s.env.pam_socket("failmode=safe timeout=2");
    let pid = s.env.daemon.pid().expect("daemon pid");
    proc::signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let run = pam.login(&s.user.name).answer(s.code_now()).run();
    let took = started.elapsed();
    proc::signal(pid, libc::SIGCONT);
    run.assert_result("PAM_AUTHINFO_UNAVAIL");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Running again, the same PAM line lets the right code in.
    pam.login(&s.user.name)
        .answer(s.code_now())
        .run()
        .assert_result("PAM_SUCCESS");
}

/// A plain login's account phase on the socket tells the daemon without
/// waiting for its reply (AcceptReport, `Commit` with NO_REPLY_EXPECTED):
/// with the daemon stopped between the phases and a module timeout of a
/// minute, `pam_acct_mgmt` still returns PAM_SUCCESS at once; the daemon,
/// running again, reads the call and logs `login-success`. The same held
/// login through the bus waits for the reply: its account phase ends only
/// once the daemon runs again.
#[test]
fn the_account_phase_of_a_plain_login_does_not_wait_for_the_daemon_on_the_socket() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&twofactor_tests::DaemonConfig::default());
    let pid = s.env.daemon.pid().expect("daemon pid");
    let codes = s.codes();
    let code = codes.fresh();
    let pam = s.env.pam_socket("timeout=60");
    let mut live = pam.login(&s.user.name).hold_account_phase().spawn();
    assert_eq!(live.expect_prompt(), twofactor_tests::CODE_PROMPT);
    live.answer(&code);
    assert_eq!(live.expect_auth(), "PAM_SUCCESS");
    proc::signal(pid, libc::SIGSTOP);
    let account = live.release_account(Duration::from_secs(20));
    let log_while_stopped = s.env.daemon.log();
    proc::signal(pid, libc::SIGCONT);
    assert_eq!(account, "PAM_SUCCESS");
    live.finish().assert_result("PAM_SUCCESS");
    assert!(
        !log_while_stopped.contains("login-success"),
        "{log_while_stopped}"
    );
    s.env.daemon.wait_log("login-success");

    // Through the bus: the reply is waited for.
    let code = codes.fresh();
    let mut live = s.pam.login(&s.user.name).hold_account_phase().spawn();
    assert_eq!(live.expect_prompt(), twofactor_tests::CODE_PROMPT);
    live.answer(&code);
    assert_eq!(live.expect_auth(), "PAM_SUCCESS");
    proc::signal(pid, libc::SIGSTOP);
    live.p.write(b"\n");
    let waited = live
        .p
        .line_within(Duration::from_secs(2), |l| l.contains("\"account\""));
    proc::signal(pid, libc::SIGCONT);
    assert!(waited.is_none(), "the bus path did not wait: {waited:?}");
    live.finish().assert_result("PAM_SUCCESS");
}

/// Connections held open by `user` (python3): `silent` that only
/// connect, `half` that start the authentication and stop; returns once
/// all are connected (the process holds them until its stdin closes).
fn flood(user: &TestUser, socket: &std::path::Path, silent: usize, half: usize) -> Child {
    let script = r#"
import socket, sys
path, silent, half = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(silent + half):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    if i >= silent:
        try:
            c.sendall(b"\0AUTH EXTERNAL\r\n")
        except OSError:
            pass  # closed by the daemon: over the quota
    held.append(c)
print("held", len(held), flush=True)
sys.stdin.read()
"#;
    python_as(
        user,
        script,
        &[
            &socket.display().to_string(),
            &silent.to_string(),
            &half.to_string(),
        ],
        &format!("held {}", silent + half),
    )
}

#[test]
fn one_users_flood_of_connections_does_not_stop_anothers_login() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    let flooder = TestUser::with_home_under(std::path::Path::new("/var/tmp"));
    let socket = s.env.bus.login_socket();
    s.env.daemon.wait_log("login-socket");
    // Its whole quota, silent or half-authenticated, and more.
    let mut held = flood(&flooder, &socket, PER_USER / 2, PER_USER / 2 + 8);
    let refused = format!(
        "connection-refused uid={u} for={u} why=per-user-limit",
        u = flooder.uid
    );
    assert!(
        wait_until(Duration::from_secs(10), || s
            .env
            .daemon
            .log()
            .matches(&refused)
            .count()
            == 8),
        "the connections over the quota were not refused:\n{}",
        s.env.daemon.log()
    );
    let started = Instant::now();
    let run = s.login(s.code_now());
    let took = started.elapsed();
    run.assert_result("PAM_SUCCESS");
    assert!(
        took < AUTH_DEADLINE,
        "the login waited behind the flood ({took:?})"
    );
    let _ = held.kill();
    let _ = held.wait();
    // Its connections given back, the flooder may connect again.
    let mut again = flood(&flooder, &socket, 1, 0);
    let _ = again.kill();
    let _ = again.wait();
    assert_eq!(s.env.daemon.log().matches(&refused).count(), 8);
}

#[test]
fn three_hundred_idle_su_by_one_user_do_not_stop_anothers_login() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    let args = format!(
        "socket={} bus={}",
        s.env.bus.login_socket().display(),
        s.env.bus.plain_address()
    );
    // The flooder has a method too: each su stops at the code prompt.
    let flooder = TestUser::new();
    let enrolled = s.env.ctl().enroll_app(&flooder);
    assert!(!enrolled.compact_secret().is_empty());
    let mut waiting: Vec<(Child, tempfile::TempDir)> = Vec::new();
    for _ in 0..300 {
        let (mut cmd, dir) = su_command(&flooder, &args, None, &[]);
        let output = std::fs::File::create(dir.path().join("output")).expect("su output file");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .expect("start su");
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(format!("{}\n", flooder.password()).as_bytes());
        }
        waiting.push((child, dir));
    }
    // Every su past the user's quota of logins in progress is turned away
    // at once (charged to the user who ran it, though su connects as
    // root); the others wait at the prompt.
    let mut ended = 0;
    let all_in = wait_until(Duration::from_secs(120), || {
        ended = waiting
            .iter_mut()
            .filter_map(|(child, _)| child.try_wait().ok().flatten())
            .count();
        ended >= 300 - PER_USER_LOGINS
    });
    let said = |i: usize| {
        waiting
            .get(i)
            .and_then(|(_, dir)| std::fs::read_to_string(dir.path().join("output")).ok())
            .unwrap_or_default()
    };
    assert!(
        all_in && ended == 300 - PER_USER_LOGINS,
        "{ended} of 300 su ended, {} expected\nThe first su said: {}\nThe last su said: {}\n{}",
        300 - PER_USER_LOGINS,
        said(0),
        said(299),
        s.env.daemon.log()
    );
    // Another user's login (root at the console, through the harness),
    // and a third user's own su, get in with the right code.
    let started = Instant::now();
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
    assert!(started.elapsed() < AUTH_DEADLINE, "{:?}", started.elapsed());
    let third = TestUser::new();
    let secret = s.env.ctl().enroll_app(&third).compact_secret();
    totp::ensure_step_margin(3);
    let code = totp::code_now(&secret);
    let su = su_as_user(&third, &args, None, &[], third.password(), &code);
    assert!(
        su.success() && su.stdout().contains("SU-OK"),
        "another user's su: {}",
        su.describe()
    );
    for (child, _) in &mut waiting {
        let _ = child.kill();
    }
    for (mut child, dir) in waiting {
        let _ = child.wait();
        drop(dir);
    }
}

/// A message announced at 100 MiB (under the D-Bus limit of 128 MiB, far
/// over the login socket's 64 KiB) closes the connection when its 16-byte
/// header is read: the daemon never makes room for it. (zbus alone would
/// make room for all of it and wait for the body: "open".)
#[test]
fn an_oversized_message_closes_the_connection_unread() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    s.env.daemon.wait_log("login-socket");
    let script = r#"
import socket, struct, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
c.sendall(b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n")
c.sendall(b"l\x01\x00\x01" + struct.pack("<III", 100 << 20, 1, 0))
c.settimeout(10)
got = b""
try:
    while True:
        b = c.recv(4096)
        if not b:
            break
        got += b
    print("closed", flush=True)
except socket.timeout:
    print("open", flush=True)
"#;
    let out = Command::new("python3")
        .env("PATH", twofactor_tests::PATH)
        .args(["-c", script])
        .arg(s.env.bus.login_socket())
        .output()
        .expect("python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.trim(), "closed", "{out:?}");
    // The daemon still serves logins.
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}

/// `dbus-send --peer` on the login socket, as `as_user` (uid, gid) or root.
fn dbus_send_peer(
    socket: &std::path::Path,
    as_user: Option<(u32, u32)>,
    method: &str,
    args: &[&str],
) -> Finished {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("dbus-send");
    cmd.env_clear()
        .env("PATH", twofactor_tests::PATH)
        .arg(format!("--peer=unix:path={}", socket.display()))
        .arg("--print-reply")
        .arg("--reply-timeout=10000")
        .arg("--dest=org.twofactor.Daemon1")
        .arg("/org/twofactor/Daemon1")
        .arg(method)
        .args(args);
    if let Some((uid, gid)) = as_user {
        cmd.uid(uid).gid(gid);
    }
    proc::run(&mut cmd, b"", Duration::from_secs(20))
}

/// The daemon writes the login socket's replies itself (no D-Bus library):
/// libdbus's client, which authenticates, frames and reads the way every
/// other D-Bus program does, gets replies and errors it can read, with
/// the standard error names for what is not served, as root and as a user.
#[test]
fn libdbus_is_answered_on_the_socket_as_by_a_dbus_library() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    s.env.daemon.wait_log("login-socket");
    let socket = s.env.bus.login_socket();
    let user = Some((s.user.uid, s.user.gid));
    for who in [None, user] {
        let ping = dbus_send_peer(&socket, who, "org.freedesktop.DBus.Peer.Ping", &[]);
        assert!(
            ping.status.success() && ping.stdout().contains("method return"),
            "{}",
            ping.describe()
        );
        let cancel = dbus_send_peer(
            &socket,
            who,
            "org.twofactor.Login1.Cancel",
            &["string:no-such-session"],
        );
        assert!(
            cancel.stderr().contains("org.twofactor.Error.NotFound"),
            "{}",
            cancel.describe()
        );
        let answer = dbus_send_peer(
            &socket,
            who,
            "org.twofactor.Login1.Answer",
            &["string:no-such-session", "array:byte:49,50,51"],
        );
        assert!(
            answer.stderr().contains("org.twofactor.Error.NotFound"),
            "{}",
            answer.describe()
        );
        // Arguments of the wrong types, another interface, another method.
        let wrong = dbus_send_peer(&socket, who, "org.twofactor.Login1.Cancel", &["uint32:7"]);
        assert!(
            wrong
                .stderr()
                .contains("org.freedesktop.DBus.Error.InvalidArgs"),
            "{}",
            wrong.describe()
        );
        let status = dbus_send_peer(&socket, who, "org.twofactor.Account1.Status", &[]);
        assert!(
            status
                .stderr()
                .contains("org.freedesktop.DBus.Error.UnknownMethod"),
            "{}",
            status.describe()
        );
        let other = dbus_send_peer(&socket, who, "org.twofactor.Login1.Status", &[]);
        assert!(
            other
                .stderr()
                .contains("org.freedesktop.DBus.Error.UnknownMethod"),
            "{}",
            other.describe()
        );
    }
    // Still serving logins, and the audit names no connection refused.
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
    assert!(!s.env.daemon.log().contains("connection-refused"));
}

/// Starts `daemon` on `bus`, where another already owns the name, and
/// waits for it to exit on its own, unsuccessfully; what it logged.
fn refused_start(
    daemon: &mut twofactor_tests::Daemon,
    bus: &twofactor_tests::PrivateBus,
) -> String {
    // try_launch returns once the name has an owner: here, at once.
    if let Err(said) = daemon.try_launch(bus) {
        return said;
    }
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the second daemon still runs or exited 0 ({status:?}):\n{}",
        daemon.log()
    );
    daemon.log()
}

/// A second twofactord started on the same bus (an administrator trying
/// one in the foreground while the service runs) takes neither the login
/// socket nor the bus name: it exits saying why, and logins keep going to
/// the first. (zbus's defaults let a second daemon take the
/// name, and the socket file used to be replaced.)
#[test]
fn a_second_daemon_takes_neither_the_socket_nor_the_bus_name() {
    if !need_root!() {
        return;
    }
    let s = enrolled_on_socket();
    s.env.daemon.wait_log("login-socket");
    let config = twofactor_tests::DaemonConfig::default();
    // The same socket path: refused before the bus is asked.
    let mut second = twofactor_tests::Daemon::prepare(&config);
    let said = refused_start(&mut second, &s.env.bus);
    assert!(said.contains("served by another process"), "{said}");
    // Its own socket path: refused at the bus name.
    let mut third = twofactor_tests::Daemon::prepare(&config);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    third.login_socket = Some(elsewhere.path().join("run").join("login"));
    let said = refused_start(&mut third, &s.env.bus);
    assert!(said.contains("owned by another process"), "{said}");
    // The first still owns both: its socket file is there and served, the
    // name is its, and a login goes through.
    assert!(std::os::unix::net::UnixStream::connect(s.env.bus.login_socket()).is_ok());
    assert!(s.env.bus.has_owner("org.twofactor.Daemon1"));
    let code = s.code_now();
    s.login(&code).assert_result("PAM_SUCCESS");
    // The account phase told the daemon without waiting for its reply
    // (AcceptReport): the line comes when the daemon has read it.
    let log = s.env.daemon.wait_log("login-success");
    assert!(log.contains("login-success"), "{log}");
}
