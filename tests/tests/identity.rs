//! One account, one identity (issue 7, part 2): a second passwd entry with
//! the same uid (an alias, as `toor` is for root) reaches the same account
//! as the user's own name, in Login1, Account1 and Admin1 alike: the alias
//! is asked for the user's code, failures count against one account, and
//! an administrator naming the alias acts on the user. Real users in
//! /etc/passwd (root only), the real daemon on a private bus, the built
//! module under real libpam.

use twofactor_tests::{admin, need_root, totp, Env, TestUser, CODE_PROMPT, INVALID_CODE};

#[test]
fn a_same_uid_alias_is_the_same_account() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let user = TestUser::new();
    let e = env.ctl().enroll_app(&user);
    let secret = e.compact_secret();
    let alias = user.alias();

    // The alias is asked for the user's code and not let in without it.
    let wrong = pam.login(&alias.name).answer("").run();
    wrong.assert_result("PAM_AUTH_ERR").assert_asked_code();
    totp::ensure_step_margin(3);
    let code = totp::code_at_step_offset(&secret, 0);
    pam.login(&alias.name)
        .answer(&code)
        .run()
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    // The code is used up for the user's own name too.
    pam.login(&user.name)
        .answer(&code)
        .run()
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);

    // Failures through the alias count against the one account.
    let other = totp::wrong_code(&totp::code_at_step_offset(&secret, 1));
    pam.login(&alias.name)
        .answer(&other)
        .run()
        .assert_result("PAM_AUTH_ERR");
    let report = admin::user_json(&env, &user.name);
    assert_eq!(report["failures"], 2, "{report}");

    // An administrator naming the alias sees and resets the user.
    let by_alias = admin::user_json(&env, &alias.name);
    assert_eq!(by_alias["user"], user.name.as_str(), "{by_alias}");
    assert_eq!(
        by_alias["methods"],
        serde_json::json!(["app"]),
        "{by_alias}"
    );
    let (_, out) = admin::reset(&env, &alias.name);
    assert!(
        out.stdout().contains(&user.name),
        "the reset names the account: {}",
        out.describe()
    );
    let report = admin::user_json(&env, &user.name);
    assert_eq!(report["methods"], serde_json::json!([]), "{report}");
    assert_eq!(report["recovery_pending"], true, "{report}");
    // And the alias is now asked for the recovery code, like the user.
    pam.login(&alias.name)
        .answer("")
        .run()
        .assert_result("PAM_AUTH_ERR");
    let run = pam.login(&alias.name).answer("").run();
    assert_eq!(run.prompts.len(), 1, "{}", run.describe());
    assert_eq!(run.prompts[0].text, CODE_PROMPT, "{}", run.describe());
}
