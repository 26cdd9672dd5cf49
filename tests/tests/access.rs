//! Who may call what: the caller's uid comes from the bus, root may run a
//! login for anyone, other uids only for themselves, Account1 acts only on
//! the caller, sessions belong to the connection that began them, and the
//! module never takes a bus address from the environment.

use serde_json::json;
use twofactor_tests::pam::PamService;
use twofactor_tests::{need_root, totp, Enrolled, Env, TestUser, CODE_PROMPT};

fn begin(user: &str) -> serde_json::Value {
    json!({"interface": "org.twofactor.Login1", "method": "Begin",
           "signature": "a{sv}",
           "args": [{"user": user, "service": "tft-access", "rhost": "", "tty": ""}]})
}

fn error_name(r: &serde_json::Value) -> &str {
    r["error"].as_str().unwrap_or("")
}

/// A non-root uid may not run a login for another user (the other user has
/// no method, so the daemon would have let the login pass at once).
#[test]
fn non_root_cannot_begin_login_for_another_user() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let a = TestUser::new();
    let b = TestUser::new();
    let r = env.bus.py_calls(Some(a.ids()), json!([begin(&b.name)]));
    assert_eq!(
        error_name(&r[0]),
        "org.twofactor.Error.PermissionDenied",
        "{r:?}"
    );
    // Through the module as uid A for user B: refused, nothing asked.
    let pam = env.pam("");
    let run = pam.login(&b.name).as_user(a.uid, a.gid).run();
    run.assert_result("PAM_AUTH_ERR").assert_no_prompt();
    // Control: root may, and the same user B passes at once.
    let r = env.bus.py_calls(None, json!([begin(&b.name)]));
    assert!(r[0]["ok"].is_array(), "{r:?}");
    assert_eq!(
        r[0]["ok"][1][1], 2,
        "root's Begin for B should Accept: {r:?}"
    );
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("denied uid={}", a.uid)),
        "denial not audited:\n{log}"
    );
}

/// A screen locker runs as the user and checks that user's own code.
#[test]
fn non_root_may_log_in_itself() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let code = s.code_now();
    let as_user = |answer: &str| {
        s.pam
            .login(&s.user.name)
            .as_user(s.user.uid, s.user.gid)
            .answer(answer)
            .run()
    };
    as_user(&totp::wrong_code(&code))
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code();
    as_user(&code)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    // Directly on the bus too: Begin for oneself is allowed.
    let r = s
        .env
        .bus
        .py_calls(Some(s.user.ids()), json!([begin(&s.user.name)]));
    assert_eq!(r[0]["ok"][1][2], CODE_PROMPT, "{r:?}");
}

/// Account1 acts on the caller's own account, whoever the caller names.
#[test]
fn account_interface_acts_only_on_the_caller() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let b = TestUser::new();
    let ctl = s.env.ctl();
    let status_b = ctl.status_json(&b);
    assert_eq!(status_b["user"], b.name.as_str(), "{status_b}");
    assert_eq!(status_b["methods"], json!([]), "{status_b}");
    assert_eq!(ctl.methods(&s.user), vec!["app".to_string()]);
    // B turning off "app" with B's own password does not touch A.
    let out = ctl.disable(&b, "app", b.password(), "");
    assert!(!out.success(), "{}", out.describe());
    assert_eq!(ctl.methods(&s.user), vec!["app".to_string()]);
    // On the bus: Status as B is B's, whatever else is going on.
    let r = s.env.bus.py_calls(
        Some(b.ids()),
        json!([{"interface": "org.twofactor.Account1", "method": "Status", "args": []}]),
    );
    assert_eq!(r[0]["ok"][0][0], b.name.as_str(), "{r:?}");
    assert_eq!(r[0]["ok"][0][1], json!([]), "{r:?}");
    // B cannot disable A's method with A's password either: the daemon
    // checks B's password for B's account.
    let r = s.env.bus.py_calls(
        Some(b.ids()),
        json!([{"interface": "org.twofactor.Account1", "method": "Disable",
                "signature": "sayay",
                "args": ["app", {"bytes": s.user.password()}, {"bytes": s.code_now()}]}]),
    );
    assert!(r[0]["error"].is_string(), "{r:?}");
    assert_eq!(ctl.methods(&s.user), vec!["app".to_string()]);
}

/// A session belongs to the connection that began it: an answer from another
/// connection (even by root, even with the right code) is not taken, and
/// the code is not used up by it.
#[test]
fn session_is_bound_to_its_connection() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let code = s.code_now();
    let answer = |conn: u32| {
        json!({"conn": conn, "interface": "org.twofactor.Login1", "method": "Answer",
               "signature": "say", "args": ["$0", {"bytes": code}]})
    };
    let r = s
        .env
        .bus
        .py_calls(None, json!([begin(&s.user.name), answer(1)]));
    assert_eq!(r[0]["ok"][1][2], CODE_PROMPT, "{r:?}");
    assert!(
        r[1]["error"].is_string(),
        "an answer from another connection was taken: {r:?}"
    );
    // The same connection may answer; the code is still unused.
    let r = s
        .env
        .bus
        .py_calls(None, json!([begin(&s.user.name), answer(0)]));
    assert_eq!(
        r[1]["ok"][0][1], 4,
        "the right code on the session's own connection (AcceptPending: the \
         login waits for its account phase): {r:?}"
    );
    // A session id that was never given out.
    let r = s.env.bus.py_calls(
        None,
        json!([{"interface": "org.twofactor.Login1", "method": "Answer",
                "signature": "say", "args": ["no-such-session", {"bytes": "123456"}]}]),
    );
    assert!(r[0]["error"].is_string(), "{r:?}");
}

/// The shipped bus policy lets users send only to the three interfaces (and
/// Introspectable/Peer) of the daemon.
#[test]
fn bus_policy_blocks_other_interfaces() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let a = TestUser::new();
    let out = env.bus.send_as(
        Some(a.ids()),
        "org.twofactor.Daemon1",
        "/org/twofactor/Daemon1",
        "org.freedesktop.DBus.Properties.GetAll",
        &["string:org.twofactor.Login1"],
    );
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr()
            .contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{}",
        out.describe()
    );
    let out = env.bus.send_as(
        Some(a.ids()),
        "org.twofactor.Daemon1",
        "/org/twofactor/Daemon1",
        "org.freedesktop.DBus.Peer.Ping",
        &[],
    );
    assert!(out.success(), "Ping is allowed: {}", out.describe());
}

/// The module ignores DBUS_SYSTEM_BUS_ADDRESS (and the other bus variables)
/// and, without bus=, uses the fixed system bus socket. Two daemons: R, where
/// the user is enrolled, is reached through /run/dbus/system_bus_socket
/// (made to lead to R's bus in a private mount namespace); H, where the user
/// has no method and would be let in at once, is named in the environment.
/// The module must ask R for a code; with no bus at the fixed socket it must
/// refuse. Explicitly named with bus=, H does let the user in (control).
#[test]
fn module_ignores_hostile_bus_environment() {
    if !need_root!() {
        return;
    }
    let r = Enrolled::with_defaults();
    let h = Env::with_defaults();
    let hostile = h.bus.address().to_string();
    let no_bus_arg = PamService::with_args("tft-login", "");
    let login = |fixed: Option<&std::path::Path>, as_user: Option<(u32, u32)>, answer: &str| {
        let mut l = no_bus_arg
            .login(&r.user.name)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &hostile)
            .env("DBUS_SESSION_BUS_ADDRESS", &hostile)
            .env("DBUS_STARTER_ADDRESS", &hostile)
            .env("DBUS_STARTER_BUS_TYPE", "system")
            .fixed_system_bus(fixed)
            .answer(answer);
        if let Some((uid, gid)) = as_user {
            l = l.as_user(uid, gid);
        }
        l.run()
    };
    let r_socket = r.env.bus.socket();
    // Each round uses a later step: a code is accepted once.
    for (step, as_user) in [(0, None), (1, Some(r.user.ids()))] {
        // Nothing at the fixed socket: refused, whatever the environment says.
        let run = login(None, as_user, "123456");
        assert_eq!(
            run.result,
            "PAM_AUTHINFO_UNAVAIL",
            "as {as_user:?}, no system bus: the module followed the environment? {}",
            run.describe()
        );
        // The fixed socket leads to R: R asks for the code.
        totp::ensure_step_margin(3);
        let code = totp::code_at_step_offset(&r.secret, step);
        let run = login(Some(&r_socket), as_user, &totp::wrong_code(&code));
        run.assert_result("PAM_AUTH_ERR").assert_asked_code();
        let run = login(Some(&r_socket), as_user, &code);
        run.assert_result("PAM_SUCCESS").assert_asked_code();
    }
    let log = h.daemon.log();
    assert!(
        !log.contains(&format!("user={}", r.user.name)),
        "the daemon on the bus named in the environment was asked:\n{log}"
    );
    // Control: named on the PAM line, H lets the user in without a code.
    h.pam("")
        .login(&r.user.name)
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_no_prompt();
    assert!(h.daemon.log().contains(&format!("user={}", r.user.name)));
}

/// One unprivileged user cannot block everybody else's logins: a user who
/// keeps many connections open, each with as many logins for themselves as
/// the daemon lets one connection have, must not fill the daemon's table of
/// logins in progress so that root's logins for other users (sshd, sudo)
/// are refused.
#[test]
fn one_user_cannot_exhaust_logins_of_others() {
    if !need_root!() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let s = Enrolled::with_defaults();
    let victim = TestUser::new();
    let victim_secret = s.env.ctl().enroll_app(&victim).compact_secret();
    // The attacker: 70 connections (the bus allows 256 per user) x 64
    // Begins for themselves; prints a line when done and keeps the
    // connections open until its stdin closes.
    let script = r#"
import sys, dbus, dbus.lowlevel
addr, user = sys.argv[1], sys.argv[2]
conns, ok, refused = [], 0, 0
for c in range(70):
    b = dbus.bus.BusConnection(addr)
    conns.append(b)
    for i in range(64):
        m = dbus.lowlevel.MethodCallMessage("org.twofactor.Daemon1", "/org/twofactor/Daemon1",
                                            "org.twofactor.Login1", "Begin")
        m.append({"user": user, "service": "flood"}, signature="a{sv}")
        try:
            b.send_message_with_reply_and_block(m, 10)
            ok += 1
        except dbus.exceptions.DBusException:
            refused += 1
print("flooded", ok, refused, flush=True)
sys.stdin.read()
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(s.env.bus.address())
        .arg(&s.user.name)
        .env_clear()
        .env("PATH", twofactor_tests::PATH)
        .uid(s.user.uid)
        .gid(s.user.gid);
    let mut attacker = twofactor_tests::proc::Interactive::spawn(&mut cmd);
    let line = attacker.expect_line(std::time::Duration::from_secs(240), |l| {
        l.starts_with("flooded")
    });
    totp::ensure_step_margin(3);
    let run = s
        .pam
        .login(&victim.name)
        .answer(totp::code_now(&victim_secret))
        .run();
    attacker.kill();
    assert_eq!(
        run.result, "PAM_SUCCESS",
        "after another user's flood ({line}), root's login for {} was refused: {}\ndaemon log tail:\n{}",
        victim.name,
        run.describe(),
        s.env.daemon.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

/// A login run by a process of the user's own (a screen locker) checks a
/// factor but never sets one up (issue 18, item 3): under the mandatory
/// policy a user without a method is refused there and told where to set
/// it up, and nothing is stored; root's login (sshd, login, su, sudo) still
/// enrols at the prompt.
#[test]
fn a_login_run_as_the_user_cannot_enrol_at_the_prompt() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    twofactor_tests::admin::set_policy(&env, true, &[]);
    let pam = env.pam("");
    let run = pam.login(&user.name).as_user(user.uid, user.gid).run();
    assert_eq!(run.auth, "PAM_AUTH_ERR", "{}", run.describe());
    assert!(
        run.prompts.is_empty(),
        "no enrolment asked: {}",
        run.describe()
    );
    assert!(
        run.errors.iter().any(|e| e.contains("not set up yet")),
        "{}",
        run.describe()
    );
    assert_eq!(env.ctl().methods(&user), Vec::<String>::new());
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("denied uid={} action=enrol-at-prompt", user.uid)),
        "{log}"
    );
    // As root, the same login is the enrolment at the prompt.
    let run = pam.login(&user.name).run();
    assert!(
        run.prompts
            .iter()
            .any(|p| p.text.contains("Code from the app")),
        "{}",
        run.describe()
    );
}
