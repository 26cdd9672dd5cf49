//! sudo with the module and a hostile DBUS_SYSTEM_BUS_ADDRESS: sudo runs the
//! module with the user's environment; a module that honoured the variable
//! would let the user point it at a daemon that says yes. Root only.

use twofactor_tests::sshd::SudoSetup;
use twofactor_tests::{need_root, Enrolled};

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
    assert!(s
        .env
        .daemon
        .log()
        .contains(&format!("login-success user={} service={}", s.user.name, sudo.service)));
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
