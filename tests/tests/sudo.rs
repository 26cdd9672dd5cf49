//! sudo and su with the module and a hostile DBUS_SYSTEM_BUS_ADDRESS: they
//! run the module inside a setuid process started by the user; a module that
//! honoured the variable would let the user point it at a daemon that says
//! yes. Root only.
//!
//! Observed: sudo 1.9 does not pass DBUS_SYSTEM_BUS_ADDRESS on to its PAM
//! modules (a module built to read the variable is still refused under sudo),
//! so the sudo test shows the real-world sudo path is safe but cannot catch a
//! module that reads the environment; the su test (su keeps the caller's
//! environment during PAM) and access.rs (the harness) do catch it.

use twofactor_tests::sshd::{su_as_user, SudoSetup};
use twofactor_tests::{need_root, Enrolled};

fn logged_in_su(out: &twofactor_tests::proc::Finished) -> bool {
    out.success() && out.stdout().lines().any(|l| l == "SU-OK")
}

/// su with no bus= on the PAM line and a hostile DBUS_SYSTEM_BUS_ADDRESS
/// (pointing at a daemon where the user is enrolled and the code is right):
/// refused, and the daemon on that bus was never asked.
#[test]
fn su_ignores_hostile_dbus_system_bus_address() {
    if !need_root!() {
        return;
    }
    assert!(
        !std::path::Path::new("/run/dbus/system_bus_socket").exists(),
        "this test needs a machine without a running system bus"
    );
    let s = Enrolled::with_defaults();
    let hostile = s.env.bus.address().to_string();
    let out = su_as_user(
        &s.user,
        "",
        &[
            ("DBUS_SYSTEM_BUS_ADDRESS", hostile.as_str()),
            ("DBUS_SESSION_BUS_ADDRESS", hostile.as_str()),
            ("DBUS_STARTER_ADDRESS", hostile.as_str()),
        ],
        s.user.password(),
        &s.code_now(),
    );
    assert!(
        !logged_in_su(&out),
        "su let the user in through a bus named in the environment: {}",
        out.describe()
    );
    assert!(
        out.stderr()
            .contains("Two-factor authentication is unavailable"),
        "expected the module's refusal: {}",
        out.describe()
    );
    let log = s.env.daemon.log();
    assert!(
        !log.contains(&format!("user={}", s.user.name)) || !log.contains("service=su"),
        "the daemon on the hostile bus was asked:\n{log}"
    );
}

/// Control for the su test: with bus= naming the same daemon, su with the
/// right password and code works, and a wrong code is refused.
#[test]
fn su_with_bus_argument_and_right_code_works() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let args = format!("bus={}", s.env.bus.plain_address());
    let code = s.code_now();
    let wrong = su_as_user(
        &s.user,
        &args,
        &[],
        s.user.password(),
        &twofactor_tests::totp::wrong_code(&code),
    );
    assert!(!logged_in_su(&wrong), "{}", wrong.describe());
    let out = su_as_user(&s.user, &args, &[], s.user.password(), &code);
    assert!(
        logged_in_su(&out),
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

/// The user is enrolled on a private bus whose daemon would accept the
/// right code. With no bus= on the PAM line the module must use the fixed
/// system socket (no system bus runs here) and refuse, whatever
/// DBUS_SYSTEM_BUS_ADDRESS says.
#[test]
fn sudo_ignores_hostile_dbus_system_bus_address() {
    if !need_root!() {
        return;
    }
    assert!(
        !std::path::Path::new("/run/dbus/system_bus_socket").exists(),
        "this test needs a machine without a running system bus"
    );
    let s = Enrolled::with_defaults();
    let sudo = SudoSetup::new(&s.user, "");
    let hostile = s.env.bus.address().to_string();
    let out = sudo.run(
        &s.user,
        &[
            ("DBUS_SYSTEM_BUS_ADDRESS", hostile.as_str()),
            ("DBUS_SESSION_BUS_ADDRESS", hostile.as_str()),
            ("DBUS_STARTER_ADDRESS", hostile.as_str()),
        ],
        s.user.password(),
        &s.code_now(),
    );
    assert!(
        !out.success(),
        "sudo let the user in through a bus named in the environment: {}",
        out.describe()
    );
    let log = s.env.daemon.log();
    assert!(
        !log.contains(&format!("login-success user={}", s.user.name))
            && !log.contains(&format!("service={}", sudo.service)),
        "the daemon on the hostile bus was asked:\n{log}"
    );
}

/// Control: the same set-up with the bus named on the PAM line works, so the
/// refusal above is the module ignoring the environment, not a broken sudo.
#[test]
fn sudo_with_bus_argument_and_right_code_works() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let sudo = SudoSetup::new(&s.user, &format!("bus={}", s.env.bus.plain_address()));
    let out = sudo.run(&s.user, &[], s.user.password(), &s.code_now());
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
    // And a wrong code is refused.
    let code = s.code_now();
    let out = sudo.run(
        &s.user,
        &[],
        s.user.password(),
        &twofactor_tests::totp::wrong_code(&code),
    );
    assert!(!out.success(), "{}", out.describe());
}
