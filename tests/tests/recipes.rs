//! Every PAM recipe the README, ctl/README.md and pam_twofactor(8) ship
//! ends the stack at a wrong password, before the module (issue 18, item
//! 2): the module never acts for a user whose password was wrong. Each
//! recipe's password step under real libpam (pam-harness, a private
//! service directory) with the built module and the real daemon: a wrong
//! password gets no code prompt and never reaches the daemon (a user
//! without a method shows it: a login that reaches the daemon logs
//! `login-no-method`), the right one does. The sshd recipe over real sshd
//! is in sshd.rs, the pam-auth-update profile in deb.rs. Root only (real
//! users with real passwords).

use twofactor_tests::sshd::{pam_stack, DEBIAN_COMMON_AUTH, REQUISITE_PASSWORD};
use twofactor_tests::{need_root, Enrolled, PamService, TestUser, CODE_PROMPT};

fn a_wrong_password_never_reaches_the_module(password_step: &str) {
    let s = Enrolled::with_defaults();
    let args = format!("bus={}", s.env.bus.plain_address());
    let pam = PamService::with_text("tft-recipe", &pam_stack(password_step, &args));
    let wrong = format!("{}-not", s.user.password());

    let run = pam
        .login(&s.user.name)
        .answer(&wrong)
        .answer(s.code_now())
        .run();
    assert_eq!(run.auth, "PAM_AUTH_ERR", "{}", run.describe());
    assert_eq!(
        run.prompts.len(),
        1,
        "only the password: {}",
        run.describe()
    );
    assert!(
        !run.prompts[0].text.contains("erification"),
        "{}",
        run.describe()
    );

    let plain = TestUser::new();
    let refused = pam
        .login(&plain.name)
        .answer(format!("{}-not", plain.password()))
        .run();
    assert_eq!(refused.auth, "PAM_AUTH_ERR", "{}", refused.describe());
    let control = pam.login(&plain.name).answer(plain.password()).run();
    assert_eq!(control.result, "PAM_SUCCESS", "{}", control.describe());
    let log = s.env.daemon.log();
    assert_eq!(
        log.matches(&format!("login-no-method user={} ", plain.name))
            .count(),
        1,
        "only the login with the right password reached the daemon:\n{log}"
    );

    // The right password, then the code: in.
    let run = pam
        .login(&s.user.name)
        .answer(s.user.password())
        .answer(s.code_now())
        .run();
    assert_eq!(run.result, "PAM_SUCCESS", "{}", run.describe());
    assert_eq!(
        run.prompts.last().map(|p| p.text.as_str()),
        Some(CODE_PROMPT),
        "{}",
        run.describe()
    );
}

/// `@include common-auth` (sudo, su, login, sshd): Debian's shape, as
/// pam-auth-update writes it.
#[test]
fn debian_common_auth_ends_at_a_wrong_password() {
    if !need_root!() {
        return;
    }
    a_wrong_password_never_reaches_the_module(DEBIAN_COMMON_AUTH);
}

/// `auth requisite pam_unix.so`, for a stack written without common-auth.
#[test]
fn requisite_pam_unix_ends_at_a_wrong_password() {
    if !need_root!() {
        return;
    }
    a_wrong_password_never_reaches_the_module(REQUISITE_PASSWORD);
}
