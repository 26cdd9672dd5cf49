//! Nothing secret travels in a D-Bus signal (signals go to every listener
//! the policy allows): the whole bus is watched with dbus-monitor during an
//! enrolment, logins and a disable.

use twofactor_tests::bus::BusMonitor;
use twofactor_tests::{need_root, totp, DaemonConfig, Env, TestUser};

fn hex(s: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn no_secret_in_any_signal() {
    if !need_root!() {
        return;
    }
    let env = Env::start(&DaemonConfig::default());
    let monitor = BusMonitor::start(&env.bus);
    let user = TestUser::new();
    let e = env.ctl().enroll_app(&user);
    let secret = e.compact_secret();
    let pam = env.pam("");
    totp::ensure_step_margin(3);
    let code = totp::code_now(&secret);
    pam.login(&user.name).answer(totp::wrong_code(&code)).run();
    pam.login(&user.name).answer(&code).run();
    let next = totp::code_at_step_offset(&secret, 1);
    let out = env.ctl().disable(&user, "app", user.password(), &next);
    assert!(out.success(), "{}", out.describe());

    let messages = monitor.messages();
    // The monitor really saw the traffic (else this test proves nothing).
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("method call") && m.contains("member=Answer")),
        "dbus-monitor saw no Answer call:\n{}",
        monitor.text()
    );
    let secrets = [
        ("secret", secret.clone()),
        ("grouped secret", e.secret.clone()),
        ("URI", e.uri.clone()),
        ("confirmation code", e.code.clone()),
        ("login code", code.clone()),
        ("password", user.password().to_string()),
    ];
    for m in messages.iter().filter(|m| m.starts_with("signal ")) {
        for (what, s) in &secrets {
            assert!(
                !m.contains(s.as_str()) && !m.contains(&hex(s)),
                "a signal carries the {what}:\n{m}"
            );
        }
    }
}
