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

/// `protected_groups` (who only root may reset): a list of group names,
/// groups this host does not have allowed, an empty list allowed; a name
/// groupadd would refuse is refused by --check-config with the file, the
/// line, the key and the name.
#[test]
fn protected_groups_are_checked_by_the_group_name_rule() {
    let check = |groups: &str| {
        let d = Daemon::prepare(&DaemonConfig::default());
        let state = d.state_dir().display().to_string();
        d.write_config(&format!(
            "state_dir = {state:?}\nissuer = \"x\"\nprotected_groups = {groups}\n"
        ));
        (d.check_config(), d.config_path().display().to_string())
    };
    for good in ["[\"sudo\", \"tft-no-such-group\"]", "[]"] {
        let (out, _) = check(good);
        assert!(out.success(), "{good}: {}", out.describe());
    }
    for bad in ["1000", "st$ff", "a b", "-x"] {
        let (out, path) = check(&format!("[\"sudo\", {bad:?}]"));
        assert!(!out.success(), "accepted {bad:?}: {}", out.describe());
        let expected =
            format!("{path}:3: key `protected_groups`: {bad:?} is not a valid group name");
        assert!(
            out.stderr().contains(&expected),
            "{expected:?} not in {}",
            out.describe()
        );
    }
}

/// `twofactord --init` creates the state directory 0700, the database 0600
/// (owned by root, in WAL mode) and the key file 0600 beside it, not in it.
#[test]
fn init_makes_private_state_in_wal_mode() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let mut d = Daemon::prepare(&DaemonConfig::default());
    let state = d.state_dir();
    let key = twofactor_tests::daemon::key_file_for(&state);
    // prepare() ran --init; start over from nothing.
    std::fs::remove_dir_all(&state).expect("remove state dir");
    std::fs::remove_file(&key).expect("remove key file");
    let init = d.init();
    assert!(init.success(), "{}", init.describe());
    assert!(
        init.stdout().contains("Back it up apart from the database"),
        "{}",
        init.describe()
    );
    d.try_launch(&bus).expect("daemon starts after --init");
    let meta = std::fs::metadata(&state).expect("state dir created");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(meta.uid(), 0);
    let meta = std::fs::metadata(&key).expect("key file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
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
    // A second --init refuses: both exist.
    let again = d.init();
    assert!(!again.success(), "{}", again.describe());
}

/// A missing, deleted or emptied database, or a missing key file, stops
/// the daemon with a message that says what to do; it never starts afresh
/// (every enrolled user would log in without a code).
#[test]
fn a_missing_database_or_key_stops_the_daemon() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let s = Enrolled::with_defaults();
    let state = s.env.daemon.state_dir();
    let db = state.join("twofactor.db");
    let key = twofactor_tests::daemon::key_file_for(&state);
    let try_start = |prepare: &dyn Fn(&std::path::Path)| {
        let mut d = Daemon::prepare(&DaemonConfig::default());
        prepare(&d.state_dir());
        d.start_timeout = std::time::Duration::from_secs(10);
        let err = d.try_launch(&bus).expect_err("the daemon started");
        assert!(!bus.has_owner(BUS_NAME));
        (err, d)
    };
    // Deleted database.
    let (err, d) = try_start(&|state| {
        std::fs::remove_file(state.join("twofactor.db")).expect("remove db");
    });
    assert!(
        err.contains("does not exist") && err.contains("twofactord --init"),
        "{err}"
    );
    assert!(!d.state_dir().join("twofactor.db").exists(), "recreated");
    // Emptied database.
    let (err, _) = try_start(&|state| {
        std::fs::write(state.join("twofactor.db"), b"").expect("truncate db");
    });
    assert!(err.contains("the database is empty"), "{err}");
    // Missing key file.
    let (err, _) = try_start(&|state| {
        std::fs::remove_file(twofactor_tests::daemon::key_file_for(state)).expect("rm key");
    });
    assert!(
        err.contains("key file") && err.contains("does not exist"),
        "{err}"
    );
    // A database with another key file (this one's own, from its --init):
    // refused, since its secrets would not open.
    let (err, _) = try_start(&|state| {
        std::fs::copy(&db, state.join("twofactor.db")).expect("copy db");
        let wal = state.join("twofactor.db-wal");
        let _ = std::fs::remove_file(&wal);
        let _ = std::fs::remove_file(state.join("twofactor.db-shm"));
        if let Ok(bytes) = std::fs::read(db.with_file_name("twofactor.db-wal")) {
            twofactor_tests::write_file(&wal, bytes, 0o600);
        }
    });
    assert!(err.contains("do not open with this key file"), "{err}");
    assert!(key.exists());
    drop(s);
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

/// A lost key file cannot be replaced by `--init` behind the database's
/// back: the new key does not open what is sealed, so --init refuses and
/// leaves no key file behind.
#[test]
fn init_does_not_paper_over_a_lost_key() {
    if !need_root!() {
        return;
    }
    let mut s = Enrolled::with_defaults();
    s.env.stop_daemon();
    let key = twofactor_tests::daemon::key_file_for(&s.env.daemon.state_dir());
    std::fs::remove_file(&key).expect("remove key file");
    let init = s.env.daemon.init();
    assert!(!init.success(), "{}", init.describe());
    assert!(
        init.stderr().contains("do not open with this key file"),
        "{}",
        init.describe()
    );
    assert!(!key.exists(), "a key that opens nothing was left behind");
}
