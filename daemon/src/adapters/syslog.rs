//! Audit lines to syslog (facility authpriv, ident twofactord), and to
//! stderr with `--log-stderr`. When the syslog socket cannot take them,
//! they go to stderr (the journal under systemd) and the outage is said
//! once when it begins and once when it ends; a line that reaches neither
//! is counted and the count logged ([`Writer`]).
//!
//! Lines are `EVENT key=value ...`. Values come from callers (user names,
//! rhost, service) and are quoted and escaped so that they can never forge a
//! second line or field. Only the fields listed in [`Event`] exist: there is
//! no way to log a code, secret, URI or password through this module.

use crate::clock::Clock;
use crate::origin::Origin;
use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// Everything the daemon audits.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Start {
        version: &'a str,
    },
    Stop,
    /// The login socket is served: systemd passed it (`from=systemd`), or
    /// the daemon bound it (`from=daemon`).
    LoginSocket {
        path: &'a str,
        from: &'a str,
    },
    /// A fleet's verifier takes its hosts' requests at `address`.
    FleetVerifier {
        address: &'a str,
    },
    /// A fleet's host forwarded an `Account1` or `Admin1` call (`path`)
    /// of its caller `uid`, named `user` there.
    FleetRequest {
        host: &'a str,
        path: &'a str,
        uid: u32,
        user: &'a str,
    },
    /// A connection to the login socket was closed at once: its user (the
    /// caller, or the user a root caller acts for) or the daemon as a
    /// whole holds all the connections it may (`why`).
    ConnectionRefused {
        uid: u32,
        user: Option<u32>,
        why: &'a str,
    },
    /// The syslog socket stopped taking lines (missing, refusing, too
    /// slow): the lines that follow go to stderr until it takes them
    /// again. Said once per outage, on stderr.
    SyslogUnreachable {
        socket: &'a str,
        error: &'a str,
    },
    /// The syslog socket takes lines again, after `seconds`; meanwhile
    /// `stderr_lines` went to stderr and `dropped` reached neither.
    SyslogRestored {
        socket: &'a str,
        seconds: i64,
        stderr_lines: u64,
        dropped: u64,
    },
    /// `count` lines reached neither syslog nor stderr (the queue was
    /// full, or stderr failed too) since the last such line; `total`
    /// since the start.
    LinesDropped {
        count: u64,
        total: u64,
    },
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
    /// A change to an account was not confirmed by a second factor.
    ConfirmFailure {
        user: &'a str,
        action: &'a str,
        reason: &'a str,
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
    /// Trust ended by someone's action: `why` is `removed` (`devices
    /// remove`, by the user or an administrator) or `backup-codes-new`.
    DevicesRemoved {
        user: &'a str,
        by: &'a str,
        device: &'a str,
        count: u32,
        why: &'a str,
    },
    /// A login found a trusted device whose trust no longer holds
    /// (`why`: `password-changed`) and ended it; a code is asked.
    DeviceEnded {
        origin: &'a Origin,
        device: &'a str,
        why: &'a str,
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
            Event::LoginSocket { path, from } => {
                line.event("login-socket").kv("path", path).kv("from", from);
                Level::Info
            }
            Event::FleetVerifier { address } => {
                line.event("fleet-verifier").kv("listen", address);
                Level::Info
            }
            Event::FleetRequest {
                host,
                path,
                uid,
                user,
            } => {
                line.event("fleet-request")
                    .kv("host", host)
                    .kv("path", path)
                    .kv("uid", &uid.to_string())
                    .kv("user", user);
                Level::Info
            }
            Event::ConnectionRefused { uid, user, why } => {
                line.event("connection-refused")
                    .kv("uid", &uid.to_string())
                    .kv(
                        "for",
                        &user.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                    )
                    .kv("why", why);
                Level::Warning
            }
            Event::SyslogUnreachable { socket, error } => {
                line.event("audit-syslog-unreachable")
                    .kv("socket", socket)
                    .kv("error", error)
                    .kv("to", "stderr");
                Level::Warning
            }
            Event::SyslogRestored {
                socket,
                seconds,
                stderr_lines,
                dropped,
            } => {
                line.event("audit-syslog-restored")
                    .kv("socket", socket)
                    .kv("seconds", &seconds.to_string())
                    .kv("stderr_lines", &stderr_lines.to_string())
                    .kv("dropped", &dropped.to_string());
                if *dropped > 0 {
                    Level::Warning
                } else {
                    Level::Notice
                }
            }
            Event::LinesDropped { count, total } => {
                line.event("audit-lines-dropped")
                    .kv("count", &count.to_string())
                    .kv("total", &total.to_string());
                Level::Warning
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
            Event::ConfirmFailure {
                user,
                action,
                reason,
            } => {
                line.event("confirm-failure")
                    .kv("user", user)
                    .kv("action", action)
                    .kv("reason", reason);
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
                why,
            } => {
                line.event("devices-removed")
                    .kv("user", user)
                    .kv("by", by)
                    .kv("device", device)
                    .kv("count", &count.to_string())
                    .kv("why", why);
                Level::Notice
            }
            Event::DeviceEnded {
                origin,
                device,
                why,
            } => {
                line.event("device-ended")
                    .origin(origin)
                    .kv("device", device)
                    .kv("why", why);
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
            .kv("tty", &o.tty);
        // At a fleet's verifier: the host the login is on.
        if let Some(f) = &o.forwarded {
            self.kv("on_host", &f.host);
        }
        self
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

/// The syslog socket when `--syslog-socket` names none.
pub const DEV_LOG: &str = "/dev/log";

/// Lines waiting for the writer thread. Past this, a line is dropped and
/// counted rather than waited for: a stuck syslog must not stall the async
/// workers that serve every login.
const QUEUE: usize = 4096;
/// A record the socket has not taken within this time was not taken (a
/// stuck journald), and the line goes to stderr.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Seconds before an unreachable socket is tried again; each failed try
/// doubles the wait, up to [`LAST_RETRY`]. Tries happen when a line comes.
const FIRST_RETRY: i64 = 1;
const LAST_RETRY: i64 = 60;

/// Where audit lines go, as `main` makes it out of the command line.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// The syslog socket (`--syslog-socket`, [`DEV_LOG`]); None: no syslog
    /// (`--no-syslog`).
    pub syslog: Option<PathBuf>,
    /// Every line also to stderr, as `twofactord: EVENT …`, before
    /// [`Audit::log`] returns (`--log-stderr`).
    pub copy_to_stderr: bool,
    /// stderr takes the lines the syslog socket does not. False when
    /// stderr leads nowhere: the daemon detached without `--log-stderr`
    /// (it is /dev/null); those lines are then counted as dropped.
    pub stderr_fallback: bool,
}

struct Record {
    level: Level,
    line: String,
}

/// Where audit lines go: a writer thread that sends them to syslog, or to
/// stderr while syslog cannot take them ([`Writer`]).
pub struct Audit {
    /// Lines go to a thread of their own that writes them to syslog: a
    /// slow or stuck journald must not stall the async workers that serve
    /// every login. None without syslog.
    writer: Mutex<Option<SyncSender<Record>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stderr: bool,
    /// ` host=NAME`, ending every line: lines of the hosts that share a
    /// store are told apart wherever they are collected.
    host: String,
    /// Lines that reached neither syslog nor stderr since the start: the
    /// queue was full (counted here), or the writer could put them nowhere.
    dropped: Arc<AtomicU64>,
    #[cfg(test)]
    pub captured: Mutex<Vec<String>>,
}

impl Audit {
    /// Syslog at [`DEV_LOG`] (with stderr for what it cannot take) when
    /// `use_syslog`; every line to stderr too when `stderr`. The unit
    /// tests' audit is `Audit::new(false, false)`: lines only captured.
    pub fn new(use_syslog: bool, stderr: bool) -> Self {
        Audit::start(
            Sinks {
                syslog: use_syslog.then(|| PathBuf::from(DEV_LOG)),
                copy_to_stderr: stderr,
                stderr_fallback: use_syslog,
            },
            Arc::new(crate::clock::SystemClock),
        )
    }

    /// The audit of a running daemon: the writer thread starts here.
    pub fn start(sinks: Sinks, clock: Arc<dyn Clock>) -> Self {
        let host = format!(" host={}", quote(&crate::config::hostname()));
        let dropped = Arc::new(AtomicU64::new(0));
        let (writer, thread) = match &sinks.syslog {
            Some(path) => {
                let (tx, rx) = sync_channel::<Record>(QUEUE);
                let mut writer = Writer::new(
                    SocketOutlet::new(path),
                    clock,
                    host.clone(),
                    &sinks,
                    dropped.clone(),
                );
                let thread = std::thread::Builder::new()
                    .name("syslog".into())
                    .spawn(move || {
                        for record in rx {
                            writer.write(record.level, &record.line);
                        }
                        writer.finish();
                    })
                    .ok();
                match thread {
                    Some(t) => (Some(tx), Some(t)),
                    None => (None, None),
                }
            }
            None => (None, None),
        };
        // Without a writer thread (it could not be started), lines go to
        // stderr rather than nowhere.
        let stderr = sinks.copy_to_stderr
            || (sinks.syslog.is_some() && writer.is_none() && sinks.stderr_fallback);
        Audit {
            writer: Mutex::new(writer),
            thread: Mutex::new(thread),
            stderr,
            host,
            dropped,
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
                // Never waits. A line that finds the queue full (or the
                // writer gone) is lost to syslog; it is counted unless it
                // went to stderr above, and the writer says how many.
                if tx.try_send(Record { level, line }).is_err() && !self.stderr {
                    self.dropped.fetch_add(1, Ordering::SeqCst);
                }
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

/// What the writer thread writes to: the syslog socket and stderr
/// ([`SocketOutlet`]; a fake in the unit tests).
trait Outlet {
    /// Opens the syslog socket (again).
    fn connect(&mut self) -> io::Result<()>;
    /// Sends one line to the socket opened last.
    fn syslog(&mut self, level: Level, line: &str) -> io::Result<()>;
    /// Writes one line to stderr.
    fn stderr(&mut self, level: Level, line: &str) -> io::Result<()>;
}

/// Which of the two a report of dropped lines goes to.
#[derive(Clone, Copy)]
enum Sink {
    Syslog,
    Stderr,
}

/// The writer thread's state. Lines go to the syslog socket; when it
/// cannot take one (missing, refusing, too slow, even after opening it
/// again), an outage begins: one `audit-syslog-unreachable` line on
/// stderr, then every line to stderr, and the socket is tried again when a
/// line comes after 1 s, then 2 s, … up to 1 min between tries. The first
/// try that succeeds ends the outage with one `audit-syslog-restored` line
/// (to syslog and stderr) that says how long it was, how many lines went
/// to stderr and how many were lost. A line that reaches neither is
/// counted in `dropped`, and `audit-lines-dropped` says how many, on the
/// sink the next line reaches.
struct Writer<O: Outlet> {
    out: O,
    clock: Arc<dyn Clock>,
    host: String,
    /// The socket, as the notices name it.
    socket: String,
    /// Every line is on stderr already (`--log-stderr`): not again.
    copied: bool,
    /// stderr takes the lines syslog does not.
    fallback: bool,
    dropped: Arc<AtomicU64>,
    /// `dropped` as syslog and stderr were last told it.
    told_syslog: u64,
    told_stderr: u64,
    connected: bool,
    outage: Option<Outage>,
}

#[derive(Clone, Copy, Debug)]
struct Outage {
    since: i64,
    retry_at: i64,
    wait: i64,
    stderr_lines: u64,
}

impl<O: Outlet> Writer<O> {
    fn new(
        out: O,
        clock: Arc<dyn Clock>,
        host: String,
        sinks: &Sinks,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        let socket = sinks
            .syslog
            .as_deref()
            .unwrap_or(Path::new(DEV_LOG))
            .display()
            .to_string();
        Writer {
            out,
            clock,
            host,
            socket,
            copied: sinks.copy_to_stderr,
            fallback: sinks.stderr_fallback,
            dropped,
            told_syslog: 0,
            told_stderr: 0,
            connected: false,
            outage: None,
        }
    }

    fn write(&mut self, level: Level, line: &str) {
        let now = self.clock.now();
        if self.outage.is_some() && !self.try_restore(now) {
            self.fallback(level, line);
            return;
        }
        let sent = self
            .report_drops(Sink::Syslog)
            .and_then(|()| self.send(level, line));
        if let Err(e) = sent {
            self.begin_outage(now, &e);
            self.fallback(level, line);
        }
    }

    /// At the end: dropped lines nobody was told of yet, where lines go.
    fn finish(&mut self) {
        if self.outage.is_none() && self.report_drops(Sink::Syslog).is_ok() {
            return;
        }
        if self.fallback || self.copied {
            let _ = self.report_drops(Sink::Stderr);
        }
    }

    /// Sends one line to the socket, opening it when needed, and once more
    /// when a send fails: a restarted syslog leaves the old socket refusing
    /// while a new one waits at the same path.
    fn send(&mut self, level: Level, line: &str) -> io::Result<()> {
        if self.connected {
            if self.out.syslog(level, line).is_ok() {
                return Ok(());
            }
            self.connected = false;
        }
        self.out.connect()?;
        self.connected = true;
        let sent = self.out.syslog(level, line);
        self.connected = sent.is_ok();
        sent
    }

    fn begin_outage(&mut self, now: i64, error: &io::Error) {
        self.connected = false;
        self.outage = Some(Outage {
            since: now,
            retry_at: now.saturating_add(FIRST_RETRY),
            wait: FIRST_RETRY,
            stderr_lines: 0,
        });
        let (level, line) = self.render(Event::SyslogUnreachable {
            socket: &self.socket,
            error: &error.to_string(),
        });
        if self.fallback || self.copied {
            let _ = self.out.stderr(level, &line);
        }
    }

    /// In an outage, once its wait is over: tries the socket with the
    /// notice that ends the outage. True when the socket took it.
    fn try_restore(&mut self, now: i64) -> bool {
        let Some(outage) = self.outage else {
            return true;
        };
        // A wall clock set back never puts the next try off: it is due.
        if now < outage.retry_at && now >= outage.since {
            return false;
        }
        let total = self.dropped.load(Ordering::SeqCst);
        let (level, line) = self.render(Event::SyslogRestored {
            socket: &self.socket,
            seconds: now.saturating_sub(outage.since),
            stderr_lines: outage.stderr_lines,
            dropped: total.saturating_sub(self.told_syslog),
        });
        if self.send(level, &line).is_err() {
            let wait = outage.wait.saturating_mul(2).min(LAST_RETRY);
            self.outage = Some(Outage {
                since: outage.since.min(now),
                retry_at: now.saturating_add(wait),
                wait,
                ..outage
            });
            return false;
        }
        self.outage = None;
        self.told_syslog = total;
        // Whoever read of the outage on stderr reads of its end there.
        if self.fallback || self.copied {
            let _ = self.out.stderr(level, &line);
        }
        true
    }

    /// A line syslog did not take: to stderr, or counted as dropped.
    fn fallback(&mut self, level: Level, line: &str) {
        let reached = if self.copied {
            true
        } else if self.fallback {
            let _ = self.report_drops(Sink::Stderr);
            self.out.stderr(level, line).is_ok()
        } else {
            false
        };
        if !reached {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        } else if let Some(outage) = self.outage.as_mut() {
            outage.stderr_lines = outage.stderr_lines.saturating_add(1);
        }
    }

    /// `audit-lines-dropped` on `sink` when lines were dropped since it was
    /// last told.
    fn report_drops(&mut self, sink: Sink) -> io::Result<()> {
        let total = self.dropped.load(Ordering::SeqCst);
        let told = match sink {
            Sink::Syslog => self.told_syslog,
            Sink::Stderr => self.told_stderr,
        };
        if total <= told {
            return Ok(());
        }
        let (level, line) = self.render(Event::LinesDropped {
            count: total - told,
            total,
        });
        match sink {
            Sink::Syslog => {
                self.send(level, &line)?;
                self.told_syslog = total;
            }
            Sink::Stderr => {
                self.out.stderr(level, &line)?;
                self.told_stderr = total;
            }
        }
        Ok(())
    }

    fn render(&self, event: Event<'_>) -> (Level, String) {
        let (level, mut line) = event.render();
        line.push_str(&self.host);
        (level, line)
    }
}

/// The syslog socket (datagram, or stream as some syslog-ng set-ups have
/// it; records as RFC 3164, facility authpriv, ident twofactord) and
/// stderr.
struct SocketOutlet {
    path: PathBuf,
    socket: Option<Connection>,
    format: Formatter3164,
}

enum Connection {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

impl SocketOutlet {
    fn new(path: &Path) -> Self {
        SocketOutlet {
            path: path.to_path_buf(),
            socket: None,
            format: Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "twofactord".into(),
                pid: std::process::id(),
            },
        }
    }
}

impl Outlet for SocketOutlet {
    fn connect(&mut self) -> io::Result<()> {
        self.socket = None;
        let datagram = UnixDatagram::unbound()?;
        let connection = match datagram.connect(&self.path) {
            Ok(()) => {
                datagram.set_write_timeout(Some(SEND_TIMEOUT))?;
                Connection::Datagram(datagram)
            }
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                let stream = UnixStream::connect(&self.path)?;
                stream.set_write_timeout(Some(SEND_TIMEOUT))?;
                Connection::Stream(stream)
            }
            Err(e) => return Err(e),
        };
        self.socket = Some(connection);
        Ok(())
    }

    fn syslog(&mut self, level: Level, line: &str) -> io::Result<()> {
        let mut record = Vec::with_capacity(line.len() + 64);
        self.format
            .format(&mut record, level.severity(), line)
            .map_err(|e| io::Error::other(e.to_string()))?;
        match self.socket.as_mut() {
            Some(Connection::Datagram(s)) => s.send(&record).map(drop),
            Some(Connection::Stream(s)) => {
                // Records on a stream end with a NUL.
                record.push(0);
                s.write_all(&record)
            }
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn stderr(&mut self, level: Level, line: &str) -> io::Result<()> {
        // One write, so that the line is never cut by another thread's.
        std::io::stderr()
            .lock()
            .write_all(stderr_line(level, line).as_bytes())
    }
}

/// A line as the writer puts it on stderr: with sd-daemon(3)'s `<N>`
/// prefix, the syslog level, which the journal reads as the line's
/// priority (and strips); the identifier there is the process name,
/// `twofactord`.
fn stderr_line(level: Level, line: &str) -> String {
    format!("<{}>{line}\n", level.number())
}

impl Level {
    fn severity(self) -> Severity {
        match self {
            Level::Info => Severity::LOG_INFO,
            Level::Notice => Severity::LOG_NOTICE,
            Level::Warning => Severity::LOG_WARNING,
            Level::Error => Severity::LOG_ERR,
        }
    }

    /// The syslog level's number (RFC 5424): 6 info, 5 notice, 4 warning,
    /// 3 error.
    fn number(self) -> u8 {
        match self {
            Level::Info => 6,
            Level::Notice => 5,
            Level::Warning => 4,
            Level::Error => 3,
        }
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
            security_keys: false,
            commit_report: false,
            forwarded: None,
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

    // --- where the lines go: the writer and its outages ---------------

    use crate::clock::ManualClock;

    /// The syslog socket and stderr, as switches.
    struct Fake {
        syslog_up: bool,
        stderr_up: bool,
        /// The open socket refuses until opened again (a restarted
        /// syslog).
        stale: bool,
        connects: u32,
        syslog: Vec<String>,
        stderr: Vec<String>,
    }

    impl Fake {
        fn new(syslog_up: bool, stderr_up: bool) -> Self {
            Fake {
                syslog_up,
                stderr_up,
                stale: false,
                connects: 0,
                syslog: Vec::new(),
                stderr: Vec::new(),
            }
        }
    }

    impl Outlet for Fake {
        fn connect(&mut self) -> io::Result<()> {
            self.connects += 1;
            self.stale = false;
            if self.syslog_up {
                Ok(())
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        }
        fn syslog(&mut self, level: Level, line: &str) -> io::Result<()> {
            if !self.syslog_up || self.stale {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            self.syslog.push(format!("<{}>{line}", level.number()));
            Ok(())
        }
        fn stderr(&mut self, level: Level, line: &str) -> io::Result<()> {
            if !self.stderr_up {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.stderr.push(format!("<{}>{line}", level.number()));
            Ok(())
        }
    }

    /// A writer over `fake` at time 1000; `copied`: `--log-stderr`;
    /// `fallback`: stderr leads somewhere.
    fn writer(fake: Fake, copied: bool, fallback: bool) -> (Writer<Fake>, ManualClock) {
        let clock = ManualClock::at(1000);
        let sinks = Sinks {
            syslog: Some(PathBuf::from("/run/test/log")),
            copy_to_stderr: copied,
            stderr_fallback: fallback,
        };
        let w = Writer::new(
            fake,
            Arc::new(clock.clone()),
            " host=h".into(),
            &sinks,
            Arc::new(AtomicU64::new(0)),
        );
        (w, clock)
    }

    fn failure(w: &mut Writer<Fake>, n: u32) {
        w.write(Level::Warning, &format!("login-failure n={n} host=h"));
    }

    fn count(lines: &[String], event: &str) -> usize {
        lines.iter().filter(|l| l.contains(event)).count()
    }

    #[test]
    fn lines_syslog_cannot_take_go_to_stderr_after_one_notice() {
        let (mut w, _clock) = writer(Fake::new(false, true), false, true);
        failure(&mut w, 1);
        failure(&mut w, 2);
        assert_eq!(
            w.out.stderr,
            [
                "<4>audit-syslog-unreachable socket=/run/test/log \
                 error=\"entity not found\" to=stderr host=h",
                "<4>login-failure n=1 host=h",
                "<4>login-failure n=2 host=h",
            ]
        );
        assert!(w.out.syslog.is_empty());
        assert_eq!(w.out.connects, 1, "no second try within the first second");
        assert_eq!(w.dropped.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_socket_is_tried_again_after_a_doubling_wait_up_to_a_minute() {
        let (mut w, clock) = writer(Fake::new(false, true), false, true);
        let mut tries = Vec::new();
        for t in 0..=300 {
            let before = w.out.connects;
            failure(&mut w, t);
            if w.out.connects > before {
                tries.push(t);
            }
            clock.advance(1);
        }
        assert_eq!(tries, [0, 1, 3, 7, 15, 31, 63, 123, 183, 243]);
        assert_eq!(count(&w.out.stderr, "audit-syslog-unreachable"), 1);
        assert_eq!(count(&w.out.stderr, "login-failure"), 301);
    }

    #[test]
    fn the_end_of_an_outage_is_said_once_with_what_went_to_stderr() {
        let (mut w, clock) = writer(Fake::new(false, true), false, true);
        for n in 1..=3 {
            failure(&mut w, n);
        }
        clock.advance(5);
        w.out.syslog_up = true;
        failure(&mut w, 4);
        failure(&mut w, 5);
        let restored =
            "<5>audit-syslog-restored socket=/run/test/log seconds=5 stderr_lines=3 dropped=0 host=h";
        assert_eq!(
            w.out.syslog,
            [
                restored,
                "<4>login-failure n=4 host=h",
                "<4>login-failure n=5 host=h"
            ]
        );
        assert_eq!(w.out.stderr.len(), 5, "{:?}", w.out.stderr);
        assert_eq!(w.out.stderr[4], restored, "stderr hears of the end too");
        // A second outage is said again.
        w.out.syslog_up = false;
        failure(&mut w, 6);
        assert_eq!(count(&w.out.stderr, "audit-syslog-unreachable"), 2);
    }

    #[test]
    fn a_clock_set_back_does_not_put_the_next_try_off() {
        let (mut w, clock) = writer(Fake::new(false, true), false, true);
        failure(&mut w, 1);
        clock.advance(-3600);
        failure(&mut w, 2);
        assert_eq!(w.out.connects, 2, "tried again at once");
        failure(&mut w, 3);
        assert_eq!(w.out.connects, 2, "and then after the wait again");
    }

    #[test]
    fn a_restarted_syslog_is_opened_again_without_an_outage() {
        let (mut w, _clock) = writer(Fake::new(true, true), false, true);
        failure(&mut w, 1);
        w.out.stale = true;
        failure(&mut w, 2);
        assert_eq!(w.out.syslog.len(), 2);
        assert!(w.out.stderr.is_empty());
        assert_eq!(w.out.connects, 2);
    }

    #[test]
    fn lines_that_reach_neither_are_counted_and_the_end_of_the_outage_says_how_many() {
        let (mut w, clock) = writer(Fake::new(false, false), false, true);
        failure(&mut w, 1);
        failure(&mut w, 2);
        assert_eq!(w.dropped.load(Ordering::SeqCst), 2);
        clock.advance(1);
        w.out.syslog_up = true;
        failure(&mut w, 3);
        failure(&mut w, 4);
        assert_eq!(
            w.out.syslog,
            [
                "<4>audit-syslog-restored socket=/run/test/log seconds=1 stderr_lines=0 dropped=2 host=h",
                "<4>login-failure n=3 host=h",
                "<4>login-failure n=4 host=h",
            ]
        );
    }

    #[test]
    fn detached_without_stderr_the_lines_of_an_outage_are_counted_as_dropped() {
        let (mut w, clock) = writer(Fake::new(false, true), false, false);
        failure(&mut w, 1);
        failure(&mut w, 2);
        assert!(
            w.out.stderr.is_empty(),
            "stderr is /dev/null: {:?}",
            w.out.stderr
        );
        assert_eq!(w.dropped.load(Ordering::SeqCst), 2);
        clock.advance(1);
        w.out.syslog_up = true;
        failure(&mut w, 3);
        assert_eq!(count(&w.out.syslog, "dropped=2"), 1, "{:?}", w.out.syslog);
    }

    #[test]
    fn with_log_stderr_the_lines_of_an_outage_are_not_written_twice() {
        let (mut w, clock) = writer(Fake::new(false, true), true, true);
        failure(&mut w, 1);
        failure(&mut w, 2);
        assert_eq!(w.out.stderr.len(), 1, "only the notice: {:?}", w.out.stderr);
        assert_eq!(count(&w.out.stderr, "audit-syslog-unreachable"), 1);
        clock.advance(1);
        w.out.syslog_up = true;
        failure(&mut w, 3);
        assert_eq!(count(&w.out.syslog, "stderr_lines=2 dropped=0"), 1);
    }

    #[test]
    fn a_full_queue_drops_lines_without_waiting_and_the_writer_says_how_many() {
        let (tx, rx) = sync_channel::<Record>(1);
        let audit = Audit {
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(None),
            stderr: false,
            host: " host=h".into(),
            dropped: Arc::new(AtomicU64::new(0)),
            captured: Mutex::new(Vec::new()),
        };
        for _ in 0..3 {
            audit.log(Event::Stop);
        }
        assert_eq!(audit.dropped.load(Ordering::SeqCst), 2);
        let (mut w, _clock) = writer(Fake::new(true, true), false, true);
        w.dropped = audit.dropped.clone();
        for record in rx.try_iter() {
            w.write(record.level, &record.line);
        }
        assert_eq!(
            w.out.syslog,
            [
                "<4>audit-lines-dropped count=2 total=2 host=h",
                "<6>stop host=h"
            ]
        );
        // Said once.
        w.write(Level::Info, "stop host=h");
        assert_eq!(count(&w.out.syslog, "audit-lines-dropped"), 1);
    }

    #[test]
    fn stderr_lines_carry_the_syslog_level_as_the_journal_reads_it() {
        assert_eq!(stderr_line(Level::Warning, "x y=z"), "<4>x y=z\n");
        assert_eq!(stderr_line(Level::Error, "e"), "<3>e\n");
        assert_eq!(stderr_line(Level::Notice, "n"), "<5>n\n");
        assert_eq!(stderr_line(Level::Info, "i"), "<6>i\n");
    }

    #[test]
    fn the_default_socket_is_the_command_lines() {
        assert_eq!(DEV_LOG, crate::args::DEFAULT_SYSLOG_SOCKET);
    }

    /// The real outlet: a missing socket is an error (an outage), a
    /// datagram socket gets RFC 3164 records with authpriv's priority, a
    /// stream socket NUL-ended ones.
    #[test]
    fn the_socket_outlet_sends_records_to_datagram_and_stream_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut out = SocketOutlet::new(&path);
        assert_eq!(out.connect().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(out.syslog(Level::Info, "start").is_err());

        let server = UnixDatagram::bind(&path).unwrap();
        out.connect().unwrap();
        out.syslog(Level::Warning, "login-failure user=alice")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = server.recv(&mut buf).unwrap();
        let record = String::from_utf8_lossy(&buf[..n]).into_owned();
        // authpriv (10) * 8 + warning (4)
        assert!(record.starts_with("<84>"), "{record}");
        assert!(
            record.ends_with(&format!(
                " twofactord[{}]: login-failure user=alice",
                std::process::id()
            )),
            "{record}"
        );
        drop(server);
        assert!(out.syslog(Level::Info, "stop").is_err());

        std::fs::remove_file(&path).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        out.connect().unwrap();
        out.syslog(Level::Error, "error context=x").unwrap();
        drop(out);
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        io::Read::read_to_end(&mut conn, &mut got).unwrap();
        assert!(got.starts_with(b"<83>"), "{got:?}");
        assert!(got.ends_with(b": error context=x\0"), "{got:?}");
    }
}
