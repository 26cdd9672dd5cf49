//! A machine joins a fleet: `twofactord --copy-store-to FILE` copies its
//! SQLite store, with enrolled users, used codes and backup codes, into a
//! real PostgreSQL database, which two hosts then share. What was used on
//! the machine stays used on every host; what was not, works once.

use std::path::Path;

use twofactor_tests::conversation::backup_codes_in;
use twofactor_tests::proc::{self, Finished};
use twofactor_tests::{
    need_postgres, need_root, DaemonConfig, Env, PgServer, TestUser, INVALID_CODE,
};

/// `twofactord --copy-store-to TARGET --config CONFIG`, run to its end.
fn copy_store(config: &Path, target: &Path) -> Finished {
    proc::run(
        std::process::Command::new(twofactor_tests::twofactord_bin())
            .arg("--copy-store-to")
            .arg(target)
            .arg("--config")
            .arg(config)
            .env_clear()
            .env("PATH", twofactor_tests::PATH),
        b"",
        std::time::Duration::from_secs(60),
    )
}

/// The table counts `--copy-store-to` printed (`  table: N`).
fn printed_count(out: &Finished, table: &str) -> u64 {
    out.stdout()
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{table}: ")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count for {table}: {}", out.describe()))
}

#[test]
fn a_populated_sqlite_store_copied_into_postgresql_serves_a_fleet() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    // The machine on its own, with its SQLite store (whatever store the
    // suite runs against: the source of this copy is SQLite).
    let sqlite = DaemonConfig {
        extra: "[store]\nbackend = \"sqlite\"\n".into(),
        ..DaemonConfig::default()
    };
    let mut alone = Env::start(&sqlite);
    let (app_user, backup_user) = (TestUser::new(), TestUser::new());
    let app = alone.ctl().enroll_app(&app_user);
    let enrolled = alone.ctl().enroll_app(&backup_user);
    let codes = backup_codes_in(&enrolled.output.stdout());
    assert_eq!(codes.len(), 10, "{}", enrolled.output.describe());
    let pam = alone.pam("");
    twofactor_tests::totp::ensure_step_margin(3);
    let used_step = twofactor_tests::totp::now().div_euclid(30);
    let used_code = twofactor_tests::totp::code_now(&app.compact_secret());
    pam.login(&app_user.name)
        .answer(&used_code)
        .run()
        .assert_result("PAM_SUCCESS");
    pam.login(&backup_user.name)
        .answer(&codes[0])
        .run()
        .assert_result("PAM_SUCCESS");
    alone.stop_daemon();

    // Into a new PostgreSQL database.
    let pg = PgServer::start();
    let db = pg.create_database();
    let fleet = DaemonConfig {
        extra: pg.store_toml(&db, true),
        ..DaemonConfig::default()
    };
    let target = alone.daemon.state_dir().with_file_name("fleet.toml");
    twofactor_tests::write_file(&target, fleet.to_toml(&alone.daemon.state_dir()), 0o644);
    let out = copy_store(&alone.daemon.config_path(), &target);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(printed_count(&out, "accounts"), 2);
    assert_eq!(printed_count(&out, "totp"), 2);
    assert_eq!(printed_count(&out, "backup_codes"), 20);
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM backup_codes WHERE used_at IS NOT NULL"
        ),
        "1"
    );
    // A second copy would overwrite: refused, and nothing changes.
    let again = copy_store(&alone.daemon.config_path(), &target);
    assert!(!again.success(), "{}", again.describe());
    assert!(
        again.stderr().contains("the target store is not empty"),
        "{}",
        again.describe()
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM accounts"), "2");
    // Secrets stay sealed in the copy (sealing's "TF\x01" header).
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM totp WHERE substring(secret FROM 1 FOR 3) <> '\\x544601'::bytea"
        ),
        "0"
    );

    // Two hosts on the copy, with the machine's key file.
    let a = Env::start_sharing(&fleet, &alone);
    let b = Env::start_sharing(&fleet, &alone);
    let (pam_a, pam_b) = (a.pam(""), b.pam(""));
    // The code used before the copy stays used.
    pam_a
        .login(&app_user.name)
        .answer(&used_code)
        .run()
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    let codes_after = twofactor_tests::totp::Codes::resume(&app.compact_secret(), used_step);
    pam_b
        .login(&app_user.name)
        .answer(codes_after.next(0))
        .run()
        .assert_result("PAM_SUCCESS");
    // The backup code used before the copy is refused; an unused one works
    // once, on whichever host.
    pam_b
        .login(&backup_user.name)
        .answer(&codes[0])
        .run()
        .assert_result("PAM_AUTH_ERR");
    pam_a
        .login(&backup_user.name)
        .answer(&codes[1])
        .run()
        .assert_result("PAM_SUCCESS");
    pam_b
        .login(&backup_user.name)
        .answer(&codes[1])
        .run()
        .assert_result("PAM_AUTH_ERR");

    // A key rotation beside running hosts is refused before the key file
    // is touched (they would go on sealing with the old key); so is a copy
    // out of the shared store.
    let key = twofactor_tests::daemon::key_file_for(&alone.daemon.state_dir());
    let before = std::fs::read(&key).unwrap_or_default();
    let rotate = proc::run(
        std::process::Command::new(twofactor_tests::twofactord_bin())
            .arg("--rotate-key")
            .arg("--config")
            .arg(&target)
            .env_clear()
            .env("PATH", twofactor_tests::PATH),
        b"",
        std::time::Duration::from_secs(60),
    );
    assert!(!rotate.success(), "{}", rotate.describe());
    assert!(
        rotate
            .stderr()
            .contains("stop twofactord on every host first"),
        "{}",
        rotate.describe()
    );
    assert_eq!(std::fs::read(&key).unwrap_or_default(), before);
    let back = alone.daemon.state_dir().with_file_name("back.toml");
    twofactor_tests::write_file(
        &back,
        sqlite.to_toml(&alone.daemon.state_dir().with_file_name("back-state")),
        0o644,
    );
    let out = copy_store(&target, &back);
    assert!(
        !out.success() && out.stderr().contains("stop twofactord on every host first"),
        "{}",
        out.describe()
    );
    // Refused before the target was made.
    let back_dir = alone.daemon.state_dir().with_file_name("back-state");
    assert!(!back_dir.exists());

    // With the fleet's daemons stopped, back into a SQLite file: the same
    // rows.
    drop((pam_a, pam_b));
    drop((a, b));
    let sessions = "SELECT count(*) FROM pg_stat_activity \
                    WHERE application_name = 'twofactord' AND datname = current_database()";
    assert!(
        twofactor_tests::wait_until(std::time::Duration::from_secs(10), || pg
            .psql(&db, sessions)
            == "0"),
        "the stopped hosts' sessions are still there"
    );
    let out = copy_store(&target, &back);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(printed_count(&out, "accounts"), 2);
    assert_eq!(printed_count(&out, "totp"), 2);
    assert_eq!(printed_count(&out, "backup_codes"), 20);
    assert!(back_dir.join("twofactor.db").exists());
}
