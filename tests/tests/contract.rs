//! The daemon's replies on the wire match the contract written down in
//! proto/interfaces/*.xml (which the PAM module, its own D-Bus client, relies
//! on): every method's reply body has exactly the signature of its out
//! arguments.

use serde_json::json;
use twofactor_tests::{need_root, totp, Enrolled, TestUser};

fn call(iface: &str, method: &str, signature: &str, args: serde_json::Value) -> serde_json::Value {
    json!({"interface": iface, "method": method, "signature": signature, "args": args})
}

fn assert_signature(r: &serde_json::Value, iface: &str, method: &str) {
    twofactor_tests::contract::assert_reply_matches(r, iface, method);
}

#[test]
fn login1_replies_match_the_contract() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let l = "org.twofactor.Login1";
    let wrong = totp::wrong_code(&s.code_now());
    let r = s.env.bus.py_calls(
        None,
        json!([
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": "tft-contract", "rhost": "", "tty": ""}])
            ),
            call(l, "Answer", "say", json!(["$0", {"bytes": wrong}])),
            call(
                l,
                "Begin",
                "a{sv}",
                json!([{"user": s.user.name, "service": "tft-contract", "rhost": "", "tty": ""}])
            ),
            call(l, "Cancel", "s", json!(["$2"])),
        ]),
    );
    assert_signature(&r[0], l, "Begin");
    assert_signature(&r[1], l, "Answer");
    assert_signature(&r[3], l, "Cancel");
}

#[test]
fn account1_replies_match_the_contract() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::with_defaults();
    let a = "org.twofactor.Account1";
    let r = s.env.bus.py_calls(
        Some(s.user.ids()),
        json!([call(a, "Status", "", json!([]))]),
    );
    assert_signature(&r[0], a, "Status");

    let u = TestUser::new();
    let r = s.env.bus.py_calls(
        Some(u.ids()),
        json!([call(
            a,
            "EnrollApp",
            "ayay",
            json!([{"bytes": u.password()}, {"bytes": ""}])
        )]),
    );
    assert_signature(&r[0], a, "EnrollApp");
    // Whatever the shape, find the enrolment id and the secret among the
    // returned strings: the secret is the 32-character base32 one.
    let flat: Vec<String> = r[0]["ok"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| match v {
            serde_json::Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        })
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(flat.len(), 3, "{r:?}");
    let (id, secret) = (&flat[0], &flat[1]);
    totp::ensure_step_margin(3);
    let code = totp::code_now(secret);
    // Disabling takes a current second factor too: the next step's code.
    let next = totp::code_at_step_offset(secret, 1);
    let r = s.env.bus.py_calls(
        Some(u.ids()),
        json!([
            call(a, "ConfirmApp", "ss", json!([id, code])),
            call(
                a,
                "Disable",
                "sayay",
                json!(["app", {"bytes": u.password()}, {"bytes": next}])
            ),
        ]),
    );
    assert_signature(&r[0], a, "ConfirmApp");
    assert_signature(&r[1], a, "Disable");
}
