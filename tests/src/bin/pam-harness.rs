//! `pam-harness`: a small PAM client for the tests. It runs `pam_authenticate`
//! and then, as every login application does, `pam_acct_mgmt` if the
//! authentication succeeded (unless `--no-account`), for one service from a
//! private configuration directory (so the machine's `/etc/pam.d` is never
//! touched), and reports every conversation event as one JSON line on
//! stdout.
//!
//! ```text
//! pam-harness --confdir DIR --service NAME --user USER
//!             [--rhost HOST] [--tty TTY] [--ruser USER]
//!             [--answer-file FILE] [--silent] [--no-account]
//!             [--retry-as USER] [--hold-account]
//! ```
//!
//! `--hold-account`: after a successful `pam_authenticate` (and its
//! `auth` event), reads one more line from the answers before
//! `pam_acct_mgmt`, so that a test can act between the two phases.
//!
//! `--retry-as USER` does what `login` (util-linux) and other programs that
//! retry do with one handle: when `pam_authenticate` fails, it sets
//! `PAM_USER` to USER and calls `pam_authenticate` again on the same
//! handle (one `auth` line each), then `pam_acct_mgmt` if that succeeded.
//!
//! Answers are read one line per question, from stdin or from
//! `--answer-file`, as raw bytes (not necessarily UTF-8); the trailing `\n` is
//! removed, nothing else. Lines are read only when a question is asked, so a
//! test can wait for a prompt before it writes the answer. A question with no
//! line left fails the conversation (`PAM_CONV_ERR`).
//!
//! Output, one line per event, flushed at once:
//!
//! ```text
//! {"event":"info","text":"..."}               PAM_TEXT_INFO
//! {"event":"error","text":"..."}              PAM_ERROR_MSG
//! {"event":"prompt","echo":false,"text":"..."} PAM_PROMPT_ECHO_OFF (echo true: ECHO_ON)
//! {"event":"unsupported","style":N,"text":"..."} any other style (the conversation fails)
//! {"event":"auth","code":N,"name":"PAM_SUCCESS"}    pam_authenticate's result
//! {"event":"account","code":N,"name":"..."}          pam_acct_mgmt's, if it ran
//! {"event":"result","code":N,"name":"PAM_SUCCESS"}  once, at the end: the login's
//!                                                    result (the first failure)
//! {"event":"host","threads_before":N,"threads_most":N,"threads_after":N,
//!  "fds_before":N,"fds_after":N}                   after pam_end: this process's
//!                                                    threads and open descriptors
//!                                                    before pam_start, at most
//!                                                    while a conversation ran, and
//!                                                    after pam_end
//! ```
//!
//! Exit status: 0 once `pam_authenticate` has run (whatever its result), 1 if
//! `pam_start_confdir` or `pam_set_item` failed (a result line is printed
//! with that code), 2 for a usage error.

use std::ffi::{c_int, c_void, CStr, CString};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::ptr;

use twofactor_pam_client::*;

struct Options {
    confdir: CString,
    service: CString,
    user: CString,
    rhost: Option<CString>,
    tty: Option<CString>,
    ruser: Option<CString>,
    answer_file: Option<String>,
    silent: bool,
    no_account: bool,
    hold_account: bool,
    retry_as: Option<CString>,
}

const USAGE: &str = "usage: pam-harness --confdir DIR --service NAME --user USER \
[--rhost HOST] [--tty TTY] [--ruser USER] [--answer-file FILE] [--silent] [--no-account] \
[--retry-as USER] [--hold-account]";

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut confdir = None;
    let mut service = None;
    let mut user = None;
    let mut rhost = None;
    let mut tty = None;
    let mut ruser = None;
    let mut answer_file = None;
    let mut retry_as = None;
    let mut silent = false;
    let mut no_account = false;
    let mut hold_account = false;
    while let Some(flag) = args.next() {
        if flag == "--hold-account" {
            hold_account = true;
            continue;
        }
        if flag == "--silent" {
            silent = true;
            continue;
        }
        if flag == "--no-account" {
            no_account = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--confdir" => &mut confdir,
            "--service" => &mut service,
            "--user" => &mut user,
            "--rhost" | "--set-rhost" => &mut rhost,
            "--tty" | "--set-tty" => &mut tty,
            "--ruser" | "--set-ruser" => &mut ruser,
            "--answer-file" => &mut answer_file,
            "--retry-as" => &mut retry_as,
            _ => return Err(format!("unknown option {flag}")),
        };
        if slot.is_some() {
            return Err(format!("{flag} given twice"));
        }
        *slot = Some(value);
    }
    let c = |name: &str, v: String| CString::new(v).map_err(|_| format!("{name} contains NUL"));
    let required = |name: &str, v: Option<String>| {
        v.ok_or_else(|| format!("{name} is required"))
            .and_then(|v| c(name, v))
    };
    Ok(Options {
        confdir: required("--confdir", confdir)?,
        service: required("--service", service)?,
        user: required("--user", user)?,
        rhost: rhost.map(|v| c("--rhost", v)).transpose()?,
        tty: tty.map(|v| c("--tty", v)).transpose()?,
        ruser: ruser.map(|v| c("--ruser", v)).transpose()?,
        answer_file,
        silent,
        no_account,
        hold_account,
        retry_as: retry_as.map(|v| c("--retry-as", v)).transpose()?,
    })
}

/// What the conversation function works with (`appdata_ptr`).
struct Session {
    answers: Box<dyn BufRead>,
}

impl Session {
    /// The next answer line without its `\n`; `None` when there is none left.
    fn next_answer(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        match self.answers.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Some(line)
            }
        }
    }
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Threads of this process now.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process now (the directory's own
/// descriptor, open while it is read, is not counted).
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
}

/// The most threads seen while a conversation ran (the module is inside
/// pam_authenticate then).
static THREADS_MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn emit_result(code: c_int) {
    emit_code("result", code);
}

fn emit_code(event: &str, code: c_int) {
    emit(&format!(
        r#"{{"event":"{event}","code":{code},"name":{}}}"#,
        json_str(code_name(code))
    ));
}

extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    THREADS_MOST.fetch_max(threads(), std::sync::atomic::Ordering::Relaxed);
    // A panic must not unwind into libpam.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: libpam passes num_msg message pointers (Linux-PAM layout:
        // an array of pointers), a place for the reply array, and our own
        // appdata pointer, which points at the Session living in main.
        unsafe { converse(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As libpam calls a conversation function: `msg` holds `num_msg` valid
/// message pointers, `resp` is writable, `appdata` points at a live `Session`.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is &mut Session from main, alive during pam_authenticate.
    let session = unsafe { &mut *appdata.cast::<Session>() };
    let reply = |style: c_int, text: &CStr| {
        let text = json_str(&text.to_string_lossy());
        match style {
            PAM_TEXT_INFO => {
                emit(&format!(r#"{{"event":"info","text":{text}}}"#));
                Reply::Nothing
            }
            PAM_ERROR_MSG => {
                emit(&format!(r#"{{"event":"error","text":{text}}}"#));
                Reply::Nothing
            }
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                let echo = style == PAM_PROMPT_ECHO_ON;
                emit(&format!(
                    r#"{{"event":"prompt","echo":{echo},"text":{text}}}"#
                ));
                session
                    .next_answer()
                    .map_or(Reply::Fail(PAM_CONV_ERR), Reply::Answer)
            }
            other => {
                emit(&format!(
                    r#"{{"event":"unsupported","style":{other},"text":{text}}}"#
                ));
                Reply::Fail(PAM_CONV_ERR)
            }
        }
    };
    // SAFETY: as this function's own contract.
    unsafe { twofactor_pam_client::converse(num_msg, msg, resp, reply) }
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pam-harness: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let answers: Box<dyn BufRead> = match &options.answer_file {
        Some(path) => match File::open(path) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                eprintln!("pam-harness: cannot open {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut session = Session { answers };
    let conv = PamConv {
        conv: Some(conversation),
        appdata_ptr: (&mut session as *mut Session).cast(),
    };

    let (threads_before, fds_before) = (threads(), fds());
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: all strings are NUL-terminated and outlive the handle; `conv`
    // and `session` live until after pam_end; pamh is a valid out-pointer.
    let rc = unsafe {
        pam_start_confdir(
            options.service.as_ptr(),
            options.user.as_ptr(),
            &conv,
            options.confdir.as_ptr(),
            &mut pamh,
        )
    };
    if rc != PAM_SUCCESS || pamh.is_null() {
        eprintln!("pam-harness: pam_start_confdir failed");
        emit_result(rc);
        return ExitCode::from(1);
    }

    for (item, value) in [
        (PAM_RHOST, &options.rhost),
        (PAM_TTY, &options.tty),
        (PAM_RUSER, &options.ruser),
    ] {
        if let Some(v) = value {
            // SAFETY: pamh is a live handle; libpam copies the string.
            let rc = unsafe { pam_set_item(pamh, item, v.as_ptr().cast()) };
            if rc != PAM_SUCCESS {
                eprintln!("pam-harness: pam_set_item({item}) failed");
                emit_result(rc);
                // SAFETY: pamh is live and ended once.
                unsafe { pam_end(pamh, rc) };
                return ExitCode::from(1);
            }
        }
    }

    let flags = if options.silent { PAM_SILENT } else { 0 };
    // SAFETY: pamh is a live handle; the conversation's appdata (session)
    // is alive for the whole call.
    let mut rc = unsafe { pam_authenticate(pamh, flags) };
    emit_code("auth", rc);
    if let (true, Some(again)) = (rc != PAM_SUCCESS, &options.retry_as) {
        // SAFETY: pamh is a live handle; libpam copies the string.
        let set = unsafe { pam_set_item(pamh, PAM_USER, again.as_ptr().cast()) };
        if set != PAM_SUCCESS {
            eprintln!("pam-harness: pam_set_item(PAM_USER) failed");
            emit_result(set);
            // SAFETY: pamh is live and ended once.
            unsafe { pam_end(pamh, set) };
            return ExitCode::from(1);
        }
        // SAFETY: as the first pam_authenticate.
        rc = unsafe { pam_authenticate(pamh, flags) };
        emit_code("auth", rc);
    }
    if rc == PAM_SUCCESS && !options.no_account {
        if options.hold_account {
            let mut line = Vec::new();
            let _ = session.answers.read_until(b'\n', &mut line);
        }
        // SAFETY: as for pam_authenticate.
        rc = unsafe { pam_acct_mgmt(pamh, flags) };
        emit_code("account", rc);
    }
    emit_result(rc);
    // SAFETY: pamh is live and ended once; nothing uses it afterwards.
    unsafe { pam_end(pamh, rc) };
    drop(session);
    emit(&format!(
        r#"{{"event":"host","threads_before":{threads_before},"threads_most":{},"threads_after":{},"fds_before":{fds_before},"fds_after":{}}}"#,
        THREADS_MOST.load(std::sync::atomic::Ordering::Relaxed),
        threads(),
        fds()
    ));
    ExitCode::SUCCESS
}
