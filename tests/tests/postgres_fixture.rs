//! The PostgreSQL fixture itself (`twofactor_tests::postgres`): the role
//! logs in over TCP with the password from the password file, with TLS
//! checked against the fixture's CA (verify-full) or without TLS; a wrong
//! password or a wrong CA is refused; and data survive a stop and a
//! start, as the daemon's tests of a database going away need.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use twofactor_tests::postgres::{self, ROLE};
use twofactor_tests::{need_postgres, proc, PgServer};

/// `psql` over TCP as the role, with `password` in its environment only
/// (never on its command line) and `ssl` (conninfo words) added.
fn tcp_psql(pg: &PgServer, dbname: &str, ssl: &str, password: &str, sql: &str) -> proc::Finished {
    let conninfo = format!(
        "host={} port={} dbname={dbname} user={ROLE} connect_timeout=10 {ssl}",
        pg.host(),
        pg.port()
    );
    proc::run(
        Command::new(postgres::pg_bin("psql"))
            .arg(conninfo)
            // -w: never prompt for a password.
            .args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_clear()
            .env("PATH", twofactor_tests::PATH)
            .env("PGPASSWORD", password),
        b"",
        Duration::from_secs(60),
    )
}

fn verify_full(pg: &PgServer) -> String {
    format!("sslmode=verify-full sslrootcert={}", pg.ca_file().display())
}

const IS_TLS: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[test]
fn the_role_logs_in_over_tls_with_the_password_file_and_nothing_else() {
    if !need_postgres!() {
        return;
    }
    let pg = PgServer::start();
    let db = pg.create_database();
    assert!(db.starts_with("tf_"), "{db}");
    assert_eq!(
        pg.psql(
            "postgres",
            &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'")
        ),
        ROLE
    );

    // The password file: the test's user's only, one line of 24 letters
    // and digits.
    let meta = std::fs::metadata(pg.password_file()).expect("password file");
    assert_eq!(meta.mode() & 0o777, 0o600);
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    let password = pg.password();
    assert_eq!(password.len(), 24);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));

    // TLS, the server's certificate checked against the fixture's CA and
    // for the address.
    let out = tcp_psql(&pg, &db, &verify_full(&pg), &password, "SELECT 1");
    assert!(out.success(), "{}\n{}", out.describe(), pg.log());
    assert_eq!(out.stdout().trim(), "1");
    let out = tcp_psql(&pg, &db, &verify_full(&pg), &password, IS_TLS);
    assert_eq!(out.stdout().trim(), "t", "{}", out.describe());

    // Without TLS (`host` line of pg_hba.conf).
    let out = tcp_psql(&pg, &db, "sslmode=disable", &password, IS_TLS);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout().trim(), "f");

    // A wrong password is refused, with or without TLS.
    for ssl in [verify_full(&pg), "sslmode=disable".to_string()] {
        let out = tcp_psql(&pg, &db, &ssl, "not-the-password", "SELECT 1");
        assert!(!out.success(), "logged in with a wrong password ({ssl})");
        assert!(
            out.stderr().contains(&format!(
                "password authentication failed for user \"{ROLE}\""
            )),
            "{}",
            out.describe()
        );
    }

    // Another CA does not vouch for the server.
    let out = tcp_psql(
        &pg,
        &db,
        "sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt",
        &password,
        "SELECT 1",
    );
    assert!(!out.success(), "verify-full accepted an unknown CA");
    assert!(
        out.stderr().contains("certificate verify failed"),
        "{}",
        out.describe()
    );

    // The [store] section names all this.
    let toml = pg.store_toml(&db, true);
    assert!(
        toml.starts_with("[store]\nbackend = \"postgresql\"\n"),
        "{toml}"
    );
    assert!(toml.contains(&format!("port = {}\n", pg.port())), "{toml}");
    assert!(toml.contains(&format!("dbname = \"{db}\"\n")), "{toml}");
    assert!(toml.contains("sslmode = \"verify-full\"\n"), "{toml}");
    assert!(
        toml.contains(&format!("ca_file = \"{}\"\n", pg.ca_file().display())),
        "{toml}"
    );
    let plain = pg.store_toml(&db, false);
    assert!(plain.contains("sslmode = \"disable\"\n"), "{plain}");
    assert!(!plain.contains("ca_file"), "{plain}");
}

#[test]
fn data_survive_a_stop_and_a_start_and_drop_leaves_nothing() {
    if !need_postgres!() {
        return;
    }
    let mut pg = PgServer::start();
    let db = pg.create_database();
    pg.psql(
        &db,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')",
    );
    let port = pg.port();
    let first = pg.pid().expect("a running server has a pid");

    pg.stop();
    assert_eq!(pg.pid(), None);
    assert!(!postgres::alive(first), "the postmaster is still there");
    assert!(!pg.ready());
    let out = tcp_psql(&pg, &db, &verify_full(&pg), &pg.password(), "SELECT 1");
    assert!(!out.success(), "connected to a stopped server");

    pg.start_again();
    assert_eq!(pg.port(), port);
    let second = pg.pid().expect("a running server has a pid");
    assert_ne!(first, second);
    assert_eq!(pg.psql(&db, "SELECT v FROM kept"), "survives");
    let out = tcp_psql(&pg, &db, &verify_full(&pg), &pg.password(), "SELECT 1");
    assert!(out.success(), "{}\n{}", out.describe(), pg.log());

    let dir = pg
        .password_file()
        .parent()
        .expect("the password file is in the server's directory")
        .to_path_buf();
    drop(pg);
    assert!(
        !postgres::alive(second),
        "the postmaster outlived the fixture"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
}
