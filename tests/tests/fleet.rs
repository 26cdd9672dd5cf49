//! A fleet: the daemons of several hosts sharing one PostgreSQL database.
//!
//! Each test starts its own private PostgreSQL server (the
//! `twofactor_tests::postgres` fixture), makes a fresh database on it, and
//! runs two hosts, A and B: two `twofactord`s, each on its own private bus
//! with its own state directory, both with a `[store]` section naming that
//! database. A is initialised (`twofactord --init`: the key file and the
//! schema); B gets a copy of A's key file and no `--init`, as an
//! administrator would set up a second host. Logins go through the built
//! pam_twofactor.so under real libpam (pam-harness), one PAM service per
//! host; codes come from oathtool.
//!
//! What a fleet promises, and what is checked here:
//!
//! - enrol once (on any host), log in everywhere; the daemons reach the
//!   database over TLS when `sslmode = "verify-full"`;
//! - an app code, a backup code or a recovery code is used once in the
//!   whole fleet, also when fifty logins race with one code over two
//!   hosts;
//! - one failure count and one lockout for the fleet, checked and counted
//!   in one step: of forty wrong codes racing over two hosts, exactly
//!   `max_failures` are checked; an administrator's reset on one host and
//!   its recovery code at another host's login;
//! - PostgreSQL going away fails closed: logins are refused, the daemons
//!   keep running and reconnect by themselves when it is back; a host
//!   idle through a restart of PostgreSQL lets the next login in at once;
//!   a host started while it is down starts, refuses, and recovers;
//! - hosts initialising one empty database at the same moment create the
//!   schema once: one `--init` creates it, the others are told it exists.
//!
//! Drop order everywhere: the PAM services, the hosts (daemons, then their
//! buses), the PostgreSQL server, the user.

use std::time::{Duration, Instant};

use twofactor_tests::conversation::{self, backup_codes_in, lock_wait};
use twofactor_tests::ctl::Enrolment;
use twofactor_tests::pam::{PamRun, PamService};
use twofactor_tests::syslog::SyslogSink;
use twofactor_tests::totp::{self, Codes};
use twofactor_tests::{
    admin, need_postgres, need_root, Daemon, DaemonConfig, Env, PgServer, PrivateBus, TestUser,
    CODE_PROMPT, INVALID_CODE,
};

/// What the module logs when the daemon answers the start of a login with
/// an error (here: its database is unreachable); the login is refused.
const BEGIN_REFUSED: &str = "twofactord refused to begin the login";

/// What a daemon logs when it cannot connect to its database.
const UNREACHABLE: &str = "the database is unreachable";

/// The first line after a recovery code at the login prompt (as in
/// tests/tests/admin.rs).
const RECOVERY_INTRO: &str =
    "Recovery code accepted. Set up an authenticator app now to finish logging in.";

/// How long a daemon may take to log in again once PostgreSQL is back.
const RECOVERY: Duration = Duration::from_secs(30);

/// `config` with the `[store]` section of `db` on `pg`.
fn fleet_config(pg: &PgServer, db: &str, tls: bool, config: DaemonConfig) -> DaemonConfig {
    DaemonConfig {
        extra: format!("{}\n{}", config.extra, pg.store_toml(db, tls)),
        ..config
    }
}

/// A login of `user` through `pam` (a host's service), answering `answer`;
/// the module's syslog and both daemons' logs are kept for failure
/// messages.
fn login_on(
    host: &str,
    pam: &PamService,
    user: &TestUser,
    answer: &str,
    a: &Env,
    b: &Env,
) -> PamRun {
    let sink = SyslogSink::new();
    let mut run = pam.login(&user.name).answer(answer).run_with_syslog(&sink);
    run.context = format!(
        "--- login on host {host} ---\n--- module syslog ---\n{}\n--- daemon log A ---\n{}\n--- daemon log B ---\n{}",
        sink.text(),
        a.daemon.log(),
        b.daemon.log(),
    );
    run
}

/// Whether `run` is the refusal of a login whose daemon cannot reach its
/// database: the daemon answers the start of the login with an internal
/// error, so nothing is asked, nothing is shown, and the module refuses
/// (PAM_AUTH_ERR) and logs why.
fn is_db_down(run: &PamRun) -> bool {
    run.result == "PAM_AUTH_ERR"
        && run.prompts.is_empty()
        && run.errors.is_empty()
        && run.context.contains(BEGIN_REFUSED)
}

/// Asserts [`is_db_down`], piece by piece.
fn assert_refused_db_down(run: &PamRun) {
    run.assert_result("PAM_AUTH_ERR")
        .assert_no_prompt()
        .assert_errors(&[]);
    assert!(
        run.context.contains(BEGIN_REFUSED),
        "the module did not log {BEGIN_REFUSED:?}: {}",
        run.describe()
    );
}

/// Runs `attempt` until it gives anything but the refusal of a daemon
/// whose database is down, or `timeout` passes (then panics with the last
/// run): the daemon reconnects on a job after a failed one. Returns that
/// run, how many attempts it took and how long.
fn past_db_down(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> PamRun,
) -> (PamRun, u32, Duration) {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        let run = attempt();
        attempts += 1;
        if !is_db_down(&run) {
            return (run, attempts, start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: still refused as if the database were down after {timeout:?} \
             ({attempts} attempts); last: {}",
            run.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts that a daemon still runs and has not panicked.
fn assert_alive(name: &str, env: &mut Env) {
    assert!(
        env.daemon.is_running(),
        "host {name}'s daemon exited:\n{}",
        env.daemon.log()
    );
    let log = env.daemon.log();
    assert!(
        !log.contains("panicked"),
        "host {name}'s daemon panicked:\n{log}"
    );
}

/// Two hosts sharing a fresh database on a server of their own, and a
/// user enrolled with the app through host A's twofactorctl.
struct Fleet {
    // Drop order: PAM files, hosts (daemons and buses), server, user.
    pam_a: PamService,
    pam_b: PamService,
    b: Env,
    a: Env,
    pg: PgServer,
    db: String,
    enrolment: Enrolment,
    secret: String,
    user: TestUser,
}

impl Fleet {
    fn start(config: DaemonConfig, tls: bool) -> Fleet {
        // Declared in the order they are to be dropped last-first, should
        // anything below panic.
        let user = TestUser::new();
        let pg = PgServer::start();
        let db = pg.create_database();
        let config = fleet_config(&pg, &db, tls, config);
        let a = Env::start(&config);
        let b = Env::start_sharing(&config, &a);
        let enrolment = a.ctl().enroll_app(&user);
        let secret = enrolment.compact_secret();
        Fleet {
            pam_a: a.pam(""),
            pam_b: b.pam(""),
            b,
            a,
            pg,
            db,
            enrolment,
            secret,
            user,
        }
    }

    fn login_a(&self, answer: &str) -> PamRun {
        login_on("A", &self.pam_a, &self.user, answer, &self.a, &self.b)
    }

    fn login_b(&self, answer: &str) -> PamRun {
        login_on("B", &self.pam_b, &self.user, answer, &self.a, &self.b)
    }

    /// The code of the current step (with a few seconds left in it).
    fn code_now(&self) -> String {
        totp::ensure_step_margin(3);
        totp::code_now(&self.secret)
    }

    /// `login-success user=NAME` lines in a host's log.
    fn successes_in(&self, env: &Env) -> usize {
        env.daemon
            .log()
            .matches(&format!("login-success user={} ", self.user.name))
            .count()
    }
}

/// Enrolled through host A, the user logs in on host B with a right code;
/// both daemons reach the database over TLS (verify-full), none without.
#[test]
fn enrol_on_one_host_log_in_on_another() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start(DaemonConfig::default(), true);
    // B's own twofactorctl sees the enrolment made through A.
    assert_eq!(f.b.ctl().methods(&f.user), vec!["app".to_string()]);

    f.login_b(&f.code_now())
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    assert_eq!(f.successes_in(&f.b), 1, "{}", f.b.daemon.log());
    assert_eq!(f.successes_in(&f.a), 0, "{}", f.a.daemon.log());

    // Both daemons hold a connection now (A since the enrolment, B since
    // the login), all of them over TLS.
    let connections = |ssl: bool| -> u64 {
        let n = f.pg.psql(
            &f.db,
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'twofactord' AND a.datname = '{}' AND s.ssl = {ssl}",
                f.db
            ),
        );
        n.parse()
            .unwrap_or_else(|e| panic!("count(*) printed {n:?}: {e}"))
    };
    let tls = connections(true);
    assert!(
        tls >= 2,
        "expected the connections of both daemons over TLS, found {tls}:\n{}",
        f.pg.psql(
            &f.db,
            "SELECT a.pid, a.application_name, a.datname, s.ssl, s.version \
             FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid)"
        )
    );
    assert_eq!(connections(false), 0, "a daemon connected without TLS");
}

/// A right code accepted on host A is refused on host B (and the next
/// step's code is accepted on B, so the refusal is the code's, not B's).
#[test]
fn a_code_used_on_one_host_is_refused_on_the_other() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start(DaemonConfig::default(), false);
    let codes = Codes::new(&f.secret);
    let code = codes.next(0);
    f.login_a(&code)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    f.login_b(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);

    let next = codes.next(0);
    f.login_b(&next)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    for run in [f.login_a(&next), f.login_a(&code)] {
        run.assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
    }
    // B knew the code as one already used (A's step, read from the shared
    // row), not as a wrong one.
    let replayed = format!("login-failure user={} ", f.user.name);
    let log_b = f.b.daemon.log();
    assert!(
        log_b
            .lines()
            .any(|l| l.contains(&replayed) && l.contains("reason=replayed-code")),
        "B did not audit a replayed code:\n{log_b}"
    );
}

const LOGINS: usize = 50;

/// Fifty logins at once with one right code, every other one on host A,
/// the rest on host B: exactly one is let in; the code stays used on both
/// hosts afterwards.
#[test]
fn fifty_concurrent_logins_over_two_hosts_one_code_one_success() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    // max_failures high enough that the 49 refusals (counted in the one
    // shared count) do not lock the account before the right answer is
    // checked.
    let f = Fleet::start(
        DaemonConfig {
            max_failures: 100,
            ..DaemonConfig::default()
        },
        false,
    );
    totp::ensure_step_margin(5);
    let code = totp::code_now(&f.secret);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let runs = twofactor_tests::proc::all_at_once(LOGINS, || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if i % 2 == 0 {
            ("A", f.login_a(&code))
        } else {
            ("B", f.login_b(&code))
        }
    });
    let results: Vec<_> = runs
        .iter()
        .map(|(host, r)| format!("{host}:{}", r.result))
        .collect();
    for host in ["A", "B"] {
        assert_eq!(
            runs.iter().filter(|(h, _)| *h == host).count(),
            LOGINS / 2,
            "{results:?}"
        );
    }
    let successes = runs
        .iter()
        .filter(|(_, r)| r.result == "PAM_SUCCESS")
        .count();
    assert_eq!(
        successes, 1,
        "expected exactly one success out of {LOGINS}; results: {results:?}"
    );
    let refusals: Vec<_> = runs
        .iter()
        .filter(|(_, r)| r.result != "PAM_SUCCESS")
        .collect();
    assert_eq!(refusals.len(), LOGINS - 1);
    for (_, r) in &refusals {
        r.assert_result("PAM_AUTH_ERR")
            .assert_asked_code()
            .assert_errors(&[INVALID_CODE]);
    }
    assert_eq!(
        f.successes_in(&f.a) + f.successes_in(&f.b),
        1,
        "login-success audited other than once"
    );
    // The code stays used, on both hosts.
    f.login_a(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
    f.login_b(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_errors(&[INVALID_CODE]);
}

/// A backup code used on host A is refused on host B, and one used on B
/// is refused on A; both hosts count what is left.
#[test]
fn a_backup_code_used_on_one_host_is_refused_on_the_other() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start(DaemonConfig::default(), false);
    let codes = backup_codes_in(&f.enrolment.output.stdout());
    assert_eq!(codes.len(), 10, "{}", f.enrolment.output.describe());
    let left = |env: &Env| -> u64 {
        let s = env.ctl().status_json(&f.user);
        s["backup_codes_left"]
            .as_u64()
            .unwrap_or_else(|| panic!("no backup_codes_left in status --json: {s}"))
    };
    assert_eq!(left(&f.b), 10);

    f.login_a(&codes[0])
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    f.login_b(&codes[0])
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    assert_eq!(left(&f.b), 9);

    f.login_b(&codes[1])
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    f.login_a(&codes[1])
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    assert_eq!(left(&f.a), 8);
    for (name, env) in [("A", &f.a), ("B", &f.b)] {
        assert_eq!(
            env.daemon
                .log()
                .matches(&format!("backup-code-used user={}", f.user.name))
                .count(),
            1,
            "host {name} should have audited one backup code:\n{}",
            env.daemon.log()
        );
    }
}

/// Failures on host A count toward the one limit: after max_failures on A,
/// host B refuses even the right code while the lock lasts, and lets the
/// user in once it is over; a success on B clears the count A sees.
#[test]
fn a_lockout_earned_on_one_host_holds_on_the_other() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    // A lock long enough to reach host B within it on a busy machine.
    let f = Fleet::start(
        DaemonConfig {
            max_failures: 3,
            lockout_seconds: 10,
            max_lockout_seconds: 20,
            ..DaemonConfig::default()
        },
        false,
    );
    let codes = Codes::new(&f.secret);
    let wrong = totp::wrong_code(&f.code_now());
    for i in 1..=3 {
        f.login_a(&wrong)
            .assert_result("PAM_AUTH_ERR")
            .assert_errors(&[INVALID_CODE]);
        // The count B's daemon reports is the one A's failures made.
        assert_eq!(f.b.ctl().failures(&f.user), i);
    }
    let right = codes.next(0);
    let run = f.login_b(&right);
    run.assert_result("PAM_AUTH_ERR");
    let wait = lock_wait(&run.errors)
        .unwrap_or_else(|| panic!("no 'try again in N seconds' message: {}", run.describe()));
    assert!(
        (1..=10).contains(&wait),
        "wait {wait} s: {}",
        run.describe()
    );
    let status = f.b.ctl().status_json(&f.user);
    assert!(status["locked_until"].as_i64().unwrap_or(0) > 0, "{status}");
    assert!(
        f.a.daemon
            .log()
            .contains(&format!("lockout user={}", f.user.name)),
        "lockout not audited on A:\n{}",
        f.a.daemon.log()
    );

    // Once the lock is over (as B's daemon reports it), B lets the user in
    // with a right code, and the success clears the count for A too.
    let unlocked = twofactor_tests::wait_until(Duration::from_secs(wait + 20), || {
        f.b.ctl().status_json(&f.user)["locked_until"].as_i64() == Some(0)
    });
    assert!(unlocked, "still locked: {}", f.b.ctl().status_json(&f.user));
    f.login_b(&codes.next(0))
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
    assert_eq!(
        f.a.ctl().failures(&f.user),
        0,
        "a success clears the failures"
    );
}

/// Wrong codes racing through the two hosts, in each of [`ROUNDS`] races.
const RACING: usize = 40;
/// Races, each after an administrator's unlock: one race alone may, by
/// chance, let one host's batch commit before the other host reads.
const ROUNDS: usize = 3;

/// Forty logins for one account from one source (one remote address), every
/// other one on host A, the rest on host B, wait at the code prompt and
/// then answer the same wrong code at once. Counting a failure and checking
/// the limit are one step for the whole fleet: exactly `max_failures` of
/// them are checked (a wrong-code verdict), and every other one is refused
/// as locked without its code being looked at, in the replies and in the
/// hosts' audit lines together. (When each host read the lock before
/// counting, each host could check one more guess past the lock.) Three
/// races, the lock cleared by `admin unlock` between them.
#[test]
fn wrong_codes_racing_over_two_hosts_are_checked_at_most_max_failures_times() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    const MAX_FAILURES: usize = 3;
    // A lock that lasts the whole race, however slow the machine.
    let f = Fleet::start(
        DaemonConfig {
            max_failures: MAX_FAILURES as u32,
            lockout_seconds: 3600,
            max_lockout_seconds: 3600,
            ..DaemonConfig::default()
        },
        false,
    );
    let wrong = totp::wrong_code(&f.code_now());
    for round in 1..=ROUNDS {
        let logins = (0..RACING)
            .map(|i| {
                let pam = if i % 2 == 0 { &f.pam_a } else { &f.pam_b };
                pam.login(&f.user.name).rhost("192.0.2.66").spawn()
            })
            .collect();
        let runs = conversation::answer_together(logins, &wrong);
        let logs = (f.a.daemon.log(), f.b.daemon.log());
        let context = format!(
            "race {round} of {ROUNDS}\n--- daemon log A ---\n{}\n--- daemon log B ---\n{}",
            logs.0, logs.1
        );
        let on = |host: usize| -> Vec<&PamRun> { runs.iter().skip(host).step_by(2).collect() };
        let per_host = [
            conversation::verdicts_and_locks(on(0), &context),
            conversation::verdicts_and_locks(on(1), &context),
        ];
        assert_eq!(
            conversation::verdicts_and_locks(&runs, &context),
            (MAX_FAILURES, RACING - MAX_FAILURES),
            "(verdicts, refused as locked) of {RACING} wrong codes, with max_failures = \
             {MAX_FAILURES}; on A and on B: {per_host:?}\n{context}"
        );
        // The audit agrees: max_failures wrong codes in the fleet, the rest
        // refused as locked, one lockout, in each race.
        let audited = |reason: &str| {
            conversation::failures_audited(&logs.0, &f.user.name, reason)
                + conversation::failures_audited(&logs.1, &f.user.name, reason)
        };
        assert_eq!(audited("wrong-code"), round * MAX_FAILURES, "{context}");
        assert_eq!(
            audited("locked"),
            round * (RACING - MAX_FAILURES),
            "{context}"
        );
        let lockout = format!("lockout user={} ", f.user.name);
        assert_eq!(
            logs.0.matches(&lockout).count() + logs.1.matches(&lockout).count(),
            round,
            "{context}"
        );
        // The shared count holds exactly the checked guesses.
        assert_eq!(f.b.ctl().failures(&f.user), MAX_FAILURES as u64);
        admin::root_ok(&f.a, &["admin", "unlock", &f.user.name]);
        assert_eq!(f.b.ctl().failures(&f.user), 0);
    }
}

/// An administrator resets the user on host A; host B sees the reset, and
/// the recovery code typed at B's login prompt leads into the enrolment of
/// a new app there; afterwards host A knows the new app, refuses the used
/// recovery code and lets the user in with the new app.
#[test]
fn an_admin_reset_on_one_host_and_its_recovery_code_on_the_other() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let f = Fleet::start(DaemonConfig::default(), false);
    let name = f.user.name.clone();
    let (code, out) = admin::reset(&f.a, &name);
    assert!(
        out.stdout()
            .contains(&format!("Two-factor authentication of {name} was reset.")),
        "{}",
        out.describe()
    );
    let report = admin::user_json(&f.b, &name);
    assert_eq!(report["recovery_pending"], true, "{report}");
    assert_eq!(report["methods"], serde_json::json!([]), "{report}");

    // The old app's code is worth nothing on B now.
    f.login_b(&f.code_now())
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code();

    let at = conversation::enrol_at_login(&f.pam_b.login(&name), &[&code]);
    at.before_turns[0].assert_prompt(CODE_PROMPT, false);
    assert_eq!(
        at.code_turn.infos.first().map(String::as_str),
        Some(RECOVERY_INTRO),
        "{:?}",
        at.code_turn
    );
    assert_ne!(at.shown.secret, f.secret);
    assert_eq!(at.backup_codes.len(), 10);
    assert!(
        f.b.daemon
            .log()
            .contains(&format!("recovery-code-used user={name}")),
        "recovery not audited on B:\n{}",
        f.b.daemon.log()
    );

    // Host A sees the new app, and no recovery pending.
    let s = f.a.ctl().status_json(&f.user);
    assert_eq!(s["methods"], serde_json::json!(["app"]), "{s}");
    assert_eq!(s["backup_codes_left"], 10, "{s}");
    assert_eq!(admin::user_json(&f.a, &name)["recovery_pending"], false);

    // The recovery code is used up in the fleet; the new app works on A.
    f.login_a(&code)
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    totp::ensure_step_margin(3);
    f.login_a(&totp::code_now(&at.shown.secret))
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);
}

/// PostgreSQL stops while both hosts run: logins on both are refused (no
/// prompt, PAM_AUTH_ERR), the daemons keep running and say why in their
/// logs. PostgreSQL starts again: without any restart, a fresh right code
/// logs in on A and another on B, and the code accepted before the stop
/// is still refused on both.
#[test]
fn postgresql_stopped_mid_run_refuses_then_recovers_without_restart() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let mut f = Fleet::start(DaemonConfig::default(), true);
    let codes = Codes::new(&f.secret);
    let before = codes.next(0);
    f.login_a(&before).assert_result("PAM_SUCCESS");
    let pids = (f.a.daemon.pid(), f.b.daemon.pid());

    f.pg.stop();
    // A right, unused code is refused too: nothing is decided without the
    // database. Twice on each host: the first job may meet the connection
    // the server has just closed, the next one finds nothing to connect to.
    let unused = totp::code_at_step_offset(&f.secret, 1);
    for _ in 0..2 {
        assert_refused_db_down(&f.login_a(&unused));
        assert_refused_db_down(&f.login_b(&unused));
    }
    assert_alive("A", &mut f.a);
    assert_alive("B", &mut f.b);
    for (name, env) in [("A", &f.a), ("B", &f.b)] {
        let log = env.daemon.wait_log(UNREACHABLE);
        assert!(
            log.contains(UNREACHABLE),
            "host {name}'s log does not say {UNREACHABLE:?}:\n{log}"
        );
    }

    f.pg.start_again();
    let on_a = codes.next(0);
    let (run, tries_a, took_a) =
        past_db_down("host A after PostgreSQL came back", RECOVERY, || {
            f.login_a(&on_a)
        });
    run.assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    let on_b = codes.next(0);
    let (run, tries_b, took_b) =
        past_db_down("host B after PostgreSQL came back", RECOVERY, || {
            f.login_b(&on_b)
        });
    run.assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    eprintln!(
        "logins worked again on A after {tries_a} attempt(s), {took_a:?}; \
         on B after {tries_b} attempt(s), {took_b:?}"
    );
    assert_eq!(
        (f.a.daemon.pid(), f.b.daemon.pid()),
        pids,
        "a daemon was restarted"
    );
    assert_alive("A", &mut f.a);
    assert_alive("B", &mut f.b);

    // What was used before the stop stays used.
    f.login_a(&before)
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    f.login_b(&before)
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
}

/// PostgreSQL restarts (stop, start) while both hosts sit idle on their
/// open connections, which the server's stop has closed. The database is
/// there again, so the next login on each host must work at the first try,
/// as if nothing had happened: a connection found closed at the start of a
/// job is replaced before anything is decided, not reported as an internal
/// error that refuses a user while the database is up.
#[test]
fn an_idle_host_lets_the_first_login_in_after_postgresql_restarts() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let mut f = Fleet::start(DaemonConfig::default(), true);
    let codes = Codes::new(&f.secret);
    // B's logins with backup codes: no waiting for a fresh step.
    let backup = backup_codes_in(&f.enrolment.output.stdout());
    assert_eq!(backup.len(), 10, "{}", f.enrolment.output.describe());
    // Both daemons connected (a login each).
    f.login_a(&codes.next(0)).assert_result("PAM_SUCCESS");
    f.login_b(&backup[0]).assert_result("PAM_SUCCESS");

    f.pg.stop();
    f.pg.start_again();
    // Both hosts tried before either is judged: the message tells both.
    let (run_a, run_b) = (f.login_a(&codes.next(0)), f.login_b(&backup[1]));
    assert!(
        run_a.result == "PAM_SUCCESS" && run_b.result == "PAM_SUCCESS",
        "first logins after PostgreSQL restarted: A {}, B {}\n=== A ===\n{}\n=== B ===\n{}",
        run_a.result,
        run_b.result,
        run_a.describe(),
        run_b.describe()
    );
    run_a.assert_asked_code().assert_errors(&[]);
    run_b.assert_asked_code();
    assert_alive("A", &mut f.a);
    assert_alive("B", &mut f.b);
}

/// Host A is set up and the user enrolled; PostgreSQL stops; host B is
/// started while it is down: B starts (owns its bus name), refuses logins
/// and logs that the database is unreachable; PostgreSQL starts again and
/// B lets the user in without a restart.
#[test]
fn a_host_started_while_postgresql_is_down_starts_and_refuses_then_recovers() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    // Dropped in reverse order of declaration: pam_b, b, pam_a, a, pg, user.
    let user = TestUser::new();
    let mut pg = PgServer::start();
    let db = pg.create_database();
    let config = fleet_config(&pg, &db, true, DaemonConfig::default());
    let a = Env::start(&config);
    let secret = a.ctl().enroll_app(&user).compact_secret();
    let pam_a = a.pam("");

    pg.stop();
    let mut b = Env::start_sharing(&config, &a);
    let pam_b = b.pam("");
    assert!(
        b.bus.has_owner(twofactor_tests::BUS_NAME),
        "B does not own its bus name"
    );
    // Said at start, before any login asks.
    let log = b.daemon.wait_log(UNREACHABLE);
    assert!(
        log.contains(UNREACHABLE) && log.contains("logins are refused until the database"),
        "B's log does not say {UNREACHABLE:?} at start:\n{log}"
    );
    let login_b = |answer: &str| login_on("B", &pam_b, &user, answer, &a, &b);
    let codes = Codes::new(&secret);
    let unused = totp::code_at_step_offset(&secret, 1);
    assert_refused_db_down(&login_b(&unused));
    assert_refused_db_down(&login_b(&unused));
    let pid = b.daemon.pid();
    assert_alive("B", &mut b);

    pg.start_again();
    let code = codes.next(0);
    let login_b = |answer: &str| login_on("B", &pam_b, &user, answer, &a, &b);
    let (run, tries, took) = past_db_down("host B after PostgreSQL came back", RECOVERY, || {
        login_b(&code)
    });
    run.assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
    eprintln!("B let the user in after {tries} attempt(s), {took:?} after PostgreSQL came back");
    assert_eq!(b.daemon.pid(), pid, "B was restarted");
    // And the code B accepted is used for A too, at A's first login after
    // the outage (A sat idle on a connection the server closed).
    login_on("A", &pam_a, &user, &code, &a, &b)
        .assert_result("PAM_AUTH_ERR")
        .assert_asked_code()
        .assert_errors(&[INVALID_CODE]);
    assert_alive("B", &mut b);
}

/// Three hosts run `twofactord --init` against one empty database at the
/// same moment, each with a config of its own and no key file yet. The
/// schema is created under an advisory lock: exactly one `--init` creates
/// it (and keeps its new key file); the others fail, saying the database
/// exists already, and take back the key file they made. The schema table
/// holds one row, and the database works: a host with the winner's key
/// enrols a user whom a second host lets in.
#[test]
fn hosts_initialising_at_once_create_the_schema_once() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    const HOSTS: usize = 3;
    let user = TestUser::new();
    let pg = PgServer::start();
    let db = pg.create_database();
    let config = fleet_config(&pg, &db, true, DaemonConfig::default());
    let daemons: Vec<Daemon> = (0..HOSTS)
        .map(|_| Daemon::prepare_without_init(&config))
        .collect();
    let key = |d: &Daemon| twofactor_tests::daemon::key_file_for(&d.state_dir());
    for d in &daemons {
        assert!(
            !key(d).exists(),
            "{} exists before --init",
            key(d).display()
        );
    }
    let barrier = std::sync::Barrier::new(HOSTS);
    let outs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = daemons
            .iter()
            .map(|d| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    d.init()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let all = outs
        .iter()
        .enumerate()
        .map(|(i, o)| format!("--- --init {i} ---\n{}", o.describe()))
        .collect::<Vec<_>>()
        .join("\n");
    let created = format!("Created the PostgreSQL database {db}.");
    let winners: Vec<usize> = (0..HOSTS).filter(|&i| outs[i].success()).collect();
    assert_eq!(winners.len(), 1, "expected one --init to succeed:\n{all}");
    let winner = winners[0];
    assert!(outs[winner].stdout().contains(&created), "{all}");
    assert!(
        key(&daemons[winner]).exists(),
        "the winner's key file is gone"
    );
    for i in (0..HOSTS).filter(|&i| i != winner) {
        let out = &outs[i];
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(!out.stdout().contains(&created), "{all}");
        assert!(
            out.stderr().contains(
                "the PostgreSQL database exists already; --init only creates a new database"
            ),
            "--init {i} does not say the database exists:\n{all}"
        );
        assert!(
            !key(&daemons[i]).exists(),
            "--init {i} failed but left its key file {}",
            key(&daemons[i]).display()
        );
    }
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM twofactor_schema"), "1");
    let version = pg.psql(&db, "SELECT version FROM twofactor_schema");
    assert!(
        version.parse::<i64>().is_ok_and(|v| v > 0),
        "schema version {version:?}"
    );

    // The database the winner made is a working store for a fleet.
    let mut daemons = daemons;
    let mut first = daemons.swap_remove(winner);
    drop(daemons);
    let bus = PrivateBus::start();
    if let Err(e) = first.try_launch(&bus) {
        panic!("{e}");
    }
    let a = Env { daemon: first, bus };
    let b = Env::start_sharing(&config, &a);
    let pam_b = b.pam("");
    let secret = a.ctl().enroll_app(&user).compact_secret();
    totp::ensure_step_margin(3);
    login_on("B", &pam_b, &user, &totp::code_now(&secret), &a, &b)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code();
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM twofactor_schema"),
        "1",
        "starting the hosts added schema rows"
    );
}

/// The database stops answering but keeps the connection (a hung server,
/// or a partition whose packets are still acknowledged: a freezing proxy
/// between the daemon and PostgreSQL). The login is refused by the
/// daemon's own deadline on the call, not left to hang until the module
/// gives up; once the database answers again the next login works, with
/// no restart.
#[test]
fn a_database_that_stops_answering_is_a_refusal_not_a_hung_login() {
    if !need_root!() || !need_postgres!() {
        return;
    }
    let user = TestUser::new();
    let pg = PgServer::start();
    let db = pg.create_database();
    let upstream = format!("127.0.0.1:{}", pg.port())
        .parse()
        .expect("the server's address");
    let proxy = twofactor_tests::tcp_proxy::Proxy::start(upstream);
    let store = pg.store_toml(&db, false).replace(
        &format!("port = {}", pg.port()),
        &format!("port = {}", proxy.port()),
    );
    let config = DaemonConfig {
        extra: format!("{store}\nconnect_timeout_seconds = 1\nstatement_timeout_seconds = 2\n"),
        ..DaemonConfig::default()
    };
    let a = Env::start(&config);
    let secret = a.ctl().enroll_app(&user).compact_secret();
    let pam = a.pam("");
    let login = |answer: &str| login_on("A", &pam, &user, answer, &a, &a);
    let codes = Codes::new(&secret);
    login(&codes.next(0))
        .assert_result("PAM_SUCCESS")
        .assert_errors(&[]);

    proxy.freeze();
    let code = codes.next(0);
    // Refused by the daemon (the module logs that twofactord refused the
    // login), not by the module's own 15 s wait for an answer.
    assert_refused_db_down(&login(&code));
    let log = a.daemon.wait_log("the database did not answer within 3 s");
    assert!(
        log.contains("the database did not answer within 3 s"),
        "{log}"
    );

    proxy.thaw();
    // The code was refused before it was checked: it is still unused.
    login(&code)
        .assert_result("PAM_SUCCESS")
        .assert_asked_code()
        .assert_errors(&[]);
}
