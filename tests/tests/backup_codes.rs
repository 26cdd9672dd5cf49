//! Backup codes (issue 3) end to end: made by the built twofactorctl
//! (`enable app`, `backup-codes`), typed at the login's code prompt of the
//! built pam_twofactor.so under real libpam (pam-harness), checked by the
//! real daemon on a private bus with the shipped policy.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use twofactor_tests::conversation::{backup_codes_in, is_backup_code, CODE_ALPHABET};
use twofactor_tests::ctl::Enrolment;
use twofactor_tests::{
    admin, need_root, totp, DaemonConfig, Env, PamService, TestUser, INVALID_CODE,
};

/// The line before the codes (ctl/src/commands/backup.rs CODES_HEADER).
const CODES_HEADER: &str =
    "Backup codes (each works once; keep them somewhere safe, away from the phone):";

/// The ten codes printed after CODES_HEADER on stdout.
fn printed_codes(stdout: &str) -> Vec<String> {
    let after = stdout
        .split_once(CODES_HEADER)
        .unwrap_or_else(|| panic!("no backup code header on stdout:\n{stdout}"))
        .1;
    let codes: Vec<String> = after
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Saved to "))
        .map(str::to_string)
        .collect();
    codes
}

/// Asserts the shape of a set: ten different codes, each `xxxx-xxxx-xxxx`
/// in the alphabet without 0/O/1/l/i.
fn assert_good_set(codes: &[String]) {
    assert_eq!(codes.len(), 10, "a set has ten codes: {codes:?}");
    for c in codes {
        assert!(
            is_backup_code(c),
            "{c:?} is not xxxx-xxxx-xxxx in {CODE_ALPHABET}"
        );
    }
    let mut unique = codes.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "codes repeat within a set: {codes:?}");
}

struct Setup {
    pam: PamService,
    env: Env,
    enrolment: Enrolment,
    codes: Vec<String>,
    user: TestUser,
}

fn setup(config: &DaemonConfig) -> Setup {
    let env = Env::start(config);
    let user = TestUser::new();
    let enrolment = env.ctl().enroll_app(&user);
    let stdout = enrolment.output.stdout();
    let enabled = stdout
        .find("Authenticator app enabled.")
        .unwrap_or_else(|| panic!("{}", enrolment.output.describe()));
    let header = stdout.find(CODES_HEADER).unwrap_or(0);
    assert!(
        enabled < header,
        "the codes come after the app is enabled: {stdout}"
    );
    let codes = printed_codes(&stdout);
    assert_good_set(&codes);
    for c in &codes {
        assert!(
            !enrolment.output.stderr().contains(c.as_str()),
            "a backup code on stderr: {}",
            enrolment.output.describe()
        );
    }
    let pam = env.pam("");
    Setup {
        pam,
        env,
        enrolment,
        codes,
        user,
    }
}

impl Setup {
    fn login(&self, answer: &str) -> twofactor_tests::PamRun {
        self.pam.login(&self.user.name).answer(answer).run()
    }
    fn left(&self) -> u64 {
        let s = self.env.ctl().status_json(&self.user);
        s["backup_codes_left"]
            .as_u64()
            .unwrap_or_else(|| panic!("no backup_codes_left in status --json: {s}"))
    }
}

/// `enable app` prints ten codes; at the same `Verification code: `
/// prompt each lets the user in once, with or without the `-`, in either
/// case; a used code is refused; status counts what is left (never the
/// codes); the audit line says that one was used and how many remain,
/// never the code.
#[test]
fn backup_code_logs_in_once_in_any_case_with_or_without_dash() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig::default());
    assert_eq!(s.left(), 10);

    let first = s.login(&s.codes[0]);
    first
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    assert!(
        !first.infos.iter().any(|i| i.contains("backup code")),
        "no warning with 9 left: {}",
        first.describe()
    );
    let again = s.login(&s.codes[0]);
    again
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    // Other spellings of a used code are the same code.
    s.login(&s.codes[0].to_uppercase().replace('-', ""))
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);

    for answer in [
        s.codes[1].to_uppercase().replace('-', ""),
        s.codes[2].to_uppercase(),
        s.codes[3].replace('-', ""),
        s.codes[4].replace('-', " "),
    ] {
        s.login(&answer)
            .assert_result("PAM_SUCCESS")
            .assert_asked_code();
    }
    assert_eq!(s.left(), 5);
    let status = s.env.ctl().status_json(&s.user);
    assert_eq!(status["last_method"], "backup-code", "{status}");
    assert_eq!(status["methods"], serde_json::json!(["app"]), "{status}");

    // Human status: the count, never a code.
    let out = s.env.ctl().run(&s.user, &["status"], b"");
    assert!(out.success(), "{}", out.describe());
    let line = out
        .stdout()
        .lines()
        .find(|l| l.starts_with("Backup codes left:"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no `Backup codes left:` line: {}", out.describe()));
    assert!(line.trim_end().ends_with(" 5"), "{line}");
    for c in &s.codes {
        assert!(!out.stdout().contains(c.as_str()), "{}", out.describe());
    }

    // The app's code still works beside the backup codes.
    totp::ensure_step_margin(3);
    s.login(&totp::code_now(&s.enrolment.compact_secret()))
        .assert_result("PAM_SUCCESS");

    let log = s.env.daemon.log();
    for left in [9, 8, 7, 6, 5] {
        let line = format!("backup-code-used user={} left={left}", s.user.name);
        assert!(log.contains(&line), "no audit line {line:?}:\n{log}");
    }
    assert!(
        log.contains(&format!(
            "login-success user={} service=tft-login",
            s.user.name
        )) && log.contains("method=backup-code"),
        "{log}"
    );
    assert!(
        log.contains(&format!("backup-codes-new user={} count=10", s.user.name)),
        "{log}"
    );
    for c in &s.codes {
        for form in [c.clone(), c.replace('-', ""), c.to_uppercase()] {
            assert!(
                !log.contains(&form),
                "a backup code in the daemon log:\n{log}"
            );
        }
    }
}

/// The login warns when two or fewer codes are left (and not before).
#[test]
fn login_warns_when_two_or_fewer_backup_codes_are_left() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig::default());
    for (i, code) in s.codes.iter().enumerate() {
        let left = 9 - i;
        let run = s.login(code);
        run.assert_result("PAM_SUCCESS").assert_errors(&[]);
        let warnings: Vec<&String> = run
            .infos
            .iter()
            .filter(|m| m.contains("backup code"))
            .collect();
        if left <= 2 {
            assert_eq!(
                warnings.len(),
                1,
                "{left} left: expected a warning: {}",
                run.describe()
            );
            let w = warnings[0];
            let count_said = match left {
                0 => w.contains("no backup codes left"),
                1 => w.contains("1 backup code left"),
                n => w.contains(&format!("{n} backup codes left")),
            };
            assert!(
                count_said && w.contains("twofactorctl backup-codes"),
                "the warning should say how many are left and what to do: {w:?}"
            );
        } else {
            assert!(
                warnings.is_empty(),
                "{left} left: no warning expected: {}",
                run.describe()
            );
        }
    }
    assert_eq!(s.left(), 0);
    // With none left, every backup code is refused.
    s.login(&s.codes[9])
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
}

/// `twofactorctl backup-codes` tells the user that the old set stops
/// working before the password is asked, makes a new set after the
/// password, and the old set stops working at once. A wrong password
/// changes nothing.
#[test]
fn new_set_voids_the_old_one_and_needs_the_password() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig::default());
    s.login(&s.codes[0]).assert_result("PAM_SUCCESS");

    let wrong = format!("{}x", s.user.password());
    let out = s.env.ctl().run(
        &s.user,
        &["backup-codes"],
        format!("{wrong}\n{}\n", s.codes[8]).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(
        backup_codes_in(&out.stdout()).is_empty(),
        "{}",
        out.describe()
    );
    assert_eq!(s.left(), 9, "a wrong password changed the set");
    s.login(&s.codes[1]).assert_result("PAM_SUCCESS");

    // Confirmed with a current second factor: here a backup code of the
    // set being replaced.
    let out = s.env.ctl().run(
        &s.user,
        &["backup-codes"],
        format!("{}\n{}\n", s.user.password(), s.codes[8]).as_bytes(),
    );
    assert!(out.success(), "{}", out.describe());
    let err = out.stderr();
    let notice = err
        .find("the 8 unused codes you have now stop working at once")
        .unwrap_or_else(|| panic!("not told that the 8 old codes stop working: {err}"));
    let prompt = err
        .find(&format!("Password for {}: ", s.user.name))
        .unwrap_or_else(|| panic!("no password prompt: {err}"));
    assert!(notice < prompt, "told after the password was asked: {err}");
    let new = printed_codes(&out.stdout());
    assert_good_set(&new);
    for c in &new {
        assert!(!s.codes.contains(c), "a new set repeats an old code");
        assert!(!err.contains(c.as_str()), "a code on stderr: {err}");
    }
    assert_eq!(s.left(), 10);

    // Every unused old code is refused now; the new ones work.
    for old in &s.codes[2..5] {
        s.login(old)
            .assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
    }
    s.login(&new[0]).assert_result("PAM_SUCCESS");
    s.login(&new[9].to_uppercase()).assert_result("PAM_SUCCESS");
    assert_eq!(s.left(), 8);
    let log = s.env.daemon.log();
    assert_eq!(
        log.matches(&format!("backup-codes-new user={} count=10", s.user.name))
            .count(),
        2,
        "{log}"
    );
    assert!(!log.contains(s.user.password()), "password in log");
}

/// `--save FILE`: a 0600 file of the user with a header naming the
/// account, the host and the date, and exactly the printed codes; never
/// over an existing file without `--force` (refused before anything
/// changes); never through a symbolic link, even with `--force`.
#[test]
fn saved_file_is_private_with_header_and_never_overwritten_or_followed() {
    if !need_root!() {
        return;
    }
    let env = Env::with_defaults();
    let user = TestUser::new();
    let file = user.home().join("codes.txt");
    let file_s = file.display().to_string();
    let e = env.ctl().enable_app_args(
        &user,
        &["enable", "app", "--save", &file_s],
        user.password(),
        |secret| {
            totp::ensure_step_margin(4);
            totp::code_at_step_offset(secret, -1)
        },
    );
    assert!(e.output.success(), "{}", e.output.describe());
    let printed = printed_codes(&e.output.stdout());
    assert_good_set(&printed);
    assert!(
        e.output
            .stdout()
            .contains(&format!("Saved to {file_s} (readable only by you).")),
        "{}",
        e.output.describe()
    );

    let meta = std::fs::symlink_metadata(&file).expect("the saved file");
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "file mode");
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid), "owner");
    let text = std::fs::read_to_string(&file).expect("read the saved file");
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    let field = |name: &str| {
        header
            .iter()
            .find_map(|l| l.strip_prefix(&format!("# {name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `# {name}:` header line:\n{text}"))
    };
    assert_eq!(field("Account"), user.name);
    assert_eq!(field("Host"), twofactor_tests::hostname());
    let date = proc_date();
    assert!(
        field("Made").starts_with(&date),
        "`Made` should be today ({date}):\n{text}"
    );
    assert_eq!(backup_codes_in(&text), printed, "file and stdout differ");

    // Exists, no --force: refused before the password, nothing changes.
    let before = std::fs::read(&file).unwrap();
    let out = env.ctl().run(
        &user,
        &["backup-codes", "--save", &file_s],
        format!("{}\n", user.password()).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    assert!(
        out.stderr().contains("--force") && !out.stderr().contains("Password for"),
        "refused before the password, naming --force: {}",
        out.describe()
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let pam = env.pam("");
    pam.login(&user.name)
        .answer(&printed[0])
        .run()
        .assert_result("PAM_SUCCESS");

    // A symbolic link is never followed, even with --force.
    let target = user.home().join("target.txt");
    twofactor_tests::write_file(&target, "do not touch\n", 0o644);
    chown(&target, &user);
    let link = user.home().join("link.txt");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    for force in [false, true] {
        let mut args = vec!["backup-codes", "--save"];
        let link_s = link.display().to_string();
        args.push(&link_s);
        if force {
            args.push("--force");
        }
        let out = env
            .ctl()
            .run(&user, &args, format!("{}\n", user.password()).as_bytes());
        assert_eq!(out.status.code(), Some(2), "{}", out.describe());
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "do not touch\n",
            "written through a symlink"
        );
    }
    // Nothing of that replaced the set: the second code still works.
    pam.login(&user.name)
        .answer(&printed[1])
        .run()
        .assert_result("PAM_SUCCESS");

    // --force replaces the user's own file with the new set.
    let out = env.ctl().run(
        &user,
        &["backup-codes", "--save", &file_s, "--force"],
        format!("{}\n{}\n", user.password(), printed[2]).as_bytes(),
    );
    assert!(out.success(), "{}", out.describe());
    let new = printed_codes(&out.stdout());
    assert_good_set(&new);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(backup_codes_in(&text), new);
    let meta = std::fs::symlink_metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    pam.login(&user.name)
        .answer(&printed[2])
        .run()
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
}

fn proc_date() -> String {
    let out = twofactor_tests::proc::run(
        std::process::Command::new("date").arg("+%Y-%m-%d"),
        b"",
        std::time::Duration::from_secs(10),
    );
    out.stdout().trim().to_string()
}

fn chown(path: &std::path::Path, user: &TestUser) {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
}

/// Twenty logins at once with the same backup code: exactly one succeeds.
#[test]
fn twenty_concurrent_logins_with_one_backup_code_one_success() {
    if !need_root!() {
        return;
    }
    const LOGINS: usize = 20;
    let s = setup(&DaemonConfig {
        max_failures: 100,
        ..DaemonConfig::default()
    });
    let code = s.codes[0].clone();
    let runs = twofactor_tests::proc::all_at_once(LOGINS, || s.login(&code));
    let results: Vec<&str> = runs.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(
        results.iter().filter(|r| **r == "PAM_SUCCESS").count(),
        1,
        "expected exactly one success: {results:?}"
    );
    for r in runs.iter().filter(|r| r.result != "PAM_SUCCESS") {
        r.assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
    }
    assert_eq!(s.left(), 9, "one code used, no more");
    let log = s.env.daemon.log();
    assert_eq!(
        log.matches("backup-code-used user=").count(),
        1,
        "one use audited:\n{log}"
    );
}

/// A flood of wrong backup codes (random ones, and ones that start like a
/// real code) is limited like wrong app codes: after max_failures the
/// account waits, and then even a right backup code is refused without
/// being used up; once an administrator unlocks it, that code works.
#[test]
fn flood_of_wrong_backup_codes_locks_out() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig {
        max_failures: 5,
        lockout_seconds: 600,
        max_lockout_seconds: 3600,
        ..DaemonConfig::default()
    });
    // Wrong codes of the right shape: no code of the set (random letters),
    // and the first group of a real code with a wrong rest.
    let forged_rest = if s.codes[0].ends_with("zzzz-zzzz") {
        "yyyy-yyyy"
    } else {
        "zzzz-zzzz"
    };
    let wrong = [
        "zzzz-zzzz-zzzz".to_string(),
        format!("{}-{forged_rest}", &s.codes[0][..4]),
    ];
    let started = std::time::Instant::now();
    let mut lock_messages = Vec::new();
    for i in 0..30 {
        let w = &wrong[i % 2];
        if s.codes.contains(w) {
            continue;
        }
        let run = s.login(w);
        run.assert_result("PAM_AUTH_ERR").assert_asked_code();
        if i < 5 {
            run.assert_errors(&[INVALID_CODE]);
        } else {
            assert_eq!(run.errors.len(), 1, "{}", run.describe());
            assert!(
                run.errors[0].starts_with("Too many failed attempts; try again in ")
                    && run.errors[0].ends_with(" seconds."),
                "attempt {}: expected the lockout message: {}",
                i + 1,
                run.describe()
            );
            lock_messages.push(run.errors[0].clone());
        }
    }
    assert_eq!(lock_messages.len(), 25);
    let elapsed = started.elapsed();
    // The right code while locked: refused with the wait, not used up.
    let run = s.login(&s.codes[0]);
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        run.errors.len() == 1 && run.errors[0].starts_with("Too many failed attempts"),
        "a right backup code while locked: {}",
        run.describe()
    );
    assert_eq!(s.left(), 10, "a refused attempt used up a code");
    let log = s.env.daemon.log();
    assert!(
        log.contains(&format!("lockout user={}", s.user.name)),
        "no lockout audit line:\n{log}"
    );
    assert!(
        log.contains("reason=wrong-backup-code") && log.contains("reason=locked"),
        "{log}"
    );
    eprintln!("31 refused backup-code logins took {elapsed:?}");

    admin::root_ok(&s.env, &["admin", "unlock", &s.user.name]);
    s.login(&s.codes[0])
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    assert_eq!(s.left(), 9);
}

/// `enable app` again (a new phone) makes a new set when the new app is
/// confirmed: the old codes stop working.
#[test]
fn enabling_a_new_app_replaces_the_set() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig::default());
    // The new app is confirmed with a current second factor: a backup code.
    let again = s
        .env
        .ctl()
        .replace_app_with(&s.user, s.user.password(), &s.codes[5], |secret| {
            totp::ensure_step_margin(3);
            totp::code_now(secret)
        });
    assert!(again.output.success(), "{}", again.output.describe());
    let new = printed_codes(&again.output.stdout());
    assert_good_set(&new);
    s.login(&s.codes[0])
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    s.login(&new[0]).assert_result("PAM_SUCCESS");
    assert_eq!(s.left(), 9);
}

/// The reply of Account1.NewBackupCodes matches the contract.
#[test]
fn new_backup_codes_reply_matches_the_contract() {
    if !need_root!() {
        return;
    }
    let s = setup(&DaemonConfig::default());
    let r = s.env.bus.py_calls(
        Some(s.user.ids()),
        serde_json::json!([{"interface": "org.twofactor.Account1", "method": "NewBackupCodes",
                "signature": "ayay",
                "args": [{"bytes": s.user.password()}, {"bytes": s.codes[1]}]}]),
    );
    twofactor_tests::contract::assert_reply_matches(
        &r[0],
        "org.twofactor.Account1",
        "NewBackupCodes",
    );
    let codes: Vec<String> = r[0]["ok"][0]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_good_set(&codes);
    s.login(&s.codes[0])
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    s.login(&codes[0]).assert_result("PAM_SUCCESS");
}
