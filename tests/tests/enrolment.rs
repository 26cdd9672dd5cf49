//! Enrolment through the built twofactorctl, run as the user, against the
//! real daemon (password re-checked through pam_unix under libpam-wrapper).

use twofactor_tests::qr;
use twofactor_tests::{need_root, totp, DaemonConfig, Env, TestUser};

/// Everything secret that went through a test must be absent from the
/// daemon's log.
fn assert_not_in_log(log: &str, secrets: &[(&str, &str)]) {
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "empty {what}");
        assert!(
            !log.contains(secret),
            "the daemon log contains the {what}:\n{log}"
        );
    }
}

fn no_method(env: &Env, user: &TestUser) {
    let out = env.ctl().run(user, &["status"], b"");
    assert!(out.success(), "{}", out.describe());
    let methods_line = out
        .stdout()
        .lines()
        .find(|l| l.starts_with("Methods:"))
        .map(str::to_lowercase)
        .unwrap_or_default();
    assert!(
        !methods_line.is_empty() && !methods_line.contains("app"),
        "{}",
        out.describe()
    );
    let status = env.ctl().status_json(user);
    assert_eq!(status["user"], user.name.as_str(), "{status}");
    assert_eq!(status["methods"], serde_json::json!([]), "{status}");
    // And a login does not ask for a code.
    env.pam("")
        .login(&user.name)
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_no_prompt();
}

#[test]
fn enable_app_shows_qr_secret_and_uri_then_logins_ask_for_the_code() {
    if !need_root!() {
        return;
    }
    let env = Env::start(&DaemonConfig {
        issuer: "TftIssuer".into(),
        ..DaemonConfig::default()
    });
    let user = TestUser::new();
    no_method(&env, &user);
    let e = env.ctl().enroll_app(&user);
    let stdout = e.output.stdout();

    // Secret: base32 of 160 bits, grouped for typing.
    let secret = e.compact_secret();
    let bytes = totp::base32_decode(&secret)
        .unwrap_or_else(|| panic!("secret is not base32: {:?}", e.secret));
    assert_eq!(bytes.len(), 20, "secret must be 160 bits: {:?}", e.secret);

    // URI: otpauth://totp/ISSUER:user@host?secret=...&issuer=...
    assert!(e.uri.starts_with("otpauth://totp/"), "{}", e.uri);
    let label = qr::percent_decode(
        e.uri["otpauth://totp/".len()..]
            .split('?')
            .next()
            .unwrap_or_default(),
    );
    let expected_label = format!("{}@{}", user.name, twofactor_tests::hostname());
    assert!(
        label == expected_label || label == format!("TftIssuer:{expected_label}"),
        "label {label:?} should be {expected_label:?} (optionally prefixed by the issuer)"
    );
    let params = qr::query_params(&e.uri);
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        param("secret").as_deref(),
        Some(secret.as_str()),
        "{}",
        e.uri
    );
    assert_eq!(param("issuer").as_deref(), Some("TftIssuer"), "{}", e.uri);
    for (k, v) in [("algorithm", "SHA1"), ("digits", "6"), ("period", "30")] {
        if let Some(got) = param(k) {
            assert_eq!(got, v, "{k} in {}", e.uri);
        }
    }

    // The QR code drawn in the terminal holds exactly the URI.
    let lines = qr::block_lines(&stdout);
    assert!(lines.len() >= 10, "no QR code drawn:\n{stdout}");
    assert_eq!(
        qr::decode(&lines).as_deref(),
        Some(e.uri.as_str()),
        "the QR code does not read back as the URI:\n{stdout}"
    );
    assert!(
        stdout.contains("Time based"),
        "manual entry should say 'Time based':\n{stdout}"
    );

    let status = env.ctl().status_json(&user);
    assert_eq!(status["methods"], serde_json::json!(["app"]), "{status}");
    assert_eq!(status["enrolment_pending"], false, "{status}");

    // Logins now ask for the code; the code from the shown secret works.
    totp::ensure_step_margin(3);
    let code = totp::code_now(&secret);
    let pam = env.pam("");
    pam.login(&user.name)
        .answer(&code)
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();

    // status remembers the login; the human form lists the method.
    let status = env.ctl().status_json(&user);
    assert_eq!(status["last_method"], "app", "{status}");
    let last = status["last_login"].as_i64().unwrap_or(0);
    assert!(
        (totp::now() - last).abs() < 120,
        "last_login {last}: {status}"
    );
    let out = env.ctl().run(&user, &["status"], b"");
    assert!(out.success(), "{}", out.describe());
    let methods_line = out
        .stdout()
        .lines()
        .find(|l| l.starts_with("Methods:"))
        .map(str::to_lowercase)
        .unwrap_or_default();
    assert!(methods_line.contains("app"), "{}", out.describe());

    let log = env.daemon.log();
    assert!(
        log.contains(&format!("enrol user={} method=app", user.name)),
        "enrolment not audited:\n{log}"
    );
    assert_not_in_log(
        &log,
        &[
            ("secret", secret.as_str()),
            ("grouped secret", e.secret.as_str()),
            ("URI", e.uri.as_str()),
            ("confirmation code", e.code.as_str()),
            ("login code", code.as_str()),
            ("password", user.password()),
        ],
    );
}

/// Without an issuer in the config, the issuer is the host name.
#[test]
fn default_issuer_is_the_host_name() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let e = env.ctl().enroll_app(&user);
    let params = qr::query_params(&e.uri);
    let issuer = params
        .iter()
        .find(|(k, _)| k == "issuer")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        issuer,
        Some(twofactor_tests::hostname().as_str()),
        "{}",
        e.uri
    );
}

#[test]
fn wrong_password_enrols_nothing() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let wrong = format!("{}x", user.password());
    let out = env.ctl().run(
        &user,
        &["enable", "app"],
        format!("{wrong}\n000000\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let all = format!("{}{}", out.stdout(), out.stderr());
    assert!(
        !all.contains("otpauth://") && !all.contains("Secret:"),
        "{all}"
    );
    assert!(
        all.to_lowercase().contains("password"),
        "the refusal should say why: {all}"
    );
    no_method(&env, &user);
    let status = env.ctl().status_json(&user);
    assert_eq!(status["enrolment_pending"], false, "{status}");
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("user={}", user.name)) && log.contains("reauth-failure"),
        "{log}"
    );
    assert_not_in_log(&log, &[("wrong password", wrong.as_str())]);
}

#[test]
fn wrong_confirmation_code_leaves_method_off() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let e = env.ctl().enable_app_with(&user, user.password(), |secret| {
        totp::ensure_step_margin(3);
        totp::wrong_code(&totp::code_now(secret))
    });
    assert_eq!(e.output.status.code(), Some(1), "{}", e.output.describe());
    assert!(
        e.output.stderr().contains("not enabled"),
        "{}",
        e.output.describe()
    );
    no_method(&env, &user);
}

#[test]
fn disable_needs_the_password() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let e = env.ctl().enroll_app(&user);
    let wrong = format!("x{}", user.password());
    let out = env.ctl().disable(&user, "app", &wrong, "000000");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\ndaemon log:\n{}",
        out.describe(),
        env.daemon.log()
    );
    assert_eq!(env.ctl().methods(&user), vec!["app".to_string()]);
    // Still asks for a code.
    env.pam("")
        .login(&user.name)
        .answer(totp::wrong_code(&totp::code_now(&e.compact_secret())))
        .run()
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code();

    // The right password alone does not do it: a current second factor
    // is asked too (issue 18, item 3), and a wrong one is refused.
    totp::ensure_step_margin(6);
    let code = totp::code_now(&e.compact_secret());
    for (without, what) in [("", "no code"), ("000000", "a wrong code")] {
        let without = if without == code { "111111" } else { without };
        let out = env.ctl().disable(&user, "app", user.password(), without);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", out.describe());
        assert!(
            out.stderr().contains("second factor"),
            "{what}: {}",
            out.describe()
        );
        assert_eq!(env.ctl().methods(&user), vec!["app".to_string()]);
    }
    let out = env.ctl().disable(&user, "app", user.password(), &code);
    assert!(out.success(), "{}", out.describe());
    no_method(&env, &user);
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("disable user={} method=app", user.name)),
        "{log}"
    );
    assert_not_in_log(
        &log,
        &[
            ("password", user.password()),
            ("wrong password", wrong.as_str()),
        ],
    );
}

#[test]
fn status_of_a_new_user() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let s = env.ctl().status_json(&user);
    assert_eq!(s["user"], user.name.as_str(), "{s}");
    assert_eq!(s["methods"], serde_json::json!([]), "{s}");
    assert_eq!(s["failures"], 0, "{s}");
    assert_eq!(s["locked_until"], 0, "{s}");
    assert_eq!(s["enrolment_pending"], false, "{s}");
}

/// The password re-check counts an attempt before PAM is asked, and runs
/// one check per account at a time (issue 7): 50 concurrent `EnrollApp`
/// calls with a wrong password, from 50 connections of the user, reach PAM
/// (real pam_unix) at most `max_failures` times; the account then waits.
#[test]
fn concurrent_wrong_passwords_reach_pam_at_most_the_limit() {
    if !need_root!() {
        return;
    }
    let config = DaemonConfig {
        max_failures: 3,
        lockout_seconds: 600,
        max_lockout_seconds: 600,
        ..DaemonConfig::default()
    };
    let env = Env::start(&config);
    let user = TestUser::new();
    let calls = serde_json::json!([{
        "interface": "org.twofactor.Account1",
        "method": "EnrollApp",
        "signature": "ayay",
        "args": [{"bytes": "not-the-password"}, {"bytes": ""}]
    }]);
    let answers: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (bus, calls) = (&env.bus, calls.clone());
                let ids = user.ids();
                scope.spawn(move || bus.py_calls(Some(ids), calls).remove(0))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(
        answers.iter().all(|a| a["error"].is_string()),
        "a wrong password was accepted: {answers:?}"
    );
    let log = env.daemon.log();
    let asked = log
        .lines()
        .filter(|l| l.contains(&format!("reauth-failure user={}", user.name)))
        .count();
    assert!(
        (1..=3).contains(&asked),
        "PAM checked {asked} of 50 concurrent wrong passwords (limit 3):\n{log}"
    );
    // More waves until the limit: still never more than 3 reach PAM.
    for _ in 0..3 {
        for a in env.bus.py_calls(Some(user.ids()), calls.clone()) {
            assert!(a["error"].is_string(), "{a}");
        }
    }
    let log = env.daemon.log();
    let asked = log
        .lines()
        .filter(|l| l.contains(&format!("reauth-failure user={}", user.name)))
        .count();
    assert_eq!(asked, 3, "{log}");
    // Locked now: the right password is not even checked.
    let out = env.ctl().run(
        &user,
        &["enable", "app"],
        format!("{}\n", user.password()).as_bytes(),
    );
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr().contains("try again in"), "{}", out.describe());
}
