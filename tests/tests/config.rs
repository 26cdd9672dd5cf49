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

/// A config naming a PostgreSQL store (`[store]` is `backend =
/// "postgresql"`, then `store`) and `twofactord --check-config` of it, with
/// the config's path. Nothing connects: `--check-config` reads the files
/// `[store]` names as a connection would, and never reaches for the
/// server (`db.invalid` does not resolve; 127.0.0.1:1 answers nothing).
fn check_store(store: &str) -> (twofactor_tests::proc::Finished, String) {
    let d = Daemon::prepare_without_init(&DaemonConfig::default());
    let base = DaemonConfig::default().to_toml(&d.state_dir());
    d.write_config(&format!(
        "{base}\n[store]\nbackend = \"postgresql\"\n{store}"
    ));
    (d.check_config(), d.config_path().display().to_string())
}

/// A password file holding `secret` with `mode`, in a directory of its own.
fn store_password_file(secret: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = twofactor_tests::var_temp_dir("tft-db-pw-");
    let file = dir.path().join("db-password");
    twofactor_tests::write_file(&file, format!("{secret}\n"), mode);
    (dir, file)
}

/// `[store] password_file` with TLS off (a server on this machine), so
/// that only the password file is in question.
fn local_store_with_password(file: &std::path::Path) -> String {
    format!(
        "host = \"127.0.0.1\"\nport = 1\nsslmode = \"disable\"\npassword_file = {:?}\n",
        file.display().to_string()
    )
}

/// The database password appears in neither stream of `out`.
fn assert_password_hidden(out: &twofactor_tests::proc::Finished, secret: &str) {
    assert!(
        !out.stdout().contains(secret) && !out.stderr().contains(secret),
        "the password is shown: {}",
        out.describe()
    );
}

/// `--check-config` refused `out`, naming the config, the key and `file`.
fn assert_refused_naming(
    out: &twofactor_tests::proc::Finished,
    config: &str,
    key: &str,
    file: &std::path::Path,
) {
    assert!(!out.success(), "accepted: {}", out.describe());
    assert!(
        !out.stdout().contains("configuration is valid"),
        "{}",
        out.describe()
    );
    let expected = format!("{key} {}: ", file.display());
    let err = out.stderr();
    assert!(
        err.contains(config) && err.contains(&expected),
        "--check-config should name {config} and {expected:?}: {}",
        out.describe()
    );
}

/// A `[store] password_file` that does not exist is refused by
/// `--check-config` (before, only the first connection found it out, and
/// every login was refused), the file named.
#[test]
fn check_config_refuses_a_missing_store_password_file() {
    if !need_root!() {
        return;
    }
    let dir = twofactor_tests::var_temp_dir("tft-db-pw-");
    let file = dir.path().join("db-password");
    let (out, config) = check_store(&local_store_with_password(&file));
    assert_refused_naming(&out, &config, "[store] password_file", &file);
    assert!(out.stderr().contains("No such file"), "{}", out.describe());
    // Under SQLite too when it is named: it is what a switch would read.
    let d = Daemon::prepare_without_init(&DaemonConfig::default());
    let base = DaemonConfig::default().to_toml(&d.state_dir());
    d.write_config(&format!(
        "{base}\n[store]\nbackend = \"sqlite\"\npassword_file = {:?}\n",
        file.display().to_string()
    ));
    let out = d.check_config();
    assert_refused_naming(
        &out,
        &d.config_path().display().to_string(),
        "[store] password_file",
        &file,
    );
}

/// A `[store] password_file` group or others can open is refused, its mode
/// named, exactly as a connection refuses it; closed, it is accepted.
#[test]
fn check_config_refuses_a_store_password_file_others_can_read() {
    if !need_root!() {
        return;
    }
    let secret = format!("db-pw-{}", twofactor_tests::random_hex(8));
    for mode in [0o644, 0o640, 0o604] {
        let (_dir, file) = store_password_file(&secret, mode);
        let (out, config) = check_store(&local_store_with_password(&file));
        assert_refused_naming(&out, &config, "[store] password_file", &file);
        assert!(
            out.stderr().contains(&format!("mode {mode:04o}")),
            "{}",
            out.describe()
        );
        assert_password_hidden(&out, &secret);
        twofactor_tests::set_mode(&file, 0o600);
        let (out, _) = check_store(&local_store_with_password(&file));
        assert!(out.success(), "{}", out.describe());
    }
}

/// A `[store] password_file` of another user than the daemon's (root) is
/// refused, however closed its mode.
#[test]
fn check_config_refuses_a_store_password_file_of_another_user() {
    if !need_root!() {
        return;
    }
    let secret = format!("db-pw-{}", twofactor_tests::random_hex(8));
    let (_dir, file) = store_password_file(&secret, 0o600);
    std::os::unix::fs::chown(&file, Some(65534), Some(65534))
        .unwrap_or_else(|e| panic!("chown {}: {e}", file.display()));
    let (out, config) = check_store(&local_store_with_password(&file));
    assert_refused_naming(&out, &config, "[store] password_file", &file);
    assert!(out.stderr().contains("uid 65534"), "{}", out.describe());
    assert_password_hidden(&out, &secret);
}

/// A root-only `[store] password_file` (0600 or 0400, root's) and a CA
/// file with a real certificate: "configuration is valid", the password
/// not shown.
#[test]
fn check_config_accepts_a_root_only_store_password_file() {
    if !need_root!() {
        return;
    }
    let secret = format!("db-pw-{}", twofactor_tests::random_hex(8));
    let certs = twofactor_tests::smtp::Certs::localhost();
    for mode in [0o600, 0o400] {
        let (_dir, file) = store_password_file(&secret, mode);
        assert_eq!(std::fs::metadata(&file).expect("stat").uid(), 0);
        let (out, config) = check_store(&format!(
            "host = \"db.invalid\"\nsslmode = \"verify-full\"\npassword_file = {:?}\n\
             ca_file = {:?}\n",
            file.display().to_string(),
            certs.ca.display().to_string()
        ));
        assert!(out.success(), "{mode:o}: {}", out.describe());
        assert!(
            out.stdout()
                .contains(&format!("{config}: configuration is valid")),
            "{}",
            out.describe()
        );
        assert_password_hidden(&out, &secret);
        // TLS off (a server on this machine): the same file, accepted.
        let (out, _) = check_store(&local_store_with_password(&file));
        assert!(out.success(), "{mode:o}: {}", out.describe());
    }
}

/// A `[store] ca_file` that does not exist is refused (with
/// `verify-full`, the default), the file named.
#[test]
fn check_config_refuses_a_missing_store_ca_file() {
    if !need_root!() {
        return;
    }
    let dir = twofactor_tests::var_temp_dir("tft-db-ca-");
    let ca = dir.path().join("db-ca.pem");
    let (out, config) = check_store(&format!(
        "host = \"db.invalid\"\nca_file = {:?}\n",
        ca.display().to_string()
    ));
    assert_refused_naming(&out, &config, "[store] ca_file", &ca);
    assert!(out.stderr().contains("No such file"), "{}", out.describe());
}

/// A `[store] ca_file` with no certificate in it (text that is not PEM, a
/// key only, a certificate block rustls cannot parse) is refused, the file
/// named.
#[test]
fn check_config_refuses_a_store_ca_file_without_a_certificate() {
    if !need_root!() {
        return;
    }
    let dir = twofactor_tests::var_temp_dir("tft-db-ca-");
    let ca = dir.path().join("db-ca.pem");
    for (text, why) in [
        ("this is not a certificate\n", "no certificate"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "no certificate",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "certificate 1",
        ),
    ] {
        twofactor_tests::write_file(&ca, text, 0o644);
        let (out, config) = check_store(&format!(
            "host = \"db.invalid\"\nca_file = {:?}\n",
            ca.display().to_string()
        ));
        assert_refused_naming(&out, &config, "[store] ca_file", &ca);
        assert!(out.stderr().contains(why), "{text:?}: {}", out.describe());
    }
}

/// The database password never appears in `--check-config`'s output:
/// not when its file is refused, not when it was read and the CA file is
/// refused after it, not when all is well.
#[test]
fn check_config_never_shows_the_store_password() {
    if !need_root!() {
        return;
    }
    let secret = format!("db-pw-{}", twofactor_tests::random_hex(8));
    let dir = twofactor_tests::var_temp_dir("tft-db-ca-");
    let garbage = dir.path().join("garbage.pem");
    twofactor_tests::write_file(&garbage, format!("{secret}\n"), 0o644);
    let certs = twofactor_tests::smtp::Certs::localhost();
    for (mode, ca, accepted) in [
        (0o644, &certs.ca, false),
        (0o600, &garbage, false),
        (0o600, &certs.ca, true),
    ] {
        let (_dir, file) = store_password_file(&secret, mode);
        let (out, _) = check_store(&format!(
            "host = \"db.invalid\"\npassword_file = {:?}\nca_file = {:?}\n",
            file.display().to_string(),
            ca.display().to_string()
        ));
        assert_eq!(out.success(), accepted, "{}", out.describe());
        assert_password_hidden(&out, &secret);
    }
}
