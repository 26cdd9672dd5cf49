//! Concurrent logins for one user with one valid code: the code is accepted
//! exactly once (the step is recorded in the transaction that accepts it).

use twofactor_tests::{need_root, DaemonConfig, Enrolled, INVALID_CODE};

const LOGINS: usize = 50;

#[test]
fn fifty_concurrent_logins_one_code_one_success() {
    if !need_root!() {
        return;
    }
    // max_failures high enough that the 49 refusals do not lock the account
    // before the one right answer is checked.
    let s = Enrolled::new(&DaemonConfig {
        max_failures: 100,
        ..DaemonConfig::default()
    });
    // A few seconds of the step left: the logins take about two; past the
    // step's end the code would still be inside the ±1 window anyway.
    twofactor_tests::totp::ensure_step_margin(5);
    let code = twofactor_tests::totp::code_now(&s.secret);
    let runs = twofactor_tests::proc::all_at_once(LOGINS, || s.login(&code));
    let successes = runs.iter().filter(|r| r.result == "PAM_SUCCESS").count();
    let refusals: Vec<_> = runs.iter().filter(|r| r.result != "PAM_SUCCESS").collect();
    assert_eq!(
        successes,
        1,
        "expected exactly one success out of {LOGINS}; results: {:?}",
        runs.iter().map(|r| r.result.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(refusals.len(), LOGINS - 1);
    for r in refusals {
        r.assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
    }
    // And the code stays used afterwards.
    s.login(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
}
