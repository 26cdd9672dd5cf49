//! sudo and su with the module and a hostile DBUS_SYSTEM_BUS_ADDRESS: they
//! run the module inside a setuid process started by the user; a module that
//! honoured the variable would let the user point it at a daemon that says
//! yes. Root only.
//!
//! Two daemons: R, where the user is enrolled, sits behind the fixed system
//! bus socket (/run/dbus/system_bus_socket, made to lead to R's bus in a
//! private mount namespace); H, where the user has no method and would be
//! let in without a code, is named in the environment. With no bus= on the
//! PAM line the module must ask R.
//!
//! Observed: sudo 1.9 does not pass DBUS_SYSTEM_BUS_ADDRESS on to its PAM
//! modules (a module built to read the variable is still refused under
//! sudo), so the sudo test shows the real-world sudo path is safe but cannot
//! catch a module that reads the environment; the su test (su keeps the
//! caller's environment during PAM) and access.rs (the harness) do catch it.

use std::path::Path;

use twofactor_tests::proc::Finished;
use twofactor_tests::sshd::{su_as_user, SudoSetup};
use twofactor_tests::{need_root, totp, Enrolled, Env};

fn hostile_env(h: &Env) -> Vec<(&'static str, String)> {
    let a = h.bus.address().to_string();
    vec![
        ("DBUS_SYSTEM_BUS_ADDRESS", a.clone()),
        ("DBUS_SESSION_BUS_ADDRESS", a.clone()),
        ("DBUS_STARTER_ADDRESS", a),
    ]
}

/// Runs the three cases through `attempt(fixed socket, code)`, whose result
/// says whether the program let the user in.
fn check(r: &Enrolled, h: &Env, attempt: impl Fn(Option<&Path>, &str) -> (bool, Finished)) {
    let socket = r.env.bus.socket();
    // Nothing at the fixed socket: refused, even with the right code.
    let (ok, out) = attempt(None, &r.code_now());
    assert!(
        !ok,
        "let in with no system bus (the bus in the environment was used?): {}",
        out.describe()
    );
    // R at the fixed socket: a wrong code is refused (H would have let the
    // user in without one) ...
    let (ok, out) = attempt(Some(&socket), &totp::wrong_code(&r.code_now()));
    assert!(!ok, "let in with a wrong code: {}", out.describe());
    // ... and the right code lets the user in.
    let (ok, out) = attempt(Some(&socket), &r.code_now());
    assert!(
        ok,
        "the right code through the fixed socket failed: {}\nR's log:\n{}",
        out.describe(),
        r.env.daemon.log()
    );
    let log = h.daemon.log();
    assert!(
        !log.contains(&format!("user={}", r.user.name)),
        "the daemon on the bus named in the environment was asked:\n{log}"
    );
}

#[test]
fn sudo_ignores_hostile_dbus_system_bus_address() {
    if !need_root!() {
        return;
    }
    let r = Enrolled::with_defaults();
    let h = Env::with_defaults();
    let env = hostile_env(&h);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sudo = SudoSetup::new(&r.user, "");
    check(&r, &h, |fixed, code| {
        let out = sudo.run(&r.user, fixed, &env, r.user.password(), code);
        (out.success(), out)
    });
}

#[test]
fn su_ignores_hostile_dbus_system_bus_address() {
    if !need_root!() {
        return;
    }
    let r = Enrolled::with_defaults();
    let h = Env::with_defaults();
    let env = hostile_env(&h);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    check(&r, &h, |fixed, code| {
        let out = su_as_user(&r.user, "", fixed, &env, r.user.password(), code);
        let ok = out.success() && out.stdout().lines().any(|l| l == "SU-OK");
        (ok, out)
    });
}

/// Control: with bus= naming the daemon, sudo works with password and code
/// and refuses a wrong code.
#[test]
fn sudo_with_bus_argument() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let sudo = SudoSetup::new(&s.user, &format!("bus={}", s.env.bus.plain_address()));
    let code = s.code_now();
    let out = sudo.run(
        &s.user,
        None,
        &[],
        s.user.password(),
        &totp::wrong_code(&code),
    );
    assert!(!out.success(), "{}", out.describe());
    let out = sudo.run(&s.user, None, &[], s.user.password(), &code);
    assert!(
        out.success(),
        "sudo with password and code failed: {}\ndaemon log:\n{}",
        out.describe(),
        s.env.daemon.log()
    );
    assert!(s.env.daemon.log().contains(&format!(
        "login-success user={} service={}",
        s.user.name, sudo.service
    )));
}

/// Control: the same with su.
#[test]
fn su_with_bus_argument() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let args = format!("bus={}", s.env.bus.plain_address());
    let code = s.code_now();
    let logged_in = |out: &Finished| out.success() && out.stdout().lines().any(|l| l == "SU-OK");
    let wrong = su_as_user(
        &s.user,
        &args,
        None,
        &[],
        s.user.password(),
        &totp::wrong_code(&code),
    );
    assert!(!logged_in(&wrong), "{}", wrong.describe());
    let out = su_as_user(&s.user, &args, None, &[], s.user.password(), &code);
    assert!(
        logged_in(&out),
        "su with password and code failed: {}\ndaemon log:\n{}",
        out.describe(),
        s.env.daemon.log()
    );
    assert!(s
        .env
        .daemon
        .log()
        .contains(&format!("login-success user={} service=su", s.user.name)));
}
