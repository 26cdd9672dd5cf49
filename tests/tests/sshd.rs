//! The whole path with real OpenSSH: a test sshd on a loopback port whose
//! PAM service asks pam_unix for the password and then pam_twofactor.so for
//! the code; the real ssh client answers keyboard-interactive prompts
//! through SSH_ASKPASS. Root only (sshd, real users).

use twofactor_tests::sshd::{logged_in, Sshd};
use twofactor_tests::{need_root, totp, Enrolled, Env, TestUser};

fn module_args(s: &Enrolled) -> String {
    format!("bus={}", s.env.bus.plain_address())
}

#[test]
fn ssh_right_code_in_wrong_code_out_replay_out() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let sshd = Sshd::start(&module_args(&s));
    let code = s.code_now();

    let wrong = sshd.ssh(&s.user, s.user.password(), &totp::wrong_code(&code));
    assert!(
        !logged_in(&wrong),
        "wrong code let ssh in: {}",
        wrong.describe()
    );
    assert!(
        sshd.asked_prompts()
            .contains("Verification code from your authenticator app:"),
        "ssh was never asked for the code; prompts: {:?}\nsshd log:\n{}",
        sshd.asked_prompts(),
        sshd.log()
    );

    let right = sshd.ssh(&s.user, s.user.password(), &code);
    assert!(
        logged_in(&right),
        "right password and code did not log in: {}\nsshd log:\n{}\ndaemon log:\n{}",
        right.describe(),
        sshd.log(),
        s.env.daemon.log()
    );

    let replay = sshd.ssh(&s.user, s.user.password(), &code);
    assert!(
        !logged_in(&replay),
        "replayed code let ssh in: {}",
        replay.describe()
    );

    let log = s.env.daemon.log();
    assert!(
        log.contains(&format!(
            "login-success user={} service={} rhost=127.0.0.1",
            s.user.name, sshd.service
        )),
        "no audit line with service and rhost:\n{log}"
    );
}

/// The README's recipe (`@include common-auth`, as Debian writes it) ends
/// at a wrong password, before the module: the right code does not help,
/// the code is never asked, and the daemon never sees the login (issue 18,
/// item 2). A user without a method shows it best: a login that reaches
/// the daemon logs `login-no-method` (the control, with the right
/// password), one that does not logs nothing.
#[test]
fn ssh_wrong_password_never_reaches_the_module() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let sshd = Sshd::start(&module_args(&s));
    let out = sshd.ssh(&s.user, &format!("{}x", s.user.password()), &s.code_now());
    assert!(!logged_in(&out), "{}", out.describe());
    assert!(
        !sshd.asked_prompts().contains("Verification"),
        "the code was asked after a wrong password: {:?}\nsshd log:\n{}",
        sshd.asked_prompts(),
        sshd.log()
    );

    let plain = TestUser::new();
    let out = sshd.ssh(&plain, &format!("{}x", plain.password()), "000000");
    assert!(!logged_in(&out), "{}", out.describe());
    let out = sshd.ssh(&plain, plain.password(), "000000");
    assert!(logged_in(&out), "control: {}", out.describe());
    let log = s.env.daemon.log();
    assert_eq!(
        log.matches(&format!("login-no-method user={} ", plain.name))
            .count(),
        1,
        "only the login with the right password reached the daemon:\n{log}"
    );
}

#[test]
fn ssh_daemon_stopped_out() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    let sshd = Sshd::start(&module_args(&s));
    // Control: this sshd lets the user in while the daemon runs.
    let code = s.code_now();
    let out = sshd.ssh(&s.user, s.user.password(), &code);
    assert!(logged_in(&out), "control login failed: {}", out.describe());
    s.env.stop_daemon();
    // The next step's code has not been used and would be accepted.
    let next = totp::code_at_step_offset(&s.secret, 1);
    let out = sshd.ssh(&s.user, s.user.password(), &next);
    assert!(
        !logged_in(&out),
        "daemon stopped, failmode=secure, yet ssh got in: {}",
        out.describe()
    );
}

/// failmode=safe: with the daemon stopped, the password alone lets the user
/// in (the admin's choice), and no code is asked.
#[test]
fn ssh_daemon_stopped_failmode_safe_in() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    let sshd = Sshd::start(&format!("{} failmode=safe", module_args(&s)));
    s.env.stop_daemon();
    let out = sshd.ssh(&s.user, s.user.password(), "000000");
    assert!(
        logged_in(&out),
        "{}\nsshd log:\n{}",
        out.describe(),
        sshd.log()
    );
    assert!(
        !sshd.asked_prompts().contains("Verification"),
        "asked for a code: {:?}",
        sshd.asked_prompts()
    );
    // The password is still needed.
    let out = sshd.ssh(&s.user, &format!("{}x", s.user.password()), "000000");
    assert!(!logged_in(&out), "{}", out.describe());
}

/// A user without a method logs in with the password alone.
#[test]
fn ssh_user_without_method_needs_only_the_password() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let sshd = Sshd::start(&format!("bus={}", env.bus.plain_address()));
    let out = sshd.ssh(&user, user.password(), "000000");
    assert!(
        logged_in(&out),
        "{}\nsshd log:\n{}",
        out.describe(),
        sshd.log()
    );
    assert!(
        !sshd.asked_prompts().contains("Verification"),
        "asked for a code: {:?}",
        sshd.asked_prompts()
    );
}
