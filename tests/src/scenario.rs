//! The common starting point of most tests: a private bus, a daemon, a real
//! user enrolled with an authenticator app through `twofactorctl`, and a PAM
//! service using the module on that bus.

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
}

impl Enrolled {
    pub fn new(config: &DaemonConfig) -> Enrolled {
        let env = Env::start(config);
        let user = TestUser::new();
        let enrolment = env.ctl().enroll_app(&user);
        let pam = env.pam("");
        Enrolled {
            pam,
            env,
            secret: enrolment.compact_secret(),
            user,
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
