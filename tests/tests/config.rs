//! The daemon's config file and its store, as an administrator meets them:
//! `--check-config`, a bad file stops the daemon with file, line and key in
//! the message, failures are never unlimited, and the state is private
//! (directory 0700, database 0600, WAL).

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use twofactor_tests::{need_root, Daemon, DaemonConfig, Enrolled, PrivateBus, BUS_NAME};

#[test]
fn check_config_accepts_a_good_file() {
    let d = Daemon::prepare(&DaemonConfig::default());
    let out = d.check_config();
    assert!(out.success(), "{}", out.describe());
}

/// Each bad file is refused by --check-config with the file, the line and
/// the key named, and stops the daemon before it takes its bus name.
#[test]
fn bad_config_names_file_line_and_key() {
    if !need_root!() {
        return;
    }
    let cases = [
        // (text, line, key)
        ("[limits]\nmax_failure = 3\n", 2, "max_failure"),
        ("[limits]\nmax_failures = 0\n", 2, "max_failures"),
        ("[limits]\nmax_failures = 101\n", 2, "max_failures"),
        ("\n\n[totp]\nskew_steps = 3\n", 4, "skew_steps"),
        (
            "[login]\nsession_timeout_seconds = \"long\"\n",
            2,
            "session_timeout_seconds",
        ),
        ("colour = \"blue\"\n", 1, "colour"),
    ];
    let bus = PrivateBus::start();
    for (text, line, key) in cases {
        let mut d = Daemon::prepare(&DaemonConfig::default());
        let state = d.state_dir();
        let full = format!("state_dir = {:?}\n{text}", state.display().to_string());
        d.write_config(&full);
        let line = line + 1; // the state_dir line comes first
        let path = d.config_path().display().to_string();
        let out = d.check_config();
        assert!(!out.success(), "accepted:\n{full}\n{}", out.describe());
        let err = out.stderr();
        assert!(
            err.contains(&path) && err.contains(&format!(":{line}")) && err.contains(key),
            "--check-config should name {path}, line {line} and {key}:\n{full}\n{}",
            out.describe()
        );
        d.start_timeout = std::time::Duration::from_secs(10);
        let started = d.try_launch(&bus);
        assert!(started.is_err(), "the daemon started with:\n{full}");
        assert!(!bus.has_owner(BUS_NAME));
        assert!(
            d.log().contains(key),
            "the daemon's refusal should name {key}:\n{}",
            d.log()
        );
    }
}

/// A missing state directory is created 0700; the database is 0600, owned
/// by root, in WAL mode.
#[test]
fn state_is_private_and_in_wal_mode() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let mut d = Daemon::prepare(&DaemonConfig::default());
    let state = d.state_dir();
    std::fs::remove_dir(&state).expect("remove state dir");
    d.try_launch(&bus)
        .expect("daemon starts with a missing state dir");
    let meta = std::fs::metadata(&state).expect("state dir created");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(meta.uid(), 0);
    let db = state.join("twofactor.db");
    let meta = std::fs::metadata(&db).expect("database file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0);
    let header = std::fs::read(&db).expect("read database");
    assert!(header.starts_with(b"SQLite format 3\0"), "not SQLite");
    // Bytes 18 and 19: file format write/read version, 2 = WAL.
    assert_eq!((header[18], header[19]), (2, 2), "database not in WAL mode");
    for entry in std::fs::read_dir(&state).expect("list state dir").flatten() {
        let mode = entry.metadata().expect("meta").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} is open to others ({:o})",
            entry.path().display(),
            mode
        );
    }
}

/// A state directory others can read is refused: the daemon does not start.
#[test]
fn open_state_dir_is_refused() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let mut d = Daemon::prepare(&DaemonConfig::default());
    twofactor_tests::set_mode(&d.state_dir(), 0o755);
    d.start_timeout = std::time::Duration::from_secs(10);
    let err = d
        .try_launch(&bus)
        .expect_err("started with a 0755 state dir");
    assert!(
        err.contains(&d.state_dir().display().to_string()) && err.contains("0700"),
        "{err}"
    );
}

/// Enrolments and the failure count live in the store: a restart keeps them.
#[test]
fn restart_keeps_enrolment_and_failures() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    let wrong = twofactor_tests::totp::wrong_code(&s.code_now());
    s.login(&wrong).assert_result("PAM_AUTH_ERR");
    s.env.restart_daemon();
    assert_eq!(s.env.ctl().methods(&s.user), vec!["app".to_string()]);
    assert_eq!(s.failures(), 1);
    s.login(s.code_now()).assert_result("PAM_SUCCESS");
}
