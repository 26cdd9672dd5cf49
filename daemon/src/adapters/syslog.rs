//! Audit lines to syslog (facility authpriv, ident twofactord), and to
//! stderr with `--log-stderr`.
//!
//! Lines are `EVENT key=value ...`. Values come from callers (user names,
//! rhost, service) and are quoted and escaped so that they can never forge a
//! second line or field. Only the fields listed in [`Event`] exist: there is
//! no way to log a code, secret, URI or password through this module.

use crate::origin::Origin;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

/// Everything the daemon audits.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Start {
        version: &'a str,
    },
    Stop,
    /// The second factor passed; the login is not a success before the
    /// account phase confirms it ([`Event::LoginSuccess`]).
    SecondFactorAccepted {
        origin: &'a Origin,
        method: &'a str,
        device: Option<&'a str>,
    },
    /// The whole PAM stack succeeded (the account phase's `Commit`).
    LoginSuccess {
        origin: &'a Origin,
        method: &'a str,
        device: Option<&'a str>,
    },
    /// The second factor passed but the account phase never confirmed the
    /// login (the stack failed, the application gave up, or time ran out).
    LoginNotCompleted {
        origin: &'a Origin,
        method: &'a str,
        why: &'a str,
    },
    LoginNoMethod {
        origin: &'a Origin,
    },
    /// A name the system does not know, answered as a user without a
    /// method.
    LoginUnknownUser {
        origin: &'a Origin,
    },
    LoginFailure {
        origin: &'a Origin,
        reason: &'a str,
    },
    Lockout {
        user: &'a str,
        seconds: i64,
    },
    PolicySet {
        by: &'a str,
        mandatory: bool,
        groups: &'a str,
        from: &'a str,
    },
    Reset {
        by: &'a str,
        user: &'a str,
    },
    Unlock {
        by: &'a str,
        user: &'a str,
    },
    Import {
        by: &'a str,
        user: &'a str,
        scratch_codes: u32,
    },
    RecoveryCodeUsed {
        origin: &'a Origin,
    },
    EnrolAtLogin {
        origin: &'a Origin,
        method: &'a str,
        why: &'a str,
    },
    /// A change a login set up (enrolment, recovery) was dropped: the PAM
    /// stack did not succeed, or the application never ran the account
    /// phase.
    PendingDiscarded {
        origin: &'a Origin,
        why: &'a str,
    },
    BackupCodeUsed {
        user: &'a str,
        left: u32,
    },
    BackupCodesNew {
        user: &'a str,
        count: usize,
    },
    EnrolStart {
        user: &'a str,
        method: &'a str,
    },
    Enrol {
        user: &'a str,
        method: &'a str,
    },
    EnrolFailure {
        user: &'a str,
        method: &'a str,
        reason: &'a str,
    },
    Disable {
        user: &'a str,
        method: &'a str,
    },
    ReauthFailure {
        user: &'a str,
        action: &'a str,
    },
    Denied {
        uid: u32,
        action: &'a str,
    },
    /// An administrator asked for something only root may do to this
    /// user (root or another administrator). `user` comes before `by`, so
    /// that the line never reads like the `admin-reset by= user=` of a
    /// change that was made.
    DeniedTarget {
        uid: u32,
        by: &'a str,
        action: &'a str,
        user: &'a str,
    },
    Error {
        context: &'a str,
        error: &'a str,
    },
    /// A mail went out: a code (`purpose` login or confirm) or a notice.
    /// `to` is the masked address; the code never appears.
    MailSent {
        user: &'a str,
        purpose: &'a str,
        to: &'a str,
    },
    MailFailed {
        user: &'a str,
        purpose: &'a str,
        error: &'a str,
    },
    Prefer {
        user: &'a str,
        method: &'a str,
    },
    /// A login passed on a trusted device (named by its id only).
    /// A device was trusted at the end of a login (named by its id only).
    DeviceTrusted {
        origin: &'a Origin,
        device: &'a str,
        days: u32,
    },
    DevicesRemoved {
        user: &'a str,
        by: &'a str,
        device: &'a str,
        count: u32,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Info,
    Notice,
    Warning,
    Error,
}

impl Event<'_> {
    fn render(&self) -> (Level, String) {
        let mut line = Line::default();
        let level = match self {
            Event::Start { version } => {
                line.event("start").kv("version", version);
                Level::Info
            }
            Event::Stop => {
                line.event("stop");
                Level::Info
            }
            Event::SecondFactorAccepted {
                origin,
                method,
                device,
            } => {
                line.event("second-factor-accepted")
                    .origin(origin)
                    .kv("method", method);
                if let Some(device) = device {
                    line.kv("device", device);
                }
                Level::Info
            }
            Event::LoginSuccess {
                origin,
                method,
                device,
            } => {
                line.event("login-success")
                    .origin(origin)
                    .kv("method", method);
                if let Some(device) = device {
                    line.kv("device", device);
                }
                Level::Info
            }
            Event::LoginNotCompleted {
                origin,
                method,
                why,
            } => {
                line.event("login-not-completed")
                    .origin(origin)
                    .kv("method", method)
                    .kv("why", why);
                Level::Notice
            }
            Event::LoginNoMethod { origin } => {
                line.event("login-no-method").origin(origin);
                Level::Info
            }
            Event::LoginUnknownUser { origin } => {
                line.event("login-unknown-user").origin(origin);
                Level::Notice
            }
            Event::LoginFailure { origin, reason } => {
                line.event("login-failure")
                    .origin(origin)
                    .kv("reason", reason);
                Level::Warning
            }
            Event::Lockout { user, seconds } => {
                line.event("lockout")
                    .kv("user", user)
                    .kv("seconds", &seconds.to_string());
                Level::Warning
            }
            Event::PolicySet {
                by,
                mandatory,
                groups,
                from,
            } => {
                line.event("admin-policy")
                    .kv("by", by)
                    .kv("mandatory", if *mandatory { "on" } else { "off" })
                    .kv("groups", groups)
                    .kv("from", from);
                Level::Notice
            }
            Event::Reset { by, user } => {
                line.event("admin-reset").kv("by", by).kv("user", user);
                Level::Notice
            }
            Event::Unlock { by, user } => {
                line.event("admin-unlock").kv("by", by).kv("user", user);
                Level::Notice
            }
            Event::Import {
                by,
                user,
                scratch_codes,
            } => {
                line.event("admin-import")
                    .kv("by", by)
                    .kv("user", user)
                    .kv("scratch_codes", &scratch_codes.to_string());
                Level::Notice
            }
            Event::RecoveryCodeUsed { origin } => {
                line.event("recovery-code-used").origin(origin);
                Level::Notice
            }
            Event::EnrolAtLogin {
                origin,
                method,
                why,
            } => {
                line.event("enrol")
                    .origin(origin)
                    .kv("method", method)
                    .kv("via", "login")
                    .kv("why", why);
                Level::Notice
            }
            Event::PendingDiscarded { origin, why } => {
                line.event("login-change-discarded")
                    .origin(origin)
                    .kv("why", why);
                Level::Notice
            }
            Event::BackupCodeUsed { user, left } => {
                line.event("backup-code-used")
                    .kv("user", user)
                    .kv("left", &left.to_string());
                Level::Notice
            }
            Event::BackupCodesNew { user, count } => {
                line.event("backup-codes-new")
                    .kv("user", user)
                    .kv("count", &count.to_string());
                Level::Notice
            }
            Event::EnrolStart { user, method } => {
                line.event("enrol-start")
                    .kv("user", user)
                    .kv("method", method);
                Level::Info
            }
            Event::Enrol { user, method } => {
                line.event("enrol").kv("user", user).kv("method", method);
                Level::Notice
            }
            Event::EnrolFailure {
                user,
                method,
                reason,
            } => {
                line.event("enrol-failure")
                    .kv("user", user)
                    .kv("method", method)
                    .kv("reason", reason);
                Level::Warning
            }
            Event::Disable { user, method } => {
                line.event("disable").kv("user", user).kv("method", method);
                Level::Notice
            }
            Event::ReauthFailure { user, action } => {
                line.event("reauth-failure")
                    .kv("user", user)
                    .kv("action", action);
                Level::Warning
            }
            Event::Denied { uid, action } => {
                line.event("denied")
                    .kv("uid", &uid.to_string())
                    .kv("action", action);
                Level::Warning
            }
            Event::DeniedTarget {
                uid,
                by,
                action,
                user,
            } => {
                line.event("denied")
                    .kv("uid", &uid.to_string())
                    .kv("action", action)
                    .kv("user", user)
                    .kv("by", by);
                Level::Warning
            }
            Event::Error { context, error } => {
                line.event("error")
                    .kv("context", context)
                    .kv("error", error);
                Level::Error
            }
            Event::MailSent { user, purpose, to } => {
                line.event("mail-sent")
                    .kv("user", user)
                    .kv("purpose", purpose)
                    .kv("to", to);
                Level::Info
            }
            Event::MailFailed {
                user,
                purpose,
                error,
            } => {
                line.event("mail-failed")
                    .kv("user", user)
                    .kv("purpose", purpose)
                    .kv("error", error);
                Level::Warning
            }
            Event::DeviceTrusted {
                origin,
                device,
                days,
            } => {
                line.event("device-trusted")
                    .origin(origin)
                    .kv("device", device)
                    .kv("days", &days.to_string());
                Level::Notice
            }
            Event::DevicesRemoved {
                user,
                by,
                device,
                count,
            } => {
                line.event("devices-removed")
                    .kv("user", user)
                    .kv("by", by)
                    .kv("device", device)
                    .kv("count", &count.to_string());
                Level::Notice
            }
            Event::Prefer { user, method } => {
                line.event("prefer").kv("user", user).kv("method", method);
                Level::Info
            }
        };
        (level, line.0)
    }
}

#[derive(Default)]
struct Line(String);

impl Line {
    fn event(&mut self, name: &str) -> &mut Self {
        self.0.push_str(name);
        self
    }
    fn kv(&mut self, key: &str, value: &str) -> &mut Self {
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&quote(value));
        self
    }
    fn origin(&mut self, o: &Origin) -> &mut Self {
        self.kv("user", &o.user)
            .kv("service", &o.service)
            .kv("rhost", &o.rhost)
            .kv("tty", &o.tty)
    }
}

/// Plain values stay as they are; anything else is double-quoted with
/// `"`, `\` and control characters escaped.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@:/+[]%".contains(c));
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

type SysLogger = Logger<LoggerBackend, Formatter3164>;

/// Where audit lines go.
/// Lines waiting for the syslog writer; past this, logging waits.
const QUEUE: usize = 4096;

pub struct Audit {
    /// Lines go to a thread of their own that writes them to syslog: a
    /// slow or stuck journald must not stall the async workers that serve
    /// every login. None without syslog.
    writer: Mutex<Option<SyncSender<(Level, String)>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stderr: bool,
    /// ` host=NAME`, ending every line: lines of the hosts that share a
    /// store are told apart wherever they are collected.
    host: String,
    #[cfg(test)]
    pub captured: Mutex<Vec<String>>,
}

impl Audit {
    pub fn new(use_syslog: bool, stderr: bool) -> Self {
        let (writer, thread) = if use_syslog {
            let (tx, rx) = sync_channel::<(Level, String)>(QUEUE);
            let thread = std::thread::Builder::new()
                .name("syslog".into())
                .spawn(move || {
                    let mut syslog = None;
                    for (level, line) in rx {
                        to_syslog(&mut syslog, level, &line);
                    }
                })
                .ok();
            match thread {
                Some(t) => (Some(tx), Some(t)),
                None => (None, None),
            }
        } else {
            (None, None)
        };
        // Without a writer thread (it could not be started), lines go to
        // stderr rather than nowhere.
        let stderr = stderr || (use_syslog && writer.is_none());
        Audit {
            writer: Mutex::new(writer),
            thread: Mutex::new(thread),
            stderr,
            host: format!(" host={}", quote(&crate::config::hostname())),
            #[cfg(test)]
            captured: Mutex::new(Vec::new()),
        }
    }

    /// Audits an internal failure and returns the error the caller sees
    /// (which never carries the details).
    pub fn internal(&self, context: &str, error: &str) -> twofactor_proto::error::Error {
        self.log(Event::Error { context, error });
        twofactor_proto::error::Error::Internal(
            "the daemon could not complete the request; nothing was changed".into(),
        )
    }

    pub fn log(&self, event: Event<'_>) {
        let (level, mut line) = event.render();
        line.push_str(&self.host);
        if self.stderr {
            eprintln!("twofactord: {line}");
        }
        #[cfg(test)]
        if let Ok(mut c) = self.captured.lock() {
            c.push(line.clone());
        }
        if let Ok(writer) = self.writer.lock() {
            if let Some(tx) = writer.as_ref() {
                // Waits only when QUEUE lines are already waiting.
                let _ = tx.send((level, line));
            }
        }
    }
}

impl Drop for Audit {
    /// Writes out what is queued before the daemon exits.
    fn drop(&mut self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// Writes one line, (re)connecting to /dev/log when needed.
fn to_syslog(syslog: &mut Option<SysLogger>, level: Level, line: &str) {
    if syslog.is_none() {
        *syslog = syslog::unix(Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "twofactord".into(),
            pid: std::process::id(),
        })
        .ok();
    }
    let sent = match syslog.as_mut() {
        Some(logger) => match level {
            Level::Info => logger.info(line),
            Level::Notice => logger.notice(line),
            Level::Warning => logger.warning(line),
            Level::Error => logger.err(line),
        }
        .is_ok(),
        None => false,
    };
    if !sent {
        *syslog = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_forge_lines_or_fields() {
        assert_eq!(quote("alice"), "alice");
        assert_eq!(quote("10.0.0.1"), "10.0.0.1");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(
            quote("x\nlogin-success user=root"),
            "\"x\\x0alogin-success user=root\""
        );
        assert_eq!(quote("q\"\\"), "\"q\\\"\\\\\"");
    }

    #[test]
    fn login_line_shape() {
        let o = Origin {
            ssh_auth_info: String::new(),
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "127.0.0.1".into(),
            tty: "ssh".into(),
        };
        let (level, line) = Event::LoginSuccess {
            origin: &o,
            method: "app",
            device: None,
        }
        .render();
        assert_eq!(level, Level::Info);
        assert_eq!(
            line,
            "login-success user=alice service=sshd rhost=127.0.0.1 tty=ssh method=app"
        );
    }
}
