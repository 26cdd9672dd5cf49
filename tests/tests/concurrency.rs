//! Concurrent logins for one user: with one valid code, the code is
//! accepted exactly once (the step is recorded in the transaction that
//! accepts it); with wrong codes, no more are checked than the failure limit
//! allows (the limit is checked and the failure counted in one step).

use twofactor_tests::conversation;
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

const RACING: usize = 40;

/// Forty logins for one account from one source wait at the code prompt
/// and then answer a wrong code at once: exactly `max_failures` are checked
/// (a verdict on the code), the rest are refused as locked without one. On
/// either store, through the same atomic step (`ratelimit::attempt`);
/// tests/tests/fleet.rs races the same over two daemons sharing PostgreSQL.
#[test]
fn forty_wrong_codes_at_once_are_checked_at_most_max_failures_times() {
    if !need_root!() {
        return;
    }
    const MAX_FAILURES: usize = 3;
    let s = Enrolled::new(&DaemonConfig {
        max_failures: MAX_FAILURES as u32,
        lockout_seconds: 3600,
        max_lockout_seconds: 3600,
        ..DaemonConfig::default()
    });
    let wrong = twofactor_tests::totp::wrong_code(&s.code_now());
    let logins = (0..RACING)
        .map(|_| s.pam.login(&s.user.name).rhost("192.0.2.67").spawn())
        .collect();
    let runs = conversation::answer_together(logins, &wrong);
    let log = s.env.daemon.log();
    assert_eq!(
        conversation::verdicts_and_locks(&runs, &log),
        (MAX_FAILURES, RACING - MAX_FAILURES),
        "(verdicts, refused as locked) of {RACING} wrong codes\n{log}"
    );
    assert_eq!(
        conversation::failures_audited(&log, &s.user.name, "wrong-code"),
        MAX_FAILURES,
        "{log}"
    );
    assert_eq!(
        conversation::failures_audited(&log, &s.user.name, "locked"),
        RACING - MAX_FAILURES,
        "{log}"
    );
    assert_eq!(s.failures(), MAX_FAILURES as u64);
}
