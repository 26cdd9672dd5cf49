//! The mandatory policy (issue 4) end to end: set by root with the built
//! twofactorctl, applied by the real daemon at logins through the built
//! pam_twofactor.so under real libpam; enrolment inside the login with a
//! code computed independently by oathtool from the secret shown.

use std::time::Duration;

use serde_json::json;
use twofactor_tests::admin::{self, AdminConfig};
use twofactor_tests::conversation::{
    self, read_shown, Conversation, ENROL_CODE_PROMPT, ENROL_CONFIRM_PROMPT,
};
use twofactor_tests::groups::TestGroup;
use twofactor_tests::{need_root, qr, totp, Env, PamService, TestUser, INVALID_CODE};

const REQUIRED_INTRO: &str =
    "Two-factor authentication is required for your account. Set up an authenticator app now.";
const NOT_CURRENT: &str = "That is not the current code of the app; try again.";
const SETUP_FAILED: &str =
    "Setup failed: too many wrong codes. Nothing was changed; log in again to start over.";
const NOT_FINISHED: &str = "Setup not finished; nothing was changed. Log in again to start over.";

fn policy_json(env: &Env) -> serde_json::Value {
    let out = admin::root_ok(env, &["admin", "policy", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("admin policy --json: {e}: {}", out.describe()))
}

/// A login of a user without a method, password accepted: passes at once,
/// nothing asked, nothing shown.
fn passes_without_2fa(pam: &PamService, user: &TestUser) {
    let run = pam.login(&user.name).run();
    run.assert_result("PAM_SUCCESS")
        .assert_no_prompt()
        .assert_errors(&[]);
    assert!(run.infos.is_empty(), "{}", run.describe());
}

/// The login starts the enrolment (first question: the app's code, after
/// the required-intro, the QR code, the secret and the URI); the test then
/// abandons it.
fn must_enrol(pam: &PamService, user: &TestUser) {
    let mut c = Conversation::start(&pam.login(&user.name));
    let t = c.next_turn();
    t.assert_prompt(ENROL_CODE_PROMPT, true);
    assert_eq!(
        t.infos.first().map(String::as_str),
        Some(REQUIRED_INTRO),
        "{t:?}"
    );
    read_shown(&t.info_text());
    let run = c.finish();
    assert_ne!(run.result, "PAM_SUCCESS", "{}", run.describe());
}

fn methods(env: &Env, user: &TestUser) -> serde_json::Value {
    env.ctl().status_json(user)["methods"].clone()
}

/// Policy on: a user without a method is enrolled inside the login. The
/// conversation shows the QR code (which reads back as the URI), the
/// secret and the URI, asks for the code (echo on), shows ten backup codes,
/// asks for "yes", and only then lets the user in. The app is then active:
/// the next login asks for a code, and the backup codes shown work.
#[test]
fn policy_on_enrols_a_user_without_method_inside_the_login() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let pam = env.pam("");
    passes_without_2fa(&pam, &user);

    let out = admin::set_policy(&env, true, &[]);
    assert!(out.stdout().contains("Policy saved"), "{}", out.describe());
    let p = policy_json(&env);
    assert_eq!(p["mandatory"], true, "{p}");
    assert_eq!(p["groups"], json!([]), "{p}");
    assert_eq!(p["from"], "", "{p}");
    assert_eq!(p["updated_by"], "root", "{p}");

    let at = conversation::enrol_at_login(&pam.login(&user.name), &[]);
    // What was shown with the code question.
    assert_eq!(
        at.code_turn.infos.first().map(String::as_str),
        Some(REQUIRED_INTRO)
    );
    assert!(at.code_turn.errors.is_empty(), "{:?}", at.code_turn);
    let bytes = totp::base32_decode(&at.shown.secret)
        .unwrap_or_else(|| panic!("secret is not base32: {:?}", at.shown.grouped_secret));
    assert_eq!(bytes.len(), 20, "160-bit secret");
    assert!(
        at.shown.uri.starts_with("otpauth://totp/"),
        "{}",
        at.shown.uri
    );
    let params = qr::query_params(&at.shown.uri);
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "secret" && *v == at.shown.secret),
        "the URI carries another secret than the Secret line: {}",
        at.shown.uri
    );
    let label = qr::percent_decode(
        at.shown.uri["otpauth://totp/".len()..]
            .split('?')
            .next()
            .unwrap_or_default(),
    );
    assert!(
        label.ends_with(&format!("{}@{}", user.name, twofactor_tests::hostname())),
        "label {label:?}"
    );
    assert!(
        at.shown.qr_lines.len() >= 10,
        "no QR code drawn:\n{}",
        at.shown.text
    );
    assert_eq!(
        qr::decode(&at.shown.qr_lines).as_deref(),
        Some(at.shown.uri.as_str()),
        "the QR code does not read back as the URI:\n{}",
        at.shown.text
    );
    // The backup codes, then "yes", then in.
    assert_eq!(at.backup_codes.len(), 10, "{:?}", at.confirm_turn);
    let mut unique = at.backup_codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    assert_eq!(
        at.run
            .prompts
            .iter()
            .map(|p| (p.text.as_str(), p.echo))
            .collect::<Vec<_>>(),
        vec![(ENROL_CODE_PROMPT, true), (ENROL_CONFIRM_PROMPT, true)]
    );
    assert!(
        at.end_turn.infos.iter().any(|i| i.contains("now set up")),
        "{:?}",
        at.end_turn
    );

    let status = env.ctl().status_json(&user);
    assert_eq!(status["methods"], json!(["app"]), "{status}");
    assert_eq!(status["backup_codes_left"], 10, "{status}");
    assert_eq!(status["enrolment_pending"], false, "{status}");

    // The next login asks for the code; the app's current code works (the
    // enrolment used the previous step).
    let code = totp::code_now(&at.shown.secret);
    pam.login(&user.name)
        .answer(totp::wrong_code(&code))
        .run()
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    pam.login(&user.name)
        .answer(&code)
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    pam.login(&user.name)
        .answer(&at.backup_codes[3])
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();

    let log = env.daemon.log();
    assert!(
        log.contains(&format!("enrol user={}", user.name)) && log.contains("via=login why=policy"),
        "enrolment at login not audited:\n{log}"
    );
    assert!(log.contains("admin-policy by=root mandatory=on"), "{log}");
    let mut secrets = vec![
        at.shown.secret.clone(),
        at.shown.grouped_secret.clone(),
        at.shown.uri.clone(),
        at.code.clone(),
        user.password().to_string(),
    ];
    secrets.extend(at.backup_codes.iter().cloned());
    for s in secrets {
        assert!(!log.contains(&s), "a secret ({s:?}) in the daemon log");
    }
}

/// A wrong code at the enrolment is asked again, three tries in all; the
/// confirmation too; an abandoned enrolment (conversation ends) stores
/// nothing; each login shows a new secret.
#[test]
fn enrolment_at_login_stores_nothing_unless_confirmed() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let pam = env.pam("");
    admin::set_policy(&env, true, &[]);
    let nothing_stored = |when: &str| {
        let s = env.ctl().status_json(&user);
        assert_eq!(s["methods"], json!([]), "{when}: {s}");
        assert_eq!(s["backup_codes_left"], 0, "{when}: {s}");
    };

    // Three wrong codes (a well-formed wrong one, a malformed one, another
    // wrong one): asked again twice, then refused.
    let mut c = Conversation::start(&pam.login(&user.name));
    let t = c.next_turn();
    t.assert_prompt(ENROL_CODE_PROMPT, true);
    let first_secret = read_shown(&t.info_text()).secret;
    totp::ensure_step_margin(4);
    let wrong = totp::wrong_code(&totp::code_now(&first_secret));
    c.answer(&wrong);
    let t = c.next_turn();
    t.assert_prompt(ENROL_CODE_PROMPT, true);
    assert_eq!(t.errors, vec![NOT_CURRENT.to_string()], "{t:?}");
    c.answer("12345x");
    let t = c.next_turn();
    t.assert_prompt(ENROL_CODE_PROMPT, true);
    assert_eq!(t.errors, vec![NOT_CURRENT.to_string()], "{t:?}");
    c.answer(&wrong);
    let t = c.next_turn();
    assert_eq!(t.result.as_deref(), Some("PAM_AUTH_ERR"), "{t:?}");
    assert_eq!(t.errors, vec![SETUP_FAILED.to_string()], "{t:?}");
    c.finish();
    nothing_stored("after three wrong codes");
    assert!(
        env.daemon.log().contains(&format!(
            "enrol-failure user={} method=app reason=wrong-code-at-login",
            user.name
        )),
        "{}",
        env.daemon.log()
    );

    // Right code, then three answers that are not "yes": refused.
    let mut c = Conversation::start(&pam.login(&user.name));
    let t = c.next_turn();
    let second = read_shown(&t.info_text());
    assert_ne!(
        second.secret, first_secret,
        "every login shows a new secret"
    );
    totp::ensure_step_margin(4);
    c.answer(totp::code_now(&second.secret));
    let t = c.next_turn();
    t.assert_prompt(ENROL_CONFIRM_PROMPT, true);
    let shown_codes = conversation::backup_codes_in(&t.info_text());
    assert_eq!(shown_codes.len(), 10, "{t:?}");
    for (i, answer) in ["no", "", "y"].iter().enumerate() {
        c.answer(answer);
        let t = c.next_turn();
        if i < 2 {
            t.assert_prompt(ENROL_CONFIRM_PROMPT, true);
            assert_eq!(
                t.errors,
                vec!["Please save the backup codes, then type yes.".to_string()]
            );
        } else {
            assert_eq!(t.result.as_deref(), Some("PAM_AUTH_ERR"), "{t:?}");
            assert_eq!(t.errors, vec![NOT_FINISHED.to_string()], "{t:?}");
        }
    }
    c.finish();
    nothing_stored("after no confirmation");

    // Right code, then the conversation ends at the confirmation.
    let mut c = Conversation::start(&pam.login(&user.name));
    let t = c.next_turn();
    let third = read_shown(&t.info_text());
    totp::ensure_step_margin(4);
    c.answer(totp::code_now(&third.secret));
    c.next_turn().assert_prompt(ENROL_CONFIRM_PROMPT, true);
    let run = c.finish();
    assert!(
        run.result != "PAM_SUCCESS" && !run.result.is_empty(),
        "{}",
        run.describe()
    );
    nothing_stored("after an abandoned enrolment");
    // The codes shown in a refused enrolment are worth nothing: the user
    // is still asked to enrol, not for a code.
    must_enrol(&pam, &user);
}

/// Turning the policy off removes nobody's method: users who enrolled
/// (with twofactorctl, or at a login under the policy) are still asked for
/// a code; users without a method pass again.
#[test]
fn policy_off_removes_nothing_and_enrolled_users_are_still_asked() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let a = TestUser::new();
    let a_secret = env.ctl().enroll_app(&a).compact_secret();
    let b = TestUser::new();
    let c = TestUser::new();
    admin::set_policy(&env, true, &[]);
    let c_secret = conversation::enrol_at_login(&pam.login(&c.name), &[])
        .shown
        .secret;
    must_enrol(&pam, &b);

    let out = admin::set_policy(&env, false, &[]);
    assert!(out.stdout().contains("Policy saved"), "{}", out.describe());
    assert_eq!(policy_json(&env)["mandatory"], false);
    passes_without_2fa(&pam, &b);
    for (user, secret) in [(&a, &a_secret), (&c, &c_secret)] {
        assert_eq!(methods(&env, user), json!(["app"]), "{}", user.name);
        totp::ensure_step_margin(3);
        let code = totp::code_now(secret);
        pam.login(&user.name)
            .answer(totp::wrong_code(&code))
            .run()
            .assert_result("PAM_AUTH_ERR")
            .assert_asked_code();
        pam.login(&user.name)
            .answer(&code)
            .run()
            .assert_result("PAM_SUCCESS")
            .assert_asked_code();
    }
    assert_eq!(env.ctl().status_json(&c)["backup_codes_left"], 10);
    assert!(
        env.daemon
            .log()
            .contains("admin-policy by=root mandatory=off"),
        "{}",
        env.daemon.log()
    );
}

/// `--groups`: the policy applies to members of those groups only
/// (supplementary membership counts), and follows membership changes.
#[test]
fn policy_for_groups_applies_to_members_only() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let g = TestGroup::new();
    let other = TestGroup::new();
    let member = TestUser::new();
    let outsider = TestUser::new();
    g.add(&member);
    other.add(&outsider);
    admin::set_policy(&env, true, &["--groups", &g.name]);
    let p = policy_json(&env);
    assert_eq!(p["groups"], json!([g.name]), "{p}");

    must_enrol(&pam, &member);
    passes_without_2fa(&pam, &outsider);
    assert_eq!(admin::user_json(&env, &member.name)["policy_applies"], true);
    assert_eq!(
        admin::user_json(&env, &outsider.name)["policy_applies"],
        false
    );
    // Human form of the policy names the group.
    let out = admin::root_ok(&env, &["admin", "policy"]);
    assert!(
        out.stdout().contains(&format!("members of {}", g.name)),
        "{}",
        out.describe()
    );

    // Two groups; and membership is read at each login.
    admin::set_policy(
        &env,
        true,
        &["--groups", &format!("{},{}", g.name, other.name)],
    );
    must_enrol(&pam, &outsider);
    g.remove(&member);
    passes_without_2fa(&pam, &member);
    assert!(
        env.daemon.log().contains(&format!(
            "admin-policy by=root mandatory=on groups=\"{},{}\"",
            g.name, other.name
        )),
        "{}",
        env.daemon.log()
    );
}

fn local_date(offset_days: i64) -> String {
    let out = twofactor_tests::proc::run(
        std::process::Command::new("date")
            .arg("-d")
            .arg(format!("{offset_days} days"))
            .arg("+%Y-%m-%d"),
        b"",
        Duration::from_secs(10),
    );
    assert!(out.success(), "{}", out.describe());
    out.stdout().trim().to_string()
}

/// `--from DATE`: before the date users without a method are let in with a
/// reminder naming the date; from the date (today included) they must
/// enrol.
#[test]
fn policy_from_a_date_reminds_before_and_applies_from_that_day() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let user = TestUser::new();
    let tomorrow = local_date(1);
    admin::set_policy(&env, true, &["--from", &tomorrow]);
    assert_eq!(policy_json(&env)["from"], tomorrow.as_str());
    let run = pam.login(&user.name).run();
    run.assert_result("PAM_SUCCESS")
        .assert_no_prompt()
        .assert_errors(&[]);
    assert_eq!(run.infos.len(), 1, "{}", run.describe());
    assert!(
        run.infos[0].contains(&tomorrow) && run.infos[0].contains("twofactorctl enable app"),
        "the reminder should name the date and what to do: {}",
        run.describe()
    );
    assert_eq!(admin::user_json(&env, &user.name)["policy_applies"], false);
    let out = admin::root_ok(&env, &["admin", "policy"]);
    assert!(out.stdout().contains("announced"), "{}", out.describe());

    for from in [local_date(0), "2000-01-01".to_string()] {
        admin::set_policy(&env, true, &["--from", &from]);
        must_enrol(&pam, &user);
        assert_eq!(admin::user_json(&env, &user.name)["policy_applies"], true);
    }
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("from={tomorrow}")),
        "the date is audited:\n{log}"
    );
    assert!(
        log.contains(&format!("login-no-method user={}", user.name)),
        "{log}"
    );
}

/// While the policy applies, the last method cannot be removed:
/// `twofactorctl disable app|all` is refused with an explanation of what to
/// do instead, and the app keeps working. Where it does not apply (other
/// groups, or off), the user may remove it.
#[test]
fn last_method_cannot_be_removed_while_the_policy_applies() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let user = TestUser::new();
    let secret = env.ctl().enroll_app(&user).compact_secret();
    admin::set_policy(&env, true, &[]);
    for method in ["app", "all"] {
        let out = env.ctl().disable(&user, method, user.password(), "000000");
        assert_eq!(out.status.code(), Some(1), "{}", out.describe());
        assert!(out.stdout().is_empty(), "{}", out.describe());
        let err = out.stderr();
        assert!(
            err.contains("mandatory") && err.contains("twofactorctl enable app"),
            "disable {method}: the refusal should say why and what to do: {err}"
        );
        assert_eq!(methods(&env, &user), json!(["app"]));
    }
    totp::ensure_step_margin(3);
    pam.login(&user.name)
        .answer(totp::code_now(&secret))
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();

    // A policy for a group the user is not in: disabling is allowed.
    let g = TestGroup::new();
    admin::set_policy(&env, true, &["--groups", &g.name]);
    let next = totp::code_at_step_offset(&secret, 1);
    let out = env.ctl().disable(&user, "app", user.password(), &next);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(methods(&env, &user), json!([]));
    passes_without_2fa(&pam, &user);
}

/// The config file's `[policy]` is the initial value only: the first
/// `admin policy mandatory` replaces it for good, also after a restart.
#[test]
fn config_policy_is_the_initial_value_and_the_admin_setting_wins() {
    if !need_root!() {
        return;
    }
    let mut env = admin::start_env(
        &AdminConfig {
            policy_toml: Some("mandatory = true".into()),
            ..AdminConfig::default()
        },
        None,
    );
    let pam = env.pam("");
    let user = TestUser::new();
    let p = policy_json(&env);
    assert_eq!(p["mandatory"], true, "{p}");
    assert_eq!(p["updated_by"], "config", "{p}");
    must_enrol(&pam, &user);

    admin::set_policy(&env, false, &[]);
    passes_without_2fa(&pam, &user);
    env.restart_daemon();
    let p = policy_json(&env);
    assert_eq!(p["mandatory"], false, "{p}");
    assert_eq!(p["updated_by"], "root", "{p}");
    passes_without_2fa(&pam, &user);
}

/// Bad `--groups` or `--from` are refused (exit 2) and change nothing.
#[test]
fn bad_policy_arguments_change_nothing() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let nogroup = format!("tftnogroup{}", std::process::id());
    for args in [
        vec!["admin", "policy", "mandatory", "on", "--from", "2026-02-30"],
        vec!["admin", "policy", "mandatory", "on", "--from", "tomorrow"],
        vec!["admin", "policy", "mandatory", "on", "--groups", &nogroup],
        vec!["admin", "policy", "mandatory", "on", "--groups", "-x"],
        // The contract's rule (proto::group): no number, `$` only last.
        vec!["admin", "policy", "mandatory", "on", "--groups", "1000"],
        vec!["admin", "policy", "mandatory", "on", "--groups", "st$ff"],
    ] {
        let out = admin::root_ctl(&env, &args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.describe());
    }
    let p = policy_json(&env);
    assert_eq!(p["mandatory"], false, "{p}");
    // The daemon checks too: a direct call with a bad date or group name.
    let r = env.bus.py_calls(
        None,
        json!([
            {"interface": "org.twofactor.Admin1", "method": "SetPolicy", "signature": "bassay",
             "args": [true, [], "2026-13-01", {"bytes": ""}]},
            {"interface": "org.twofactor.Admin1", "method": "SetPolicy", "signature": "bassay",
             "args": [true, ["bad group\nname"], "", {"bytes": ""}]},
            {"interface": "org.twofactor.Admin1", "method": "SetPolicy", "signature": "bassay",
             "args": [true, ["1000"], "", {"bytes": ""}]},
            {"interface": "org.twofactor.Admin1", "method": "SetPolicy", "signature": "bassay",
             "args": [true, ["a$b"], "", {"bytes": ""}]},
        ]),
    );
    for x in &r {
        assert_eq!(x["error"], "org.twofactor.Error.InvalidInput", "{r:?}");
    }
    assert_eq!(policy_json(&env)["mandatory"], false);
}
