//! Bad input straight on the bus (not through the module or the CLI, which
//! may filter it): oversized or odd arguments get a clear error and change
//! nothing; the daemon keeps serving.

use serde_json::json;
use twofactor_tests::{need_root, Enrolled, CODE_PROMPT};

fn call(iface: &str, method: &str, sig: &str, args: serde_json::Value) -> serde_json::Value {
    json!({"interface": iface, "method": method, "signature": sig, "args": args})
}

#[test]
fn oversized_and_odd_arguments_are_refused() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let l = "org.twofactor.Login1";
    let a = "org.twofactor.Account1";
    let big = "9".repeat(200_000);
    let r = s.env.bus.py_calls(
        None,
        json!([
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": big, "service": "svc", "rhost": "", "tty": ""}])
            ),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": big, "rhost": "", "tty": ""}])
            ),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": "svc", "rhost": big, "tty": ""}])
            ),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": "", "service": "svc", "rhost": "", "tty": ""}])
            ),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": "svc", "rhost": "", "tty": ""}])
            ),
            call(l, "Answer", "say", json!(["$4", {"bytes": big}])),
            call(l, "Cancel", "s", json!([big])),
        ]),
    );
    for (i, what) in [(0, "huge user"), (1, "huge service"), (2, "huge rhost")] {
        assert_eq!(
            r[i]["error"], "org.twofactor.Error.InvalidInput",
            "{what}: {}",
            r[i]
        );
    }
    // An empty user name: refused one way or another, never accepted.
    let empty = &r[3];
    assert!(
        empty["error"].is_string() || empty["ok"][1][1] != 2,
        "empty user name accepted: {empty}"
    );
    // A huge answer is refused (Deny with a message), not counted.
    assert_eq!(r[5]["ok"][0][1], 3, "huge answer: {}", r[5]);
    assert!(r[6]["error"].is_string(), "{}", r[6]);
    assert_eq!(s.failures(), 0);

    // Begin's details: the user is required and every value is a string;
    // an unknown detail is ignored (a newer module may send more).
    let r = s.env.bus.py_calls(
        None,
        json!([
            call(l, "Begin", "a{sv}", json!([{"service": "svc"}])),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": 1000, "service": "svc"}])
            ),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": "svc", "ssh_key": "SHA256:x"}])
            ),
        ]),
    );
    for (i, what) in [(0, "no user"), (1, "a number as user")] {
        assert_eq!(
            r[i]["error"], "org.twofactor.Error.InvalidInput",
            "{what}: {}",
            r[i]
        );
    }
    assert_eq!(r[2]["ok"][1][2], CODE_PROMPT, "unknown detail: {}", r[2]);

    let r = s.env.bus.py_calls(
        Some(s.user.ids()),
        json!([
            call(
                a,
                "EnrollApp",
                "ayay",
                json!([{"bytes": big}, {"bytes": ""}])
            ),
            call(a, "ConfirmApp", "ss", json!([big, "123456"])),
            call(
                a,
                "Disable",
                "sayay",
                json!(["app", {"bytes": big}, {"bytes": ""}])
            ),
            call(
                a,
                "Disable",
                "sayay",
                json!([big, {"bytes": s.user.password()}, {"bytes": ""}])
            ),
            call(
                a,
                "Disable",
                "sayay",
                json!(["sms", {"bytes": s.user.password()}, {"bytes": ""}])
            ),
        ]),
    );
    for (i, what) in [
        (0, "huge password"),
        (1, "huge enrolment id"),
        (2, "huge password"),
        (3, "huge method"),
        (4, "unknown method"),
    ] {
        assert!(r[i]["error"].is_string(), "{what}: {}", r[i]);
    }
    assert_eq!(
        r[0]["error"], "org.twofactor.Error.InvalidInput",
        "{}",
        r[0]
    );

    // Nothing changed, and the daemon still works.
    assert_eq!(s.env.ctl().methods(&s.user), vec!["app".to_string()]);
    let run = s.login(s.code_now());
    run.assert_result("PAM_SUCCESS");
    let r = s.env.bus.py_calls(
        None,
        json!([call(
            l,
            "Begin",
            "a{sv}",
            json!([{"user": s.user.name, "service": "svc", "rhost": "", "tty": ""}])
        )]),
    );
    assert_eq!(r[0]["ok"][1][2], CODE_PROMPT, "{r:?}");
}

/// Abandoned prompts (issue 7): logins begun from connections that then
/// leave the bus (the process was killed, the PAM handle ended) do not
/// hold slots. 5000 of them, more than the daemon's whole table of logins
/// in progress, and then root's login still works.
#[test]
fn thousands_of_abandoned_prompts_do_not_block_logins() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    const SCRIPT: &str = r#"
import sys, dbus, dbus.lowlevel
address, user, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = refused = 0
for i in range(n):
    c = dbus.bus.BusConnection(address)
    msg = dbus.lowlevel.MethodCallMessage("org.twofactor.Daemon1", "/org/twofactor/Daemon1",
                                          "org.twofactor.Login1", "Begin")
    msg.append({"user": user, "service": "tft-abandon", "rhost": "192.0.2.7", "tty": "ssh"},
               signature="a{sv}")
    try:
        c.send_message_with_reply_and_block(msg, 30)
        started += 1
    except dbus.exceptions.DBusException as e:
        refused += 1
    c.close()
print(started, refused)
"#;
    let out = twofactor_tests::proc::run(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(s.env.bus.plain_address())
            .arg(&s.user.name)
            .arg("5000")
            .env_clear()
            .env("PATH", twofactor_tests::PATH),
        b"",
        std::time::Duration::from_secs(300),
    );
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        out.stdout().trim(),
        "5000 0",
        "every abandoned login could start: {}",
        out.describe()
    );
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}
