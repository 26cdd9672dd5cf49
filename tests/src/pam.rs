//! The built `pam_twofactor.so` under real libpam: a private PAM service
//! directory and `pam-harness`, a small PAM client (tests/src/bin) that runs
//! pam_authenticate with a service from that directory, answers the
//! conversation from stdin (one answer per line) and prints JSON lines:
//! `{"event":"info"|"error","text":..}`, `{"event":"prompt","echo":bool,"text":..}`,
//! `{"event":"result","code":N,"name":"PAM_SUCCESS"}`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{self, Finished, Interactive};
use crate::syslog::SyslogSink;

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct PamService {
    dir: tempfile::TempDir,
    name: String,
}

impl PamService {
    /// A service `name` with the given file contents.
    pub fn with_text(name: &str, text: &str) -> PamService {
        let dir = crate::temp_dir("tft-pam-");
        crate::write_file(&dir.path().join(name), text, 0o644);
        PamService {
            dir,
            name: name.to_string(),
        }
    }

    /// `auth required /abs/libpam_twofactor.so ARGS`, and the module in
    /// the account phase too (+ pam_permit), as the README says.
    pub fn with_args(name: &str, args: &str) -> PamService {
        let so = crate::pam_module_so();
        let text = format!(
            "auth required {so} {args}\naccount required {so}\naccount required pam_permit.so\n",
            so = so.display()
        );
        PamService::with_text(name, &text)
    }

    /// The module with `bus=ADDRESS` and `extra` arguments.
    pub fn for_bus(address: &str, extra: &str) -> PamService {
        PamService::with_args("tft-login", &format!("bus={address} {extra}"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn file(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// Adds another service file to the same directory (same module line
    /// as `text`), e.g. to log in through two services.
    pub fn add_service(&self, name: &str, text: &str) {
        crate::write_file(&self.dir.path().join(name), text, 0o644);
    }

    pub fn login(&self, user: &str) -> Login<'_> {
        Login {
            service: self,
            service_name: self.name.clone(),
            user: user.to_string(),
            rhost: None,
            tty: None,
            as_user: None,
            env: Vec::new(),
            answers: Vec::new(),
            system_bus: None,
            no_account: false,
            hold_account: false,
            retry_as: None,
        }
    }
}

/// One run of the harness, built up and then `run()`.
pub struct Login<'a> {
    service: &'a PamService,
    service_name: String,
    user: String,
    rhost: Option<String>,
    tty: Option<String>,
    as_user: Option<(u32, u32)>,
    env: Vec<(String, String)>,
    answers: Vec<Vec<u8>>,
    /// Run with a private /run/dbus: `Some(None)` no system bus at the
    /// fixed socket, `Some(Some(p))` the fixed socket leads to `p`.
    system_bus: Option<Option<PathBuf>>,
    /// Stop after pam_authenticate, as an application that never runs the
    /// account phase would.
    no_account: bool,
    /// Wait for one more line of input between the two phases.
    hold_account: bool,
    /// After a failed pam_authenticate, set PAM_USER to this name and
    /// authenticate again on the same handle (as `login` does).
    retry_as: Option<String>,
}

impl<'a> Login<'a> {
    /// When pam_authenticate fails, sets PAM_USER to `user` and runs it
    /// again on the same handle, as `login` (util-linux) does.
    pub fn retry_as(mut self, user: &str) -> Self {
        self.retry_as = Some(user.to_string());
        self
    }

    /// Waits, after a successful pam_authenticate, for one more line of
    /// input before pam_acct_mgmt ([`LiveLogin::release_account`]).
    pub fn hold_account_phase(mut self) -> Self {
        self.hold_account = true;
        self
    }

    /// Runs pam_authenticate only, never pam_acct_mgmt.
    pub fn without_account_phase(mut self) -> Self {
        self.no_account = true;
        self
    }

    /// Runs the harness in a mount namespace where the fixed system bus
    /// socket (/run/dbus/system_bus_socket) leads to `socket`, or to nothing
    /// (`None`), whatever the machine has. Root only.
    pub fn fixed_system_bus(mut self, socket: Option<&Path>) -> Self {
        self.system_bus = Some(socket.map(Path::to_path_buf));
        self
    }
    /// Another service file of the same directory.
    pub fn service(mut self, name: &str) -> Self {
        self.service_name = name.to_string();
        self
    }
    pub fn rhost(mut self, h: &str) -> Self {
        self.rhost = Some(h.into());
        self
    }
    pub fn tty(mut self, t: &str) -> Self {
        self.tty = Some(t.into());
        self
    }
    /// Runs the harness as this uid:gid instead of root (screen locker).
    pub fn as_user(mut self, uid: u32, gid: u32) -> Self {
        self.as_user = Some((uid, gid));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// One answer (a line on the harness's stdin).
    pub fn answer(mut self, a: impl AsRef<[u8]>) -> Self {
        self.answers.push(a.as_ref().to_vec());
        self
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--confdir".to_string(),
            self.service.dir().display().to_string(),
            "--service".into(),
            self.service_name.clone(),
            "--user".into(),
            self.user.clone(),
        ];
        if let Some(h) = &self.rhost {
            a.push("--rhost".into());
            a.push(h.clone());
        }
        if let Some(t) = &self.tty {
            a.push("--tty".into());
            a.push(t.clone());
        }
        if self.no_account {
            a.push("--no-account".into());
        }
        if self.hold_account {
            a.push("--hold-account".into());
        }
        if let Some(u) = &self.retry_as {
            a.push("--retry-as".into());
            a.push(u.clone());
        }
        a
    }

    fn command(&self, syslog: Option<&SyslogSink>) -> Command {
        let bin = crate::pam_harness_bin();
        let mut cmd = match (syslog, &self.system_bus) {
            (Some(_), Some(_)) => panic!("syslog capture and a private /run/dbus do not mix"),
            (Some(s), None) => s.wrap(&bin),
            (None, Some(bus)) => crate::with_fixed_system_bus(&bin, bus.as_deref(), self.as_user),
            (None, None) => Command::new(&bin),
        };
        cmd.args(self.args());
        cmd.env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("PATH", crate::PATH);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let (Some((uid, gid)), None) = (self.as_user, &self.system_bus) {
            assert!(syslog.is_none(), "syslog capture runs as root only");
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn input(&self) -> Vec<u8> {
        let mut input = Vec::new();
        for a in &self.answers {
            input.extend_from_slice(a);
            input.push(b'\n');
        }
        input
    }

    pub fn run(&self) -> PamRun {
        PamRun::parse(proc::run(&mut self.command(None), &self.input(), TIMEOUT))
    }

    /// Runs with the module's syslog caught by `sink`.
    pub fn run_with_syslog(&self, sink: &SyslogSink) -> PamRun {
        PamRun::parse(proc::run(
            &mut self.command(Some(sink)),
            &self.input(),
            TIMEOUT,
        ))
    }

    /// Starts the harness without answering; the test reads its events and
    /// answers itself (see [`LiveLogin`]).
    pub fn spawn(&self) -> LiveLogin {
        LiveLogin {
            p: Interactive::spawn(&mut self.command(None)),
        }
    }
}

/// A harness run driven step by step.
pub struct LiveLogin {
    pub p: Interactive,
}

impl LiveLogin {
    /// Waits for the next prompt event; returns its text.
    pub fn expect_prompt(&mut self) -> String {
        self.expect_event("prompt", "text", TIMEOUT)
    }
    pub fn answer(&mut self, a: impl AsRef<[u8]>) {
        let mut bytes = a.as_ref().to_vec();
        bytes.push(b'\n');
        self.p.write(&bytes);
    }
    /// Waits for pam_authenticate's result; returns its name.
    pub fn expect_auth(&mut self) -> String {
        self.expect_event("auth", "name", TIMEOUT)
    }
    /// Lets a login held by [`Login::hold_account_phase`] go on to
    /// pam_acct_mgmt and returns its result's name; fails the test if it
    /// does not come `within`.
    pub fn release_account(&mut self, within: Duration) -> String {
        self.p.write(b"\n");
        self.expect_event("account", "name", within)
    }
    /// Waits (at most `within`) for the next event `kind` and returns its
    /// `field`; fails the test if the login ends (`result`) first.
    fn expect_event(&mut self, kind: &str, field: &str, within: Duration) -> String {
        let line = self.p.expect_line(within, |l| {
            event(l).is_some_and(|v| v["event"] == kind || v["event"] == "result")
        });
        let v = event(&line).unwrap_or_default();
        assert_eq!(v["event"], kind, "expected {kind}, got {line}");
        v[field].as_str().unwrap_or_default().to_string()
    }
    pub fn finish(mut self) -> PamRun {
        PamRun::parse(self.p.finish(TIMEOUT))
    }
}

fn event(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(line.trim()).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub echo: bool,
    pub text: String,
}

/// What the harness reported.
#[derive(Debug)]
pub struct PamRun {
    pub prompts: Vec<Prompt>,
    pub infos: Vec<String>,
    pub errors: Vec<String>,
    /// PAM result name of the login, e.g. "PAM_SUCCESS" (empty: the
    /// harness printed none): pam_authenticate's, or pam_acct_mgmt's when
    /// authentication succeeded and the account phase ran.
    pub result: String,
    /// pam_authenticate's result name.
    pub auth: String,
    /// pam_acct_mgmt's result name (empty: it did not run).
    pub account: String,
    pub code: i64,
    /// The harness's `host` line (threads and descriptors before, during
    /// and after the login), if it printed one.
    pub host: Option<serde_json::Value>,
    pub output: Finished,
    /// More to show when an assertion fails (module syslog, daemon log).
    pub context: String,
}

impl PamRun {
    pub fn parse(output: Finished) -> PamRun {
        let mut run = PamRun {
            prompts: Vec::new(),
            infos: Vec::new(),
            errors: Vec::new(),
            result: String::new(),
            auth: String::new(),
            account: String::new(),
            code: -1,
            host: None,
            output,
            context: String::new(),
        };
        let stdout = run.output.stdout();
        for line in stdout.lines() {
            let Some(v) = event(line) else { continue };
            let text = v["text"].as_str().unwrap_or_default().to_string();
            match v["event"].as_str().unwrap_or_default() {
                "info" => run.infos.push(text),
                "error" => run.errors.push(text),
                "prompt" => run.prompts.push(Prompt {
                    echo: v["echo"].as_bool().unwrap_or(false),
                    text,
                }),
                "result" => {
                    run.result = v["name"].as_str().unwrap_or_default().to_string();
                    run.code = v["code"].as_i64().unwrap_or(-1);
                }
                "auth" => run.auth = v["name"].as_str().unwrap_or_default().to_string(),
                "account" => run.account = v["name"].as_str().unwrap_or_default().to_string(),
                "host" => run.host = Some(v.clone()),
                _ => {}
            }
        }
        run
    }

    pub fn describe(&self) -> String {
        format!(
            "result {:?} (code {}), prompts {:?}, infos {:?}, errors {:?}\n{}\n{}",
            self.result,
            self.code,
            self.prompts,
            self.infos,
            self.errors,
            self.output.describe(),
            self.context
        )
    }

    /// Asserts the PAM result name.
    pub fn assert_result(&self, name: &str) -> &Self {
        assert_eq!(
            self.result,
            name,
            "unexpected PAM result: {}",
            self.describe()
        );
        self
    }

    /// Asserts that exactly one prompt was asked: the code prompt, echo off.
    pub fn assert_asked_code(&self) -> &Self {
        assert_eq!(
            self.prompts,
            vec![Prompt {
                echo: false,
                text: crate::CODE_PROMPT.into()
            }],
            "expected exactly the code prompt: {}",
            self.describe()
        );
        self
    }

    /// Asserts that nothing was asked.
    pub fn assert_no_prompt(&self) -> &Self {
        assert!(
            self.prompts.is_empty(),
            "expected no prompt: {}",
            self.describe()
        );
        self
    }

    /// Asserts the error messages shown, exactly.
    pub fn assert_errors(&self, errors: &[&str]) -> &Self {
        assert_eq!(self.errors, errors, "error messages: {}", self.describe());
        self
    }
}
