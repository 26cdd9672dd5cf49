//! Logins through the built pam_twofactor.so under real libpam (pam-harness),
//! against the real twofactord on a private bus. Codes come from oathtool.

use twofactor_tests::conversation::lock_wait;
use twofactor_tests::pam::PamService;
use twofactor_tests::syslog::SyslogSink;
use twofactor_tests::{
    admin, need_root, totp, users, DaemonConfig, Enrolled, Env, TestUser, INVALID_CODE,
};

/// What the refusal of a malformed answer must say (the exact words are
/// the daemon's to choose; they must tell a format problem from a wrong
/// code).
#[derive(Clone, Copy, Debug)]
enum Says {
    /// Mentions the 6 digits ("6-digit" or "6 digits").
    SixDigits,
    /// Says nothing was entered.
    Empty,
    /// Says the answer is too long.
    TooLong,
}

impl Says {
    fn fits(self, message: &str) -> bool {
        let m = message.to_lowercase();
        m != INVALID_CODE.to_lowercase()
            && match self {
                Says::SixDigits => m.contains("6-digit") || m.contains("6 digits"),
                Says::Empty => m.contains("no code") || m.contains("empty"),
                Says::TooLong => m.contains("too long"),
            }
    }
}

/// Shown by the module when the daemon cannot be reached.
const UNAVAILABLE: &str = "Two-factor authentication is unavailable; login refused.";

#[test]
fn right_code_in_then_same_code_refused() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let code = s.code_now();
    let first = s
        .pam
        .login(&s.user.name)
        .rhost("192.0.2.7")
        .answer(&code)
        .run();
    first
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    let again = s.login(&code);
    again
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    assert_eq!(s.failures(), 1, "a replayed code counts as a failure");
    let log = s.env.daemon.log();
    assert!(
        log.contains(&format!(
            "login-success user={} service=tft-login rhost=192.0.2.7",
            s.user.name
        )),
        "no audit line for the success:\n{log}"
    );
    assert!(
        log.contains(&format!("login-failure user={}", s.user.name))
            && log.contains("reason=replayed-code"),
        "no audit line for the replay:\n{log}"
    );
    s.assert_log_clean(&[&code]);
}

#[test]
fn code_with_spaces_is_accepted() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let code = s.code_now();
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    s.login(&spaced).assert_result("PAM_SUCCESS");
}

#[test]
fn code_of_next_step_is_accepted() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    totp::ensure_step_margin(3);
    let next = totp::code_at_step_offset(&s.secret, 1);
    s.login(&next).assert_result("PAM_SUCCESS");
    // ... and it used up the current step as well (no step before an
    // accepted one is accepted again).
    let now = totp::code_now(&s.secret);
    s.login(&now)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
}

/// ±1 step of skew: a code 2 steps old is refused even though its step was
/// never used, and the code of the previous (unused) step is accepted. The
/// daemon's clock is moved two steps past the enrolment, so that both
/// steps are later than the step the enrolment used.
#[test]
fn skew_window_is_one_step() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let Some(clock) = &s.clock else {
        unreachable!("Enrolled::on_clock has a clock")
    };
    // The enrolment used the step before the one it ran in
    // (Ctl::enroll_app).
    clock.advance(60);
    totp::ensure_step_margin(4);
    let daemon_now = totp::now() + clock.offset();
    let at = |steps: i64| totp::oathtool(&s.secret, Some(daemon_now + steps * totp::STEP));
    let (two_ago, one_ago, now) = (at(-2), at(-1), at(0));
    if two_ago == one_ago || two_ago == now {
        eprintln!("codes of different steps coincide; cannot tell them apart this time");
        return;
    }
    s.login(&two_ago)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    s.login(&one_ago).assert_result("PAM_SUCCESS");
}

#[test]
fn malformed_answers_refused_and_not_counted() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let long = "1".repeat(10_000);
    let cases: Vec<(&[u8], Says)> = vec![
        (b"12a456", Says::SixDigits),
        (b"abcdef", Says::SixDigits),
        (b"", Says::Empty),
        (b"   ", Says::Empty),
        (long.as_bytes(), Says::TooLong),
        (b"+12345", Says::SixDigits),
        (b"+123456", Says::SixDigits),
        (b"12345", Says::SixDigits),
        (b"1234567", Says::SixDigits),
        ("１２３４５６".as_bytes(), Says::SixDigits),
        ("٠١٢٣٤٥".as_bytes(), Says::SixDigits),
        ("۱۲۳۴۵۶".as_bytes(), Says::SixDigits),
        (b"\xff\xfe123456", Says::SixDigits),
        (b"12\xc3\x28\x34\x35\x36", Says::SixDigits),
    ];
    for (answer, says) in &cases {
        let run = s.login(answer);
        let shown = String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned();
        run.assert_result("PAM_AUTH_ERR").assert_asked_code();
        assert!(
            run.errors.len() == 1 && says.fits(&run.errors[0]),
            "answer {shown:?}: expected one message that {says:?}: {}",
            run.describe()
        );
    }
    assert_eq!(
        s.failures(),
        0,
        "malformed answers must not count as failures"
    );
    // Nothing else changed either: the current code still works.
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}

#[test]
fn user_without_method_passes_without_prompt() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let pam = env.pam("");
    let run = pam.login(&user.name).run();
    run.assert_result("PAM_SUCCESS")
        .assert_no_prompt()
        .assert_errors(&[]);
    assert!(run.infos.is_empty(), "{}", run.describe());
}

/// A name the system does not know is answered as a user without a method
/// who is in no group (issue 18, item 2): the same result and the same
/// (lack of a) prompt with the policy off, and the same enrolment prompt
/// under a policy for everyone, so the module does not tell which names
/// exist. (The password module before it refuses the unknown name.)
#[test]
fn an_unknown_name_looks_like_a_user_without_a_method() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let without_method = TestUser::new();
    let unknown_name = users::unknown_user_name();
    let known = pam.login(&without_method.name).run();
    let unknown = pam.login(&unknown_name).run();
    known.assert_result("PAM_SUCCESS").assert_no_prompt();
    unknown.assert_result("PAM_SUCCESS").assert_no_prompt();
    assert_eq!(
        (&known.infos, &known.errors),
        (&unknown.infos, &unknown.errors)
    );

    admin::set_policy(&env, true, &[]);
    let known = pam
        .login(&without_method.name)
        .without_account_phase()
        .run();
    let unknown = pam.login(&unknown_name).without_account_phase().run();
    assert_eq!(known.prompts, unknown.prompts, "{}", unknown.describe());
    assert_eq!(known.auth, unknown.auth);
    assert!(
        !unknown.prompts.is_empty(),
        "the enrolment asks: {}",
        unknown.describe()
    );
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("login-unknown-user user={unknown_name} ")),
        "{log}"
    );
}

/// Daemon not running: failmode=secure (the default) refuses, failmode=safe
/// lets the login pass; both are logged to syslog (caught here through a
/// private /dev/log).
#[test]
fn daemon_not_running_secure_refuses_safe_allows() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    s.env.stop_daemon();
    let bus = s.env.bus.plain_address();
    let missing = format!(
        "unix:path={}/no-such-bus",
        s.env.daemon.state_dir().display()
    );
    for (where_, address) in [
        ("bus up, no daemon", bus.as_str()),
        ("no bus", missing.as_str()),
    ] {
        for (args, result) in [
            ("", "PAM_AUTHINFO_UNAVAIL"),
            ("failmode=secure", "PAM_AUTHINFO_UNAVAIL"),
            ("failmode=safe", "PAM_SUCCESS"),
        ] {
            let pam = PamService::for_bus(address, args);
            let sink = SyslogSink::new();
            let run = pam
                .login(&s.user.name)
                .answer("123456")
                .run_with_syslog(&sink);
            let ctx = format!("{where_}, args {args:?}");
            assert_eq!(run.result, result, "{ctx}: {}", run.describe());
            run.assert_no_prompt();
            let log = sink.text();
            if result == "PAM_SUCCESS" {
                run.assert_errors(&[]);
                assert!(
                    log.contains("pam_twofactor(tft-login:auth)")
                        && log.contains("failmode=safe")
                        && log.contains(&s.user.name),
                    "{ctx}: failmode=safe pass not logged: {log:?}"
                );
            } else {
                run.assert_errors(&[UNAVAILABLE]);
                assert!(
                    log.contains("pam_twofactor(tft-login:auth)")
                        && log.contains("failmode=secure")
                        && log.contains(&s.user.name),
                    "{ctx}: refusal not logged: {log:?}"
                );
            }
        }
    }
}

/// The daemon dies (SIGKILL) after asking for the code: the answer cannot
/// be checked, so the login is refused, even with failmode=safe. The code
/// was not used up: after a restart on the same state it works.
#[test]
fn daemon_killed_mid_login_refuses() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    for args in ["", "failmode=safe"] {
        let pam = s.env.pam(args);
        let mut live = pam.login(&s.user.name).spawn();
        assert_eq!(live.expect_prompt(), twofactor_tests::CODE_PROMPT);
        s.env.kill_daemon();
        live.answer(s.code_now());
        let run = live.finish();
        run.assert_result("PAM_AUTHINFO_UNAVAIL")
            .assert_errors(&[UNAVAILABLE]);
        s.env.restart_daemon();
    }
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}

/// A code accepted just before the daemon is killed stays used: the step was
/// committed before the answer left the daemon.
#[test]
fn accepted_code_stays_used_after_sigkill() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    let code = s.code_now();
    s.login(&code).assert_result("PAM_SUCCESS");
    s.env.kill_daemon();
    s.env.restart_daemon();
    s.login(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    assert_eq!(s.env.ctl().methods(&s.user), vec!["app".to_string()]);
}

/// Unknown or malformed module arguments refuse the login (PAM_SERVICE_ERR)
/// instead of being ignored, for a user the daemon would let in.
#[test]
fn bad_module_arguments_refuse() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    // Control: valid arguments let the user (no method) in.
    env.pam("failmode=secure timeout=10")
        .login(&user.name)
        .run()
        .assert_result("PAM_SUCCESS");
    for args in [
        "fialmode=safe",
        "debug",
        "failmode=maybe",
        "failmode=",
        "timeout=abc",
        "timeout=-1",
        "failmode=safe failmode=safe",
        "bus=unix:path=/tmp/x",
    ] {
        let pam = env.pam(args);
        let sink = SyslogSink::new();
        let run = pam.login(&user.name).run_with_syslog(&sink);
        assert_eq!(
            run.result,
            "PAM_SERVICE_ERR",
            "args {args:?}: {}",
            run.describe()
        );
        run.assert_no_prompt();
        let log = sink.text();
        assert!(
            log.contains("pam_twofactor(tft-login:auth)"),
            "args {args:?}: the refusal is not logged: {log:?}"
        );
    }
}

/// max_failures=3: three wrong codes, then even the right code waits, with
/// the time left in the message; after the wait it works. Another user is
/// not affected.
#[test]
fn lockout_after_max_failures() {
    if !need_root!() {
        return;
    }
    // A lock of 4 s: long enough that the status read after the refused
    // login still sees it on a loaded machine (or a store over the
    // network).
    let config = DaemonConfig {
        max_failures: 3,
        lockout_seconds: 4,
        max_lockout_seconds: 8,
        ..DaemonConfig::default()
    };
    let s = Enrolled::on_clock(&config);
    let other = TestUser::new();
    let other_secret = s.env.ctl().enroll_app(&other).compact_secret();
    let wrong = totp::wrong_code(&s.code_now());
    for i in 1..=3 {
        s.login(&wrong)
            .assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
        assert_eq!(s.failures(), i);
    }
    let run = s.login(s.code_now());
    run.assert_result("PAM_AUTH_ERR");
    let wait = lock_wait(&run.errors)
        .unwrap_or_else(|| panic!("no 'try again in N seconds' message: {}", run.describe()));
    assert!((1..=4).contains(&wait), "wait {wait} s: {}", run.describe());
    let status = s.env.ctl().status_json(&s.user);
    assert!(status["locked_until"].as_i64().unwrap_or(0) > 0, "{status}");
    // The other user logs in meanwhile.
    totp::ensure_step_margin(3);
    s.pam
        .login(&other.name)
        .answer(totp::code_now(&other_secret))
        .run()
        .assert_result("PAM_SUCCESS");
    // The wait passes on the daemon's clock.
    s.advance_clock(wait + 1);
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
    assert_eq!(s.failures(), 0, "a success clears the failures");
    assert!(
        s.env
            .daemon
            .log()
            .contains(&format!("lockout user={}", s.user.name)),
        "lockout not audited:\n{}",
        s.env.daemon.log()
    );
}

/// Failures are counted per account, across services.
#[test]
fn failures_count_across_services() {
    if !need_root!() {
        return;
    }
    let config = DaemonConfig {
        max_failures: 3,
        lockout_seconds: 30,
        max_lockout_seconds: 60,
        ..DaemonConfig::default()
    };
    let s = Enrolled::new(&config);
    let line = std::fs::read_to_string(s.pam.file()).expect("service file");
    s.pam.add_service("tft-other", &line);
    let wrong = totp::wrong_code(&s.code_now());
    for service in ["tft-login", "tft-other", "tft-login"] {
        s.pam
            .login(&s.user.name)
            .service(service)
            .answer(&wrong)
            .run()
            .assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
    }
    assert_eq!(s.failures(), 3);
    let run = s
        .pam
        .login(&s.user.name)
        .service("tft-other")
        .answer(s.code_now())
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        lock_wait(&run.errors).is_some(),
        "expected the lockout message: {}",
        run.describe()
    );
}

/// A login left unanswered for longer than session_timeout_seconds is
/// forgotten: a late answer, even the right code, is refused, and the code is
/// not used up by it.
#[test]
fn unanswered_login_times_out() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig {
        session_timeout_seconds: 10,
        ..DaemonConfig::default()
    });
    let mut live = s.pam.login(&s.user.name).spawn();
    assert_eq!(live.expect_prompt(), twofactor_tests::CODE_PROMPT);
    // 11 s pass on the daemon's clock while the prompt waits.
    s.advance_clock(11);
    live.answer(s.code_now());
    let run = live.finish();
    assert_ne!(run.result, "PAM_SUCCESS", "{}", run.describe());
    run.assert_result("PAM_AUTH_ERR");
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}

/// The conversation fails (the application cannot ask): PAM_CONV_ERR, never
/// a success.
#[test]
fn failed_conversation_is_not_success() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let run = s.pam.login(&s.user.name).run();
    run.assert_result("PAM_CONV_ERR").assert_asked_code();
    assert_eq!(s.failures(), 0);
}

/// User names (and rhost) come from whoever runs the login; a name with a
/// line break or quotes cannot forge a line in the daemon's log or the
/// module's syslog.
#[test]
fn hostile_names_cannot_forge_log_lines() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let forged = "twofactord: login-success user=root service=sshd";
    for name in [
        format!("x\n{forged}"),
        format!("x\r{forged}"),
        format!("x\" {forged}"),
    ] {
        let sink = SyslogSink::new();
        let run = s
            .pam
            .login(&name)
            .rhost(&format!("h\n{forged}"))
            .answer("123456")
            .run_with_syslog(&sink);
        // No such user: answered as a user without a method (the password
        // module before this one refuses the name); logged, and quoted.
        assert!(run.prompts.is_empty(), "{}", run.describe());
        for record in sink.lines() {
            assert!(
                !record.trim_end().contains('\n') && !record.contains('\r'),
                "a syslog record holds a line break: {record:?}"
            );
        }
    }
    let log = s.env.daemon.log();
    assert!(
        log.contains("\\x0a"),
        "the hostile names were not logged (escaped) at all:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with(forged) && !line.starts_with("login-success"),
            "forged line in the daemon log: {line:?}\n{}",
            s.env.daemon.log()
        );
    }
}

/// The wait doubles with each further failure and stops at
/// max_lockout_seconds.
#[test]
fn lockout_doubles_up_to_the_cap() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig {
        max_failures: 2,
        lockout_seconds: 2,
        max_lockout_seconds: 5,
        ..DaemonConfig::default()
    });
    let wrong = || totp::wrong_code(&s.code_now());
    let locked_for = || {
        let run = s.login(s.code_now());
        run.assert_result("PAM_AUTH_ERR");
        lock_wait(&run.errors)
            .unwrap_or_else(|| panic!("expected the lockout message: {}", run.describe()))
    };
    // The wait the user is told counts down from the wait imposed; the
    // logins in between take time on a loaded machine, so the lower bound
    // allows the whole seconds that passed since the failure that imposed
    // it. The imposed wait itself is in the audit log, exactly.
    let failure_then_wait = || {
        let failed = std::time::Instant::now();
        s.login(wrong()).assert_errors(&[INVALID_CODE]);
        let wait = locked_for();
        (wait, failed.elapsed().as_secs())
    };
    s.login(wrong()).assert_errors(&[INVALID_CODE]);
    let (first, late) = failure_then_wait();
    assert!(
        (1..=2).contains(&first),
        "first wait {first} ({late} s late)"
    );
    s.advance_clock(first + 1);
    let (second, late) = failure_then_wait();
    assert!(
        (3u64.saturating_sub(late)..=4).contains(&second),
        "second wait {second} should be doubled (4), {late} s after the failure"
    );
    s.advance_clock(second + 1);
    let (third, late) = failure_then_wait();
    assert!(
        (4u64.saturating_sub(late)..=5).contains(&third),
        "third wait {third} should be capped at 5, {late} s after the failure"
    );
    let lockouts: Vec<String> = s
        .env
        .daemon
        .log()
        .lines()
        .filter_map(|l| {
            l.split_once(&format!("lockout user={} seconds=", s.user.name))
                .map(|(_, w)| w.split_whitespace().next().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(lockouts, ["2", "4", "5"], "the waits imposed");
}

/// failmode=safe passes only a definite "no daemon" (issue 7): a daemon
/// that is there but does not answer in time (stopped with SIGSTOP, as a
/// local user can stop their own `su`, or a slow bus) is a refusal in both
/// modes; once it runs again the login works.
#[test]
fn a_stopped_daemon_is_a_refusal_even_with_failmode_safe() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let pid = i32::try_from(s.env.daemon.pid().expect("daemon pid")).expect("pid");
    let signal = |sig: i32| {
        // SAFETY: kill(2) on the daemon this test started, by its pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {sig}");
    };
    signal(libc::SIGSTOP);
    for args in ["failmode=safe timeout=2", "failmode=secure timeout=2"] {
        let pam = s.env.pam(args);
        let run = pam.login(&s.user.name).answer("123456").run();
        signal(libc::SIGCONT);
        assert_eq!(
            run.result,
            "PAM_AUTHINFO_UNAVAIL",
            "{args}: a stopped daemon let the login through: {}",
            run.describe()
        );
        run.assert_no_prompt().assert_errors(&[UNAVAILABLE]);
        signal(libc::SIGSTOP);
    }
    signal(libc::SIGCONT);
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}

/// Throttling is per account and source (issue 7): a flood of wrong codes
/// from one address slows that address down, and the owner logging in from
/// another address gets in with the right code; the attacker's address
/// still waits afterwards.
#[test]
fn a_flood_from_one_address_does_not_lock_the_owner_out() {
    if !need_root!() {
        return;
    }
    let config = DaemonConfig {
        max_failures: 3,
        lockout_seconds: 60,
        max_lockout_seconds: 600,
        ..DaemonConfig::default()
    };
    let s = Enrolled::new(&config);
    let wrong = totp::wrong_code(&s.code_now());
    let mut waited = 0;
    for _ in 0..30 {
        let run = s
            .pam
            .login(&s.user.name)
            .rhost("198.51.100.66")
            .answer(&wrong)
            .run();
        run.assert_result("PAM_AUTH_ERR");
        waited += usize::from(lock_wait(&run.errors).is_some());
    }
    assert_eq!(waited, 27, "after 3 failures the address waits");
    totp::ensure_step_margin(3);
    s.pam
        .login(&s.user.name)
        .rhost("192.0.2.10")
        .answer(s.code_now())
        .run()
        .assert_result("PAM_SUCCESS");
    let after = s
        .pam
        .login(&s.user.name)
        .rhost("198.51.100.66")
        .answer(totp::code_at_step_offset(&s.secret, 1))
        .run();
    after.assert_result("PAM_AUTH_ERR");
    assert!(lock_wait(&after.errors).is_some(), "{}", after.describe());
}
