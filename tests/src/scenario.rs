//! The common starting point of most tests: a private bus, a daemon, a real
//! user enrolled with an authenticator app through `twofactorctl`, and a PAM
//! service using the module on that bus.

use crate::admin::FakeClock;
use crate::daemon::{DaemonConfig, Env};
use crate::pam::{PamRun, PamService};
use crate::syslog::SyslogSink;
use crate::totp;
use crate::users::TestUser;

pub struct Enrolled {
    // Drop order: PAM files, then daemon and bus, then the user.
    pub pam: PamService,
    pub env: Env,
    pub secret: String,
    pub user: TestUser,
    /// The daemon's clock, when the test moves it ([`Enrolled::on_clock`]).
    pub clock: Option<FakeClock>,
}

impl Enrolled {
    pub fn new(config: &DaemonConfig) -> Enrolled {
        Enrolled::started(Env::start(config), None)
    }

    /// [`Enrolled::new`] with the daemon on a clock the test moves (and
    /// [`Enrolled::codes`] moves a step on rather than wait for one).
    pub fn on_clock(config: &DaemonConfig) -> Enrolled {
        let clock = FakeClock::new();
        Enrolled::started(Env::start_on(config, &clock), Some(clock))
    }

    fn started(env: Env, clock: Option<FakeClock>) -> Enrolled {
        let user = TestUser::new();
        let enrolment = env.ctl().enroll_app(&user);
        let pam = env.pam("");
        Enrolled {
            pam,
            env,
            secret: enrolment.compact_secret(),
            user,
            clock,
        }
    }

    /// Moves the daemon's clock `seconds` on (a daemon of
    /// [`Enrolled::on_clock`]), rather than waiting for them to pass.
    pub fn advance_clock(&self, seconds: u64) {
        match &self.clock {
            Some(clock) => clock.advance(u32::try_from(seconds).unwrap_or(u32::MAX)),
            None => panic!("advance_clock needs a daemon started with Enrolled::on_clock"),
        }
    }

    /// Fresh codes of the user's app, one after another
    /// ([`totp::Codes::fresh`]): on the daemon's clock if the test moves it.
    pub fn codes(&self) -> totp::Codes {
        match &self.clock {
            Some(clock) => totp::Codes::on(&self.secret, clock),
            None => totp::Codes::new(&self.secret),
        }
    }

    pub fn with_defaults() -> Enrolled {
        Enrolled::new(&DaemonConfig::default())
    }

    /// The code of the current step (with a few seconds left in it).
    pub fn code_now(&self) -> String {
        totp::ensure_step_margin(3);
        totp::code_now(&self.secret)
    }

    /// A login of the enrolled user through the harness, answering `answer`.
    /// The module's syslog lines and the daemon's log are kept in the
    /// result, for failure messages.
    pub fn login(&self, answer: impl AsRef<[u8]>) -> PamRun {
        let sink = SyslogSink::new();
        let mut run = self
            .pam
            .login(&self.user.name)
            .answer(answer)
            .run_with_syslog(&sink);
        run.context = format!(
            "--- module syslog ---\n{}\n--- daemon log ---\n{}",
            sink.text(),
            self.env.daemon.log()
        );
        run
    }

    /// Asserts that the daemon's log holds none of the user's secrets (TOTP
    /// secret, password) nor any of `also` (codes, answers used).
    pub fn assert_log_clean(&self, also: &[&str]) {
        let log = self.env.daemon.log();
        let mut secrets = vec![
            ("secret", self.secret.as_str()),
            ("password", self.user.password()),
        ];
        secrets.extend(also.iter().map(|a| ("answer", *a)));
        for (what, s) in secrets {
            assert!(
                !s.is_empty() && !log.contains(s),
                "the daemon log contains a {what} ({s:?}):\n{log}"
            );
        }
    }

    /// `failures` from the user's own `twofactorctl status --json`.
    pub fn failures(&self) -> u64 {
        self.env.ctl().failures(&self.user)
    }
}
