//! A fleet without shared secrets: two verifiers share one PostgreSQL
//! database and the key file; two hosts, each on its own private bus with
//! the real module under libpam, hold neither and ask the verifiers over
//! HTTPS with mutual TLS (certificates of a fleet CA made by `openssl`,
//! hosts registered with `twofactord --add-host`). Codes come from
//! oathtool; enrolment happens at a host's login prompt (the mandatory
//! policy, set at a verifier).
//!
//! Drop order everywhere: the PAM services, the hosts, the verifiers, the
//! PostgreSQL server, the CA, the user.

use std::time::{Duration, Instant};

use twofactor_tests::conversation::{self, AtLogin};
use twofactor_tests::daemon::key_file_for;
use twofactor_tests::fleet_ca::{FleetCa, Issued};
use twofactor_tests::pam::{PamRun, PamService};
use twofactor_tests::smtp::free_port;
use twofactor_tests::totp;
use twofactor_tests::{
    admin, need_postgres, need_root, Daemon, DaemonConfig, Env, PgServer, PrivateBus, TestUser,
    INVALID_CODE,
};

/// What the module shows when no verifier answers.
const UNAVAILABLE: &str = "Two-factor authentication is unavailable; login refused.";

/// The hosts' `[fleet] timeout_seconds`.
const TIMEOUT_SECONDS: u32 = 3;

struct Fleet {
    pam_a: PamService,
    pam_b: PamService,
    host_b: Env,
    host_a: Env,
    v2: Env,
    v1: Env,
    _pg: PgServer,
    ca: FleetCa,
    ports: [u16; 2],
    user: TestUser,
}

/// A host of the fleet: its own bus, a daemon with `[fleet] role =
/// "host"` and no `--init` (no key file, no database).
fn start_host(ca: &FleetCa, cert: &Issued, ports: &[u16]) -> Env {
    let bus = PrivateBus::start();
    let mut daemon = Daemon::prepare_without_init(&DaemonConfig {
        extra: ca.host_toml(cert, ports, TIMEOUT_SECONDS),
        ..DaemonConfig::default()
    });
    if let Err(e) = daemon.try_launch(&bus) {
        panic!("a fleet host did not start: {e}");
    }
    Env { daemon, bus }
}

impl Fleet {
    fn start() -> Fleet {
        let user = TestUser::new();
        let ca = FleetCa::new();
        let pg = PgServer::start();
        let db = pg.create_database();
        let ports = [free_port(), free_port()];
        // Administration is taken from host B only.
        let verifier_config = |n: usize| DaemonConfig {
            extra: format!(
                "{}\n{}admin_hosts = [\"host-b\"]\n",
                pg.store_toml(&db, true),
                ca.verifier_toml(&ca.verifier(&format!("verifier{n}")), ports[n])
            ),
            ..DaemonConfig::default()
        };
        let v1 = Env::start(&verifier_config(0));
        let v2 = Env::start_sharing(&verifier_config(1), &v1);
        let (cert_a, cert_b) = (ca.host("host-a"), ca.host("host-b"));
        for (name, cert) in [("host-a", &cert_a), ("host-b", &cert_b)] {
            let added =
                v1.daemon
                    .run_args(&["--add-host", name, cert.cert.to_str().unwrap_or_default()]);
            assert!(added.success(), "--add-host {name}: {}", added.describe());
        }
        let host_a = start_host(&ca, &cert_a, &ports);
        let host_b = start_host(&ca, &cert_b, &ports);
        admin::set_policy(&v1, true, &[]);
        Fleet {
            pam_a: host_a.pam(""),
            pam_b: host_b.pam(""),
            host_b,
            host_a,
            v2,
            v1,
            _pg: pg,
            ca,
            ports,
            user,
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- verifier 1 ---\n{}\n--- verifier 2 ---\n{}\n--- host A ---\n{}\n--- host B ---\n{}",
            self.v1.daemon.log(),
            self.v2.daemon.log(),
            self.host_a.daemon.log(),
            self.host_b.daemon.log()
        )
    }

    /// Both verifiers' logs, one after the other.
    fn verifier_logs(&self) -> String {
        format!("{}{}", self.v1.daemon.log(), self.v2.daemon.log())
    }

    fn login(&self, pam: &PamService, answer: &str) -> PamRun {
        let mut run = pam.login(&self.user.name).answer(answer).run();
        run.context = self.logs();
        run
    }

    /// Enrolment at host A's prompt (the policy applies).
    fn enrol_on_a(&self) -> AtLogin {
        conversation::enrol_at_login(&self.pam_a.login(&self.user.name), &[])
    }
}

fn assert_refused_unavailable(run: &PamRun) {
    run.assert_result("PAM_AUTH_ERR")
        .assert_no_prompt()
        .assert_errors(&[UNAVAILABLE]);
}

/// Enrolled at host A's prompt, the user logs in on host B; every code is
/// used once in the whole fleet, also when forty logins race with one
/// code over both hosts; the hosts hold no key file and no database, and
/// log no secret.
#[test]
fn enrol_on_one_host_log_in_on_the_other_and_every_code_is_used_once() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start();
    let at = f.enrol_on_a();
    let secret = at.shown.secret.clone();

    // Forty logins over both hosts with the code of the current step
    // (the enrolment used the step before): exactly one gets in.
    totp::ensure_step_margin(10);
    let code = totp::code_now(&secret);
    let logins = (0..40)
        .map(|i| {
            let pam = if i % 2 == 0 { &f.pam_a } else { &f.pam_b };
            pam.login(&f.user.name).spawn()
        })
        .collect();
    let runs = conversation::answer_together(logins, &code);
    let won: Vec<usize> = (0..runs.len())
        .filter(|i| runs[*i].result == "PAM_SUCCESS")
        .collect();
    assert_eq!(
        won.len(),
        1,
        "logins let in by one code, of 40 over two hosts: {won:?}\n{}",
        f.logs()
    );
    for run in &runs {
        if run.result != "PAM_SUCCESS" {
            run.assert_result("PAM_AUTH_ERR")
                .assert_errors(&[INVALID_CODE]);
        }
    }
    // The same code again, on either host: refused.
    f.login(&f.pam_b, &code)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);

    // A backup code used on A is refused on B; another lets in on B.
    let backup = &at.backup_codes;
    f.login(&f.pam_a, &backup[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    f.login(&f.pam_b, &backup[0])
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    f.login(&f.pam_b, &backup[1])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);

    // The verifiers decided every login (the enrolment, the race's
    // winner, two backup codes) and say which host each was on; the
    // hosts decided none.
    let verifiers = f.verifier_logs();
    let success = format!("login-success user={} ", f.user.name);
    assert_eq!(verifiers.matches(&success).count(), 4, "{}", f.logs());
    for host in [&f.host_a, &f.host_b] {
        assert!(!host.daemon.log().contains("login-success"), "{}", f.logs());
    }
    for host in ["host-a", "host-b"] {
        assert!(
            verifiers.contains(&format!("login-success user={} ", f.user.name))
                && verifiers.contains(&format!("on_host={host}")),
            "no login-success on {host} at the verifiers:\n{}",
            f.logs()
        );
    }
    // twofactorctl on a host shows the account the verifiers keep.
    let status = f.host_a.ctl().status_json(&f.user);
    assert_eq!(status["methods"], serde_json::json!(["app"]), "{status}");
    // The hosts hold nothing and log nothing secret.
    for host in [&f.host_a, &f.host_b] {
        let state = host.daemon.state_dir();
        let held: Vec<_> = std::fs::read_dir(&state)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(held.is_empty(), "a host's state directory holds {held:?}");
        assert!(
            !key_file_for(&state).exists(),
            "a host has a key file: {}",
            key_file_for(&state).display()
        );
        let log = host.daemon.log();
        assert!(!log.contains(&secret), "a host logged the secret:\n{log}");
        for code in backup {
            assert!(
                !log.contains(code.as_str()),
                "a host logged a backup code:\n{log}"
            );
        }
    }
}

/// What a host's root can reach (the verifiers' HTTPS face, with the
/// host's own certificate) yields steps and refusals, never a secret, a
/// hash or a device key; a host whose certificate is not registered gets
/// nothing; a revoked host is refused at its next login, at once, while
/// the other host goes on.
#[test]
fn a_host_reaches_no_secret_and_a_revoked_host_is_refused_at_once() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start();
    let at = f.enrol_on_a();
    let secret = at.shown.secret.clone();

    // Host A's root, with host A's certificate, tries every path.
    let cert_a = f.ca.host("host-a-again");
    let probe = |cert: &Issued, path: &str, body: &str| -> String {
        let out = twofactor_tests::proc::run(
            std::process::Command::new("curl")
                .args(["-sS", "--http2", "--max-time", "10", "-X", "POST"])
                .arg("--cacert")
                .arg(&f.ca.ca)
                .arg("--cert")
                .arg(&cert.cert)
                .arg("--key")
                .arg(&cert.key)
                .args([
                    "-H",
                    "content-type: application/json",
                    "--data-binary",
                    body,
                ])
                .arg(format!("https://127.0.0.1:{}{path}", f.ports[0]))
                .args(["-w", "\nHTTP %{http_code}"]),
            b"",
            Duration::from_secs(20),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // Not registered: refused before anything is read.
    let refused = probe(&cert_a, "/v1/login/begin", "{}");
    assert!(refused.contains("HTTP 403"), "{refused}");
    let added = f.v1.daemon.run_args(&[
        "--add-host",
        "host-a-again",
        cert_a.cert.to_str().unwrap_or_default(),
    ]);
    assert!(added.success(), "{}", added.describe());
    let user = &f.user.name;
    let caller = r#"{"uid":0,"connection":":probe","invoker":null}"#;
    let begin = format!(
        r#"{{"caller":{caller},"origin":{{"user":"{user}","service":"login","rhost":"","tty":"tty1","ssh_auth_info":"","security_keys":true}},"facts":{{"account":["{user}",{uid}],"groups":{{"Ok":[]}},"shadow":{{"Ok":null}},"touch_required":null}}}}"#,
        uid = f.user.uid
    );
    let began = probe(&cert_a, "/v1/login/begin", &begin);
    assert!(
        began.contains("HTTP 200") && began.contains("\"session\""),
        "{began}"
    );
    let session = began
        .split("\"session\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    let call =
        |answer: &str| format!(r#"{{"caller":{caller},"session":"{session}","answer":{answer}}}"#);
    let mut replies = vec![began.clone()];
    for (path, body) in [
        ("/v1/login/answer", call("[]")),
        ("/v1/login/answer", call("[49,50,51,52,53,54]")),
        ("/v1/login/commit", call("[]")),
        ("/v1/login/cancel", call("[]")),
        ("/v1/login/closed", r#"{"connection":":probe"}"#.to_string()),
        ("/v1/login/begin", "not json".to_string()),
        ("/v1/secrets", "{}".to_string()),
        (
            "/v1/login/answer",
            format!("{{\"caller\":{caller},\"session\":\"../../\",\"answer\":[]}}"),
        ),
    ] {
        replies.push(probe(&cert_a, path, &body));
    }
    // Account1 and Admin1 as the host's root may send them: for the user,
    // by name, with no second factor; a forged password turn.
    let named = format!(
        r#"{{"uid":{uid},"connection":":probe","invoker":null,"name":"{user}"}}"#,
        uid = f.user.uid
    );
    let account = |call: &str| format!(r#"{{"caller":{named},"call":{call}}}"#);
    let status = probe(&cert_a, "/v1/account", &account(r#""Status""#));
    assert!(
        status.contains("HTTP 200") && status.contains("\"app\""),
        "{status}"
    );
    replies.push(status);
    for call in [
        r#"{"EnrollApp":{"password":null,"code":[]}}"#,
        r#"{"NewBackupCodes":{"password":null,"code":[]}}"#,
        r#"{"RemoveDevices":{"id":"all","proof":{"password":null,"code":[]}}}"#,
    ] {
        let refused = probe(&cert_a, "/v1/account", &account(call));
        assert!(
            refused.contains("HTTP 200") && refused.contains("BadCode"),
            "a change without the account's second factor: {refused}"
        );
        replies.push(refused);
    }
    // A password is never taken from a host.
    let with_password = probe(
        &cert_a,
        "/v1/account",
        &account(r#"{"EnrollApp":{"password":[104,105],"code":[]}}"#),
    );
    assert!(with_password.contains("HTTP 400"), "{with_password}");
    // Not an administration host: refused whoever it names.
    let users = probe(
        &cert_a,
        "/v1/admin",
        &format!(r#"{{"caller":{caller},"call":"ListUsers"}}"#),
    );
    assert!(users.contains("PermissionDenied"), "{users}");
    replies.push(users);
    let settled = probe(
        &cert_a,
        "/v1/password/settle",
        &format!(
            r#"{{"user":"{user}","action":"disable","ticket":"00112233445566778899aabbccddeeff","right":true}}"#
        ),
    );
    assert!(settled.contains("NotFound"), "{settled}");
    let everything = replies.join("\n");
    assert!(
        !everything.contains(&secret),
        "a reply carried the secret:\n{everything}"
    );
    for code in &at.backup_codes {
        assert!(
            !everything.contains(code.as_str()),
            "a reply carried a backup code:\n{everything}"
        );
    }
    for hint in ["$argon2", "otpauth", "BEGIN"] {
        assert!(
            !everything.contains(hint),
            "a reply carried {hint}:\n{everything}"
        );
    }

    // Revoking host B: its next login is refused, at once, by every
    // verifier; host A goes on.
    let removed = f.v2.daemon.run_args(&["--remove-host", "host-b"]);
    assert!(removed.success(), "{}", removed.describe());
    assert_refused_unavailable(&f.login(&f.pam_b, &at.backup_codes[0]));
    f.login(&f.pam_a, &at.backup_codes[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    let verifiers = f.verifier_logs();
    assert!(
        verifiers.contains("is not a registered host"),
        "the verifiers did not log the refusal:\n{}",
        f.logs()
    );
    let listed = f.v1.daemon.run_args(&["--hosts"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("host-a") && !listed.contains("host-b\t"),
        "{listed}"
    );
}

/// `twofactorctl` on a host works as on a machine that decides alone, and
/// every call goes to the verifiers: the password is checked by the
/// host's PAM and never leaves it, its attempts counted at the verifiers;
/// a change still needs the account's second factor, checked there;
/// administration only from a host the verifiers name (`admin_hosts`).
#[test]
fn twofactorctl_on_a_host_is_answered_by_the_verifiers() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start();
    let (password, name) = (f.user.password().to_string(), f.user.name.clone());
    // Enrolment with twofactorctl on host A.
    let e = f.host_a.ctl().enroll_app(&f.user);
    let codes = e.backup_codes();
    assert_eq!(codes.len(), 10, "{}", e.output.describe());
    // Host B shows the account; a login there takes that app's codes.
    let status = f.host_b.ctl().status_json(&f.user);
    assert_eq!(status["methods"], serde_json::json!(["app"]), "{status}");
    f.login(&f.pam_b, &codes[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);

    // A wrong password on host B: refused there, counted and audited at
    // the verifiers.
    let backup_codes = |typed: String| {
        f.host_b
            .ctl()
            .run(&f.user, &["backup-codes"], typed.as_bytes())
    };
    let out = backup_codes(format!("{password}x\n{}\n", codes[1]));
    assert!(
        !out.success() && out.stderr().contains("wrong password"),
        "{}",
        out.describe()
    );
    assert!(
        f.verifier_logs()
            .contains(&format!("reauth-failure user={name}")),
        "{}",
        f.logs()
    );
    assert_eq!(
        admin::user_json(&f.v1, &name)["failures"],
        1,
        "the wrong password was not counted at the verifiers"
    );
    // The right password and a wrong code: refused at the verifiers.
    let out = backup_codes(format!("{password}\n000000\n"));
    assert!(!out.success(), "{}", out.describe());
    // The right password and a backup code: a new set, made on host B.
    let out = backup_codes(format!("{password}\n{}\n", codes[1]));
    let fresh = conversation::backup_codes_in(&out.stdout());
    assert!(out.success() && fresh.len() == 10, "{}", out.describe());
    // The old set is void everywhere; the new one lets in on host A.
    f.login(&f.pam_a, &codes[2]).assert_result("PAM_AUTH_ERR");
    f.login(&f.pam_a, &fresh[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    assert!(
        f.verifier_logs()
            .contains("fleet-request host=host-b path=/v1/account"),
        "{}",
        f.logs()
    );
    // The password never left the hosts; the hosts logged no secret.
    let logs = f.logs();
    assert!(!logs.contains(&password), "a password in a log");
    for host in [&f.host_a, &f.host_b] {
        let log = host.daemon.log();
        assert!(
            !log.contains(&e.compact_secret()),
            "the secret in a host's log"
        );
        assert!(!log.contains(&fresh[1]), "a backup code in a host's log");
    }

    // Administration: not from host A; root on host B acts as the fleet's
    // root.
    let refused = admin::root_ctl(&f.host_a, &["admin", "users"], b"");
    assert!(
        !refused.success() && refused.stderr().contains("not administered from host-a"),
        "{}",
        refused.describe()
    );
    let user = admin::root_ctl(&f.host_b, &["admin", "user", &name, "--json"], b"");
    assert!(user.success(), "{}\n{}", user.describe(), f.logs());
    let reset = admin::root_ctl(&f.host_b, &["admin", "reset", &name, "--yes"], b"");
    assert!(reset.success(), "{}\n{}", reset.describe(), f.logs());
    assert!(
        f.verifier_logs().contains("by=root@host-b"),
        "the reset was not audited with its host:\n{}",
        f.logs()
    );
    let status = f.host_a.ctl().status_json(&f.user);
    assert_eq!(status["methods"], serde_json::json!([]), "{status}");
}

/// Killing a verifier mid-run costs only the login in flight on it; with
/// every verifier down (killed, or hung) the hosts refuse within their
/// timeout and recover by themselves when a verifier is back.
#[test]
fn verifiers_killed_hung_and_back() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let mut f = Fleet::start();
    let at = f.enrol_on_a();
    let codes = &at.backup_codes;

    // A login waits at the prompt, its session at verifier 1 (the first
    // listed): verifier 1 is killed.
    let mut waiting = f.pam_a.login(&f.user.name).spawn();
    let prompt = waiting.expect_prompt();
    assert!(prompt.contains("code"), "{prompt}");
    f.v1.kill_daemon();
    waiting.answer(&codes[0]);
    let in_flight = waiting.finish();
    in_flight
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[UNAVAILABLE]);
    // The next logins, on both hosts, go to verifier 2: the code the
    // lost login carried was not used.
    f.login(&f.pam_a, &codes[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    f.login(&f.pam_b, &codes[1])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);

    // Verifier 2 hangs (SIGSTOP): refused within the timeout.
    let pid = f.v2.daemon.pid().unwrap_or_default();
    twofactor_tests::proc::signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let run = f.login(&f.pam_b, &codes[2]);
    let took = started.elapsed();
    twofactor_tests::proc::signal(pid, libc::SIGCONT);
    assert_refused_unavailable(&run);
    assert!(
        took < Duration::from_secs(u64::from(TIMEOUT_SECONDS) + 3),
        "a hung verifier held the login {took:?} (timeout {TIMEOUT_SECONDS} s)"
    );

    // Both down: refused; the hosts keep running.
    f.v2.kill_daemon();
    assert_refused_unavailable(&f.login(&f.pam_a, &codes[2]));
    assert!(f.host_a.daemon.is_running() && f.host_b.daemon.is_running());
    let host_log = f.host_a.daemon.log();
    assert!(
        host_log.contains("no verifier answered"),
        "host A did not log why:\n{host_log}"
    );
    // twofactorctl there says so.
    let status = f.host_a.ctl().run(&f.user, &["status"], b"");
    assert!(
        !status.success() && status.stderr().contains("did not answer this host"),
        "{}",
        status.describe()
    );

    // Verifier 1 back: both hosts let in again, without a restart.
    f.v1.restart_daemon();
    f.login(&f.pam_a, &codes[2])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    f.login(&f.pam_b, &codes[3])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
}

/// From the shared-store mode to verifier mode, as docs/fleet.md says,
/// with no re-enrolment: a host of a shared-store fleet (key file and
/// database) becomes the verifier by adding `[fleet] role = "verifier"`
/// to its configuration; another machine becomes a host with only its
/// certificate. The user enrolled before logs in through the new host
/// with the same app and the same backup codes.
#[test]
fn a_shared_store_fleet_moves_to_verifier_mode_without_re_enrolment() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let user = TestUser::new();
    let ca = FleetCa::new();
    let pg = PgServer::start();
    let db = pg.create_database();
    let store = pg.store_toml(&db, true);
    let mut old = Env::start(&DaemonConfig {
        extra: store.clone(),
        ..DaemonConfig::default()
    });
    let enrolment = old.ctl().enroll_app(&user);
    let secret = enrolment.compact_secret();
    let backup = enrolment.backup_codes();

    // 1. The shared-store host becomes a verifier: its key file and
    //    [store] stay, [fleet] is added; checked, then restarted.
    let port = free_port();
    old.stop_daemon();
    let verifier = DaemonConfig {
        extra: format!(
            "{store}\n{}",
            ca.verifier_toml(&ca.verifier("verifier"), port)
        ),
        ..DaemonConfig::default()
    };
    old.daemon
        .write_config(&verifier.to_toml(&old.daemon.state_dir()));
    let checked = old.daemon.check_config();
    assert!(checked.success(), "{}", checked.describe());
    old.restart_daemon();
    // 2. The other machine: a certificate, registered at the verifier; no
    //    key file, no database password.
    let cert = ca.host("web2");
    let added =
        old.daemon
            .run_args(&["--add-host", "web2", cert.cert.to_str().unwrap_or_default()]);
    assert!(added.success(), "{}", added.describe());
    // `--check-config` on the host reads its files as a start would: a
    // key open to others is refused, with the key and the file named.
    let loose = Daemon::prepare_without_init(&DaemonConfig {
        extra: ca.host_toml(&cert, &[port], TIMEOUT_SECONDS),
        ..DaemonConfig::default()
    });
    twofactor_tests::set_mode(&cert.key, 0o644);
    let checked = loose.check_config();
    assert!(
        !checked.success() && checked.stderr().contains("[fleet] key_file"),
        "{}",
        checked.describe()
    );
    twofactor_tests::set_mode(&cert.key, 0o600);
    let checked = loose.check_config();
    assert!(checked.success(), "{}", checked.describe());
    let host = start_host(&ca, &cert, &[port]);
    let pam = host.pam("");
    // 3. The user logs in there with the app and the backup codes of the
    //    enrolment made before.
    totp::ensure_step_margin(3);
    let context = || format!("{}\n{}", old.daemon.log(), host.daemon.log());
    let run = pam.login(&user.name).answer(totp::code_now(&secret)).run();
    assert_eq!(
        run.result,
        "PAM_SUCCESS",
        "{}\n{}",
        run.describe(),
        context()
    );
    let run = pam.login(&user.name).answer(&backup[0]).run();
    assert_eq!(
        run.result,
        "PAM_SUCCESS",
        "{}\n{}",
        run.describe(),
        context()
    );
}
