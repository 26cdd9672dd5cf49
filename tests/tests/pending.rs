//! Nothing a login does changes the account before the whole PAM stack has
//! succeeded (issue 7, part 1). PAM tells a module nothing about the modules
//! before it, so a wrong password may come first: the enrolment at the
//! prompt and a recovery code are kept pending in the daemon and committed
//! only from `pam_sm_acct_mgmt`, which libpam runs after a successful
//! `pam_authenticate`.
//!
//! The stack is the README's recipe: `auth required pam_unix.so`, then the
//! module; the module in the account phase too. The built module under real
//! libpam (pam-harness), the real daemon on a private bus, real users with
//! real passwords (root only).

use serde_json::json;
use twofactor_tests::conversation::{self, Conversation, ENROL_CODE_PROMPT};
use twofactor_tests::{admin, need_root, totp, Env, PamService, TestUser, CODE_PROMPT};

/// pam_unix for the password, then the module; the module also in the
/// account phase.
fn password_then_code(env: &Env) -> PamService {
    let so = twofactor_tests::pam_module_so();
    PamService::with_text(
        "tft-stack",
        &format!(
            "auth required pam_unix.so\n\
             auth required {so} bus={bus}\n\
             account required pam_unix.so\n\
             account required {so}\n",
            so = so.display(),
            bus = env.bus.plain_address()
        ),
    )
}

/// The module ran in the harness's process without starting a thread
/// (not even while it waited for the daemon) and left no descriptor open
/// after pam_end (issue 11: "starts no thread and leaves nothing behind").
fn assert_left_nothing_behind(run: &twofactor_tests::PamRun) {
    let Some(host) = &run.host else {
        panic!("the harness printed no host line: {}", run.describe());
    };
    assert_eq!(host["threads_most"], host["threads_before"], "{host}");
    assert_eq!(host["threads_after"], host["threads_before"], "{host}");
    assert_eq!(host["fds_after"], host["fds_before"], "{host}");
}

fn status(env: &Env, user: &TestUser) -> serde_json::Value {
    env.ctl().status_json(user)
}

#[test]
fn wrong_password_then_a_whole_enrolment_stores_nothing() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = password_then_code(&env);
    let user = TestUser::new();
    admin::set_policy(&env, true, &[]);

    let wrong = format!("{}-not", user.password());
    let at = conversation::enrol_at_login_ending(
        &pam.login(&user.name),
        &[&wrong],
        totp::code_now,
        "PAM_AUTH_ERR",
    );
    assert_eq!(at.backup_codes.len(), 10, "{}", at.run.describe());
    assert_eq!(at.run.auth, "PAM_AUTH_ERR", "{}", at.run.describe());
    assert_eq!(at.run.account, "", "the account phase never ran");
    assert!(
        !at.run
            .infos
            .iter()
            .any(|i| i.contains("is now set up for your account")),
        "a refused login must not say the method was set up: {}",
        at.run.describe()
    );
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!([]), "{s}");
    assert_eq!(s["backup_codes_left"], 0, "{s}");
    // The attacker's secret and codes are worth nothing: the next login
    // (right password) enrols afresh, and its backup codes are new.
    let next = conversation::enrol_at_login(&pam.login(&user.name), &[user.password()]);
    assert_ne!(next.shown.secret, at.shown.secret);
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!(["app"]), "{s}");
    for code in &at.backup_codes {
        assert!(!next.backup_codes.contains(code));
    }
    let discarded = format!("login-change-discarded user={}", user.name);
    let log = env.daemon.wait_log(&discarded);
    assert!(log.contains(&discarded), "{log}");
}

#[test]
fn right_password_and_enrolment_is_stored_by_the_account_phase() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = password_then_code(&env);
    let user = TestUser::new();
    admin::set_policy(&env, true, &[]);
    let at = conversation::enrol_at_login(&pam.login(&user.name), &[user.password()]);
    assert_eq!(at.run.auth, "PAM_SUCCESS", "{}", at.run.describe());
    assert_eq!(at.run.account, "PAM_SUCCESS", "{}", at.run.describe());
    // The connection lived from the auth phase to the account phase's commit.
    assert_left_nothing_behind(&at.run);
    assert!(
        at.end_turn
            .infos
            .iter()
            .any(|i| i == "Two-factor authentication is now set up for your account."),
        "{:?}",
        at.end_turn
    );
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!(["app"]), "{s}");
    assert_eq!(s["backup_codes_left"], 10, "{s}");
    // The stored secret is the one shown: the next login takes its code.
    totp::ensure_step_margin(3);
    let run = pam
        .login(&user.name)
        .answer(user.password())
        .answer(totp::code_at_step_offset(&at.shown.secret, 1))
        .run();
    run.assert_result("PAM_SUCCESS");
    assert_left_nothing_behind(&run);
}

#[test]
fn an_application_that_never_runs_the_account_phase_stores_nothing() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let user = TestUser::new();
    admin::set_policy(&env, true, &[]);
    let mut c = Conversation::start(&pam.login(&user.name).without_account_phase());
    let t = c.next_turn();
    t.assert_prompt(ENROL_CODE_PROMPT, true);
    let shown = conversation::read_shown(&t.info_text());
    c.answer(totp::code_now(&shown.secret));
    c.next_turn();
    c.answer("yes");
    let run = c.finish();
    assert_eq!(run.auth, "PAM_SUCCESS", "{}", run.describe());
    assert_eq!(run.account, "", "{}", run.describe());
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!([]), "{s}");
    assert_eq!(s["backup_codes_left"], 0, "{s}");
    // The daemon forgot the login when its connection went away.
    let discarded = format!("login-change-discarded user={}", user.name);
    let log = env.daemon.wait_log("why=connection-closed");
    assert!(
        log.contains(&discarded) && log.contains("why=connection-closed"),
        "{log}"
    );
}

#[test]
fn recovery_code_after_a_wrong_password_is_not_used_up() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = password_then_code(&env);
    let user = TestUser::new();
    env.ctl().enroll_app(&user);
    let (code, _) = admin::reset(&env, &user.name);

    let wrong = format!("{}-not", user.password());
    let at = conversation::enrol_at_login_ending(
        &pam.login(&user.name),
        &[&wrong, &code],
        totp::code_now,
        "PAM_AUTH_ERR",
    );
    at.before_turns[1].assert_prompt(CODE_PROMPT, false);
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!([]), "{s}");
    assert_eq!(
        admin::user_json(&env, &user.name)["recovery_pending"],
        true,
        "the recovery code is still there"
    );
    // The owner, with the right password, still uses it.
    let owner = conversation::enrol_at_login(&pam.login(&user.name), &[user.password(), &code]);
    assert_ne!(owner.shown.secret, at.shown.secret);
    let s = status(&env, &user);
    assert_eq!(s["methods"], json!(["app"]), "{s}");
    assert_eq!(
        admin::user_json(&env, &user.name)["recovery_pending"],
        false
    );
}
