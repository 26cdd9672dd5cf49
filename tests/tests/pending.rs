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
use twofactor_tests::groups::TestGroup;
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

/// One enrolment at the prompt inside a running conversation: the code
/// prompt (the secret shown above it), the app's code, the backup codes,
/// "yes". Returns the secret shown.
fn enrol_in(c: &mut Conversation) -> String {
    let code_turn = c.next_turn();
    code_turn.assert_prompt(ENROL_CODE_PROMPT, true);
    let shown = conversation::read_shown(&code_turn.info_text());
    totp::ensure_step_margin(3);
    c.answer(totp::code_now(&shown.secret));
    c.next_turn()
        .assert_prompt(conversation::ENROL_CONFIRM_PROMPT, true);
    c.answer("yes");
    shown.secret
}

/// How the second user of a retried handle gets through the module
/// without leaving a change of their own pending.
#[derive(Clone, Copy)]
enum Second {
    /// They have the app: password, then their code.
    HasApp,
    /// The policy (limited to a group of the first user) does not apply to
    /// them and they have no method: the password alone.
    Outside,
}

/// `login` (util-linux) keeps one PAM handle: after a failed
/// `pam_authenticate` it asks for a name again and authenticates again on
/// the same handle, and runs `pam_acct_mgmt` once one attempt succeeded
/// (issue 18, item 1). `first` gives a WRONG password and then goes
/// through the whole enrolment at the prompt with a secret of the
/// caller's; `second` gives their own password and gets through as `how`
/// says, which leaves no change of theirs pending. The second success
/// must not commit the first attempt's change: `first` has no method, and
/// the secret typed for them is worth nothing.
fn a_retry_as_another_user_commits_nothing_of_the_first(how: Second) {
    let env = Env::with_defaults();
    let pam = password_then_code(&env);
    let (first, second) = (TestUser::new(), TestUser::new());
    let _group = match how {
        Second::HasApp => {
            admin::set_policy(&env, true, &[]);
            None
        }
        Second::Outside => {
            let g = TestGroup::new();
            g.add(&first);
            admin::set_policy(&env, true, &["--groups", &g.name]);
            Some(g)
        }
    };
    let second_secret = match how {
        Second::HasApp => Some(
            conversation::enrol_at_login(&pam.login(&second.name), &[second.password()])
                .shown
                .secret,
        ),
        Second::Outside => None,
    };

    let login = pam.login(&first.name).retry_as(&second.name);
    let mut c = Conversation::start(&login);
    c.next_turn().prompt.expect("the first password prompt");
    c.answer(format!("{}-not", first.password()));
    let typed_for_first = enrol_in(&mut c);
    // pam_unix failed the first attempt; the same handle asks again.
    c.next_turn().prompt.expect("the second password prompt");
    c.answer(second.password());
    if let Some(secret) = &second_secret {
        c.next_turn().assert_prompt(CODE_PROMPT, false);
        totp::ensure_step_margin(3);
        c.answer(totp::code_at_step_offset(secret, 1));
    }
    let end = c.next_turn();
    let run = c.finish();
    assert_eq!(
        end.result.as_deref(),
        Some("PAM_SUCCESS"),
        "{}",
        run.describe()
    );
    assert_eq!(run.account, "PAM_SUCCESS", "{}", run.describe());

    let s = status(&env, &first);
    assert_eq!(
        s["methods"],
        json!([]),
        "the first user's change was committed: {s}"
    );
    assert_eq!(s["backup_codes_left"], 0, "{s}");
    let discarded = format!("login-change-discarded user={}", first.name);
    let log = env.daemon.wait_log(&discarded);
    assert!(log.contains(&discarded), "{log}");
    // The secret typed at the first attempt opens nothing: the first user's
    // next login (right password) enrols afresh.
    let next = conversation::enrol_at_login(&pam.login(&first.name), &[first.password()]);
    assert_ne!(next.shown.secret, typed_for_first);
}

#[test]
fn a_retry_as_a_user_with_the_app_does_not_commit_the_first_users_enrolment() {
    if !need_root!() {
        return;
    }
    a_retry_as_another_user_commits_nothing_of_the_first(Second::HasApp);
}

#[test]
fn a_retry_as_a_user_outside_the_policy_does_not_commit_the_first_users_enrolment() {
    if !need_root!() {
        return;
    }
    a_retry_as_another_user_commits_nothing_of_the_first(Second::Outside);
}

/// The same user again on the same handle: the first attempt (wrong
/// password) set up a method; the second (right password) must not commit
/// it but enrol afresh. (The second attempt's own pending change replaces
/// the first's on the handle, which frees it, so this holds even without
/// the module's discard; the two tests above are the ones that need it.)
#[test]
fn a_retry_as_the_same_user_discards_the_first_attempts_change() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = password_then_code(&env);
    let user = TestUser::new();
    admin::set_policy(&env, true, &[]);
    let login = pam.login(&user.name).retry_as(&user.name);
    let mut c = Conversation::start(&login);
    c.next_turn().prompt.expect("the first password prompt");
    c.answer(format!("{}-not", user.password()));
    let first = enrol_in(&mut c);
    c.next_turn().prompt.expect("the second password prompt");
    c.answer(user.password());
    let second = enrol_in(&mut c);
    let end = c.next_turn();
    let run = c.finish();
    assert_eq!(
        end.result.as_deref(),
        Some("PAM_SUCCESS"),
        "{}",
        run.describe()
    );
    assert_ne!(first, second);
    // What is stored is the second attempt's secret: its code logs in.
    totp::ensure_step_margin(3);
    let run = pam
        .login(&user.name)
        .answer(user.password())
        .answer(totp::code_at_step_offset(&second, 1))
        .run();
    run.assert_result("PAM_SUCCESS");
}

/// The audit claims no more than the daemon knows (issue 18, item 8): a
/// right code after which the PAM stack fails is `second-factor-accepted`,
/// then `login-not-completed` when the handle ends; never `login-success`.
/// The same code path on a stack that succeeds is `login-success`, logged
/// by the account phase.
#[test]
fn a_login_the_stack_refuses_after_the_module_is_not_a_success() {
    if !need_root!() {
        return;
    }
    let s = twofactor_tests::Enrolled::with_defaults();
    let so = twofactor_tests::pam_module_so();
    // The module passes, then something after it refuses (as pam_unix does
    // after a wrong password on a stack that asks the code first).
    let refused = PamService::with_text(
        "tft-then-deny",
        &format!(
            "auth required {so} bus={bus}\n\
             auth required pam_deny.so\n\
             account required {so}\n\
             account required pam_permit.so\n",
            so = so.display(),
            bus = s.env.bus.plain_address()
        ),
    );
    // This step's code now, the next step's (within the ±1 window) for the
    // second login.
    totp::ensure_step_margin(6);
    let later = totp::code_at_step_offset(&s.secret, 1);
    let run = refused.login(&s.user.name).answer(s.code_now()).run();
    assert_eq!(run.auth, "PAM_AUTH_ERR", "{}", run.describe());
    let name = &s.user.name;
    let log = s.env.daemon.wait_log("login-not-completed");
    assert!(
        log.contains(&format!("second-factor-accepted user={name} "))
            && log.contains(&format!("login-not-completed user={name} "))
            && log.contains("why=connection-closed"),
        "{log}"
    );
    assert!(
        !log.contains("login-success"),
        "a login libpam refused was logged as a success:\n{log}"
    );

    // The same user and method on the stack that lets them in.
    let run = s.login(later);
    assert_eq!(run.result, "PAM_SUCCESS", "{}", run.describe());
    assert_eq!(run.account, "PAM_SUCCESS", "{}", run.describe());
    let log = s
        .env
        .daemon
        .wait_log(&format!("login-success user={name} "));
    assert_eq!(
        log.matches("login-success").count(),
        1,
        "one login succeeded:\n{log}"
    );
}
