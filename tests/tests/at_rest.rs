//! Secrets at rest (issue 7, part 6): the app secret and the backup codes
//! an enrolment stored are not in the database files in any form a copy
//! could use (the secret's bytes, its base32 text, a code or its first
//! group); the key file rotates with the daemon stopped, and the app goes
//! on working with the new key. The real daemon, the built twofactorctl and
//! module, codes from oathtool.

use twofactor_tests::{conversation, totp, Enrolled, Env, TestUser};

/// Every byte the daemon keeps in its state directory.
fn state_bytes(env: &Env) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(env.daemon.state_dir())
        .expect("state dir")
        .flatten()
    {
        all.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_copy_of_the_database_holds_no_secret_and_no_backup_code() {
    if !twofactor_tests::need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let pam = env.pam("");
    let user = TestUser::new();
    let e = env.ctl().enroll_app(&user);
    let compact = e.compact_secret();
    let backup = conversation::backup_codes_in(&e.output.stdout());
    assert_eq!(backup.len(), 10, "{}", e.output.describe());
    let bytes = state_bytes(&env);
    let secret = totp::base32_decode(&compact).expect("base32 secret");
    assert!(
        !contains(&bytes, &secret),
        "the secret's bytes are in the database"
    );
    assert!(
        !contains(&bytes, compact.as_bytes()),
        "the base32 secret is in the database"
    );
    for code in &backup {
        let first = code.split('-').next().unwrap_or_default();
        assert!(!contains(&bytes, code.as_bytes()), "{code} in the database");
        assert!(
            !contains(&bytes, first.as_bytes()),
            "the selector {first} of a backup code is in the database in clear"
        );
    }
    // Still usable through the daemon, which holds the key.
    pam.login(&user.name)
        .answer(&backup[0])
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn the_key_rotates_with_the_daemon_stopped_and_the_app_goes_on() {
    if !twofactor_tests::need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    let key_file = twofactor_tests::daemon::key_file_for(&s.env.daemon.state_dir());
    let before = std::fs::read_to_string(&key_file).expect("key file");
    // While the daemon runs: refused, and every value still opens.
    let busy = s.env.daemon.rotate_key();
    assert!(!busy.success(), "{}", busy.describe());
    assert!(
        busy.stderr().contains("stop twofactord first"),
        "{}",
        busy.describe()
    );
    totp::ensure_step_margin(3);
    s.login(s.code_now()).assert_result("PAM_SUCCESS");

    s.env.stop_daemon();
    let out = s.env.daemon.rotate_key();
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout().contains("with the new key"),
        "{}",
        out.describe()
    );
    let after = std::fs::read_to_string(&key_file).expect("key file");
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(keys(&after).len(), 1, "only the new key is left");
    assert!(
        keys(&before).iter().all(|k| !after.contains(k.as_str())),
        "the old key is gone"
    );
    s.env.restart_daemon();
    s.login(totp::code_at_step_offset(&s.secret, 1))
        .assert_result("PAM_SUCCESS");
}
