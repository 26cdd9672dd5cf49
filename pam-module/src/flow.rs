//! The login loop: ask the daemon, show what it says, ask what it asks, until
//! it gives a verdict. All policy lives in the daemon; this loop only renders
//! steps and maps the verdict to a PAM code.
//!
//! | outcome | PAM code |
//! | --- | --- |
//! | Accept | `PAM_SUCCESS` |
//! | AcceptPending | `PAM_SUCCESS`, and the session is kept for [`commit`] |
//! | AcceptReport | `PAM_SUCCESS`, and the session is kept for [`report`] |
//! | Deny (or an action this module does not know) | `PAM_AUTH_ERR` |
//! | no daemon at Begin (no socket, name not owned nor activatable), `failmode=secure` | `PAM_AUTHINFO_UNAVAIL`, with an error message |
//! | no daemon at Begin, `failmode=safe` | `PAM_SUCCESS` |
//! | no answer in time, connection lost, at any point (any failmode) | `PAM_AUTHINFO_UNAVAIL`, with an error message |
//! | daemon error reply or unreadable reply | `PAM_AUTH_ERR` |
//! | conversation failed | `PAM_CONV_ERR` (the session is cancelled) |
//! | more than [`MAX_STEPS`] questions | `PAM_AUTH_ERR` (the session is cancelled) |
//!
//! `failmode=safe` only covers a daemon that is definitely not there when
//! the login starts. A timeout is never that: a local user who stops their
//! own `su` past the timeout, or who loads the bus, must not get in without
//! a code. Once the daemon has begun a session, losing it never lets the
//! login pass either.
//!
//! The account phase ([`commit`]): a login that set something up at the
//! prompt (enrolment under the mandatory policy, a recovery code) ends the
//! auth phase with `AcceptPending`; nothing is stored until
//! `pam_sm_acct_mgmt`, which libpam only runs after the whole auth stack
//! succeeded, asks the daemon to `Commit`. A plain login (a code, a
//! trusted device) ends it with `AcceptReport` when the module said it can
//! (`commit_report` in `Begin`): the account phase then only tells the
//! daemon that the stack succeeded, for its audit ([`report`]), without
//! waiting for the reply where the path allows.

use pam::constants::PamResultCode;
use twofactor_proto::{Action, MessageKind, Step};

use crate::args::FailMode;
use crate::conv::{ConvError, Conversation};
use crate::dbus::{Daemon, DaemonError, LoginRequest};
use crate::key::Keys;
use crate::log::{Level, Log};

/// Shown (as `PAM_ERROR_MSG`) when the login is refused because the daemon
/// cannot be reached.
pub const UNAVAILABLE_MESSAGE: &str = "Two-factor authentication is unavailable; login refused.";

/// Most questions one login may ask. A daemon that asks more is broken; the
/// login is refused rather than looping forever.
pub const MAX_STEPS: usize = 64;

/// How the loop behaves, from the module arguments and the PAM flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub failmode: FailMode,
    /// `PAM_SILENT`: do not show info and error lines (questions are still
    /// asked).
    pub silent: bool,
}

/// What the auth phase ended with.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: PamResultCode,
    /// A session whose change waits for [`commit`] (only with
    /// `PAM_SUCCESS`), or whose success waits to be reported ([`report`]).
    pub pending: Option<String>,
    /// The pending session only waits to be reported (`AcceptReport`).
    pub report_only: bool,
}

impl Outcome {
    fn done(code: PamResultCode) -> Self {
        Outcome {
            code,
            pending: None,
            report_only: false,
        }
    }
}

/// Runs one login to its verdict.
pub fn run(
    daemon: &mut dyn Daemon,
    conv: &mut dyn Conversation,
    keys: &mut dyn Keys,
    log: &mut dyn Log,
    request: &LoginRequest,
    settings: Settings,
) -> Outcome {
    let who = format!(
        "user={} service={} rhost={} tty={}",
        request.user, request.service, request.rhost, request.tty
    );

    let (session, mut step) = match daemon.begin(request) {
        Ok(started) => started,
        Err(DaemonError::Absent(e)) => {
            return Outcome::done(absent_at_start(conv, log, settings, &who, &e));
        }
        Err(DaemonError::Unavailable(e)) => {
            log.log(
                Level::Error,
                &format!("twofactord did not answer ({who}): {e}; login refused"),
            );
            show_unavailable(conv, settings.silent);
            return Outcome::done(PamResultCode::PAM_AUTHINFO_UNAVAIL);
        }
        Err(DaemonError::Failed(e)) => {
            log.log(
                Level::Error,
                &format!("twofactord refused to begin the login ({who}): {e}; login refused"),
            );
            return Outcome::done(PamResultCode::PAM_AUTH_ERR);
        }
    };

    for _ in 0..MAX_STEPS {
        // A key step's messages ("touch your key") are shown only once a
        // key is there to touch (see `use_key`).
        if !matches!(step.action, Action::UseKey(_)) {
            if let Err(e) = render(conv, &step, settings.silent) {
                return Outcome::done(conversation_failed(daemon, log, &session, &who, e));
            }
        }
        let (prompt, echo) = match &step.action {
            Action::Accept => return Outcome::done(PamResultCode::PAM_SUCCESS),
            Action::AcceptPending | Action::AcceptReport if !session.is_empty() => {
                return Outcome {
                    code: PamResultCode::PAM_SUCCESS,
                    report_only: step.action == Action::AcceptReport,
                    pending: Some(session),
                }
            }
            Action::AcceptPending | Action::AcceptReport | Action::Deny => {
                return Outcome::done(PamResultCode::PAM_AUTH_ERR)
            }
            Action::AskHidden(p) => (p.as_str(), false),
            Action::AskVisible(p) => (p.as_str(), true),
            Action::UseKey(_) => ("", false),
        };
        // The answer is wiped when it goes out of scope, at the end of this
        // iteration.
        let answer = match &step.action {
            Action::UseKey(request) => use_key(conv, keys, &step, request, settings.silent),
            _ => conv.ask(prompt, echo),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return Outcome::done(conversation_failed(daemon, log, &session, &who, e)),
        };
        step = match daemon.answer(&session, &answer) {
            Ok(next) => next,
            Err(DaemonError::Unavailable(e)) | Err(DaemonError::Absent(e)) => {
                log.log(
                    Level::Error,
                    &format!("twofactord lost during the login ({who}): {e}; login refused"),
                );
                show_unavailable(conv, settings.silent);
                return Outcome::done(PamResultCode::PAM_AUTHINFO_UNAVAIL);
            }
            Err(DaemonError::Failed(e)) => {
                log.log(
                    Level::Error,
                    &format!("twofactord failed the answer ({who}): {e}; login refused"),
                );
                cancel(daemon, log, &session);
                return Outcome::done(PamResultCode::PAM_AUTH_ERR);
            }
        };
    }

    log.log(
        Level::Error,
        &format!("twofactord asked more than {MAX_STEPS} questions ({who}); login refused"),
    );
    cancel(daemon, log, &session);
    Outcome::done(PamResultCode::PAM_AUTH_ERR)
}

/// The prompt for a security key's PIN, asked only when the key helper says
/// the key wants it.
pub const PIN_PROMPT: &str = "Security key PIN: ";

/// Runs the key for the daemon's `request`. First a silent probe: with no
/// key there to touch (none plugged in, or none holding a credential), its
/// answer goes back at once and the step's messages are not shown: the key
/// is not offered, and the daemon asks for the user's other method. Else
/// the step's messages ("touch your key") are shown and the key is run; its
/// answer goes back to the daemon unread, except that a key asking for its
/// PIN gets it asked (echo off) and is run once more with it. The PIN goes
/// only to the helper, never to the daemon.
fn use_key(
    conv: &mut dyn Conversation,
    keys: &mut dyn Keys,
    step: &Step,
    request: &[u8],
    silent: bool,
) -> Result<crate::conv::Answer, ConvError> {
    let probed = keys.probe(request);
    if !twofactor_proto::key::KeyAnswer::is_ready(&probed) {
        return Ok(probed);
    }
    render(conv, step, silent)?;
    let answer = keys.run(request, "");
    if !twofactor_proto::key::KeyAnswer::asks_for_pin(&answer) {
        return Ok(answer);
    }
    let pin = conv.ask(PIN_PROMPT, false)?;
    let Ok(pin) = std::str::from_utf8(&pin) else {
        return Ok(zeroize::Zeroizing::new(
            twofactor_proto::key::KeyAnswer::PinInvalid.encode(),
        ));
    };
    Ok(keys.run(request, pin))
}

/// The account phase of a login that ended its auth phase with
/// `AcceptPending`: the whole auth stack succeeded, so the daemon may now
/// store what the login set up. Anything but the daemon's `Accept` refuses
/// the login: a user who was made to set up a method must not get in
/// without it.
pub fn commit(
    daemon: &mut dyn Daemon,
    conv: &mut dyn Conversation,
    log: &mut dyn Log,
    session: &str,
    silent: bool,
) -> PamResultCode {
    match daemon.commit(session) {
        Ok(step) => {
            // Best effort: the verdict does not depend on the user seeing it.
            let _ = render(conv, &step, silent);
            match step.action {
                Action::Accept => PamResultCode::PAM_SUCCESS,
                _ => PamResultCode::PAM_PERM_DENIED,
            }
        }
        Err(e) => {
            log.log(
                Level::Error,
                &format!("twofactord could not store the login's change: {e}; login refused"),
            );
            show_unavailable(conv, silent);
            PamResultCode::PAM_PERM_DENIED
        }
    }
}

/// The account phase of a login that ended its auth phase with
/// `AcceptReport`: the whole auth stack succeeded, and the daemon is told
/// so for its audit. The login passed when its code was accepted (and used
/// up): whether the daemon hears this changes nothing of the verdict, so
/// a failure to tell it is logged and the login goes on.
pub fn report(daemon: &mut dyn Daemon, log: &mut dyn Log, session: &str) -> PamResultCode {
    if let Err(e) = daemon.report(session) {
        log.log(
            Level::Notice,
            &format!("twofactord was not told that the login succeeded: {e}"),
        );
    }
    PamResultCode::PAM_SUCCESS
}

/// Drops a change the auth phase left pending, without committing it:
/// another `pam_authenticate` began on the handle, or the account phase is
/// for another user. The daemon forgets it (and audits that it did).
pub fn discard(daemon: &mut dyn Daemon, log: &mut dyn Log, session: &str, why: &str) {
    log.log(
        Level::Notice,
        &format!("a change left pending by an earlier authentication is discarded ({why})"),
    );
    cancel(daemon, log, session);
}

fn render(conv: &mut dyn Conversation, step: &Step, silent: bool) -> Result<(), ConvError> {
    if silent {
        return Ok(());
    }
    for (kind, text) in &step.messages {
        match kind {
            MessageKind::Info => conv.info(text)?,
            MessageKind::Error => conv.error(text)?,
        }
    }
    Ok(())
}

fn absent_at_start(
    conv: &mut dyn Conversation,
    log: &mut dyn Log,
    settings: Settings,
    who: &str,
    error: &str,
) -> PamResultCode {
    match settings.failmode {
        FailMode::Secure => {
            log.log(
                Level::Error,
                &format!("twofactord unavailable ({who}): {error}; failmode=secure: login refused"),
            );
            show_unavailable(conv, settings.silent);
            PamResultCode::PAM_AUTHINFO_UNAVAIL
        }
        FailMode::Safe => {
            log.log(
                Level::Warning,
                &format!(
                    "twofactord not running ({who}): {error}; failmode=safe: login allowed without a second factor"
                ),
            );
            PamResultCode::PAM_SUCCESS
        }
    }
}

/// Best effort: the login is refused whether or not the user sees why.
fn show_unavailable(conv: &mut dyn Conversation, silent: bool) {
    if !silent {
        let _ = conv.error(UNAVAILABLE_MESSAGE);
    }
}

fn conversation_failed(
    daemon: &mut dyn Daemon,
    log: &mut dyn Log,
    session: &str,
    who: &str,
    error: ConvError,
) -> PamResultCode {
    log.log(Level::Notice, &format!("{error} ({who}); login cancelled"));
    cancel(daemon, log, session);
    PamResultCode::PAM_CONV_ERR
}

/// Tells the daemon to forget the session; the verdict does not depend on it.
fn cancel(daemon: &mut dyn Daemon, log: &mut dyn Log, session: &str) {
    if let Err(e) = daemon.cancel(session) {
        log.log(Level::Info, &format!("cancelling the login: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use zeroize::Zeroizing;

    use super::*;
    use crate::conv::Answer;

    /// One thing the module is expected to do, with what the fake answers.
    #[derive(Debug)]
    enum Event {
        Begin(Result<(String, Step), DaemonError>),
        Answer(&'static str, Vec<u8>, Result<Step, DaemonError>),
        Cancel(&'static str, Result<(), DaemonError>),
        Commit(&'static str, Result<Step, DaemonError>),
        Report(&'static str, Result<(), DaemonError>),
        Info(&'static str),
        Error(&'static str),
        Ask(&'static str, bool, Result<Vec<u8>, ConvError>),
        /// The key helper's probe of a request, and what it answers.
        Probe(Vec<u8>, Vec<u8>),
        /// The key helper run with (request, pin), and what it answers.
        Key(Vec<u8>, &'static str, Vec<u8>),
    }

    /// The script both fakes read from, so the order across daemon and
    /// conversation is checked too. Anything off script is written down and
    /// reported by [`Script::assert_done`].
    #[derive(Clone)]
    struct Script(Rc<RefCell<(VecDeque<Event>, Vec<String>)>>);

    impl Script {
        fn new(events: Vec<Event>) -> Self {
            Script(Rc::new(RefCell::new((events.into(), Vec::new()))))
        }
        fn next(&self) -> Option<Event> {
            self.0.borrow_mut().0.pop_front()
        }
        fn off_script(&self, what: String) {
            self.0.borrow_mut().1.push(what);
        }
        fn assert_done(&self) {
            let state = self.0.borrow();
            assert!(state.1.is_empty(), "off script: {:?}", state.1);
            assert!(state.0.is_empty(), "events not done: {:?}", state.0);
        }
    }

    struct FakeDaemon {
        script: Script,
        request: LoginRequest,
    }

    impl Daemon for FakeDaemon {
        fn begin(&mut self, r: &LoginRequest) -> Result<(String, Step), DaemonError> {
            assert_eq!(r, &self.request);
            match self.script.next() {
                Some(Event::Begin(reply)) => reply,
                other => {
                    self.script.off_script(format!("Begin, expected {other:?}"));
                    Err(DaemonError::Failed("off script".into()))
                }
            }
        }
        fn answer(&mut self, session: &str, answer: &[u8]) -> Result<Step, DaemonError> {
            match self.script.next() {
                Some(Event::Answer(s, a, reply)) if session == s && answer == a.as_slice() => reply,
                other => {
                    self.script.off_script(format!(
                        "Answer({session:?}, {answer:?}), expected {other:?}"
                    ));
                    Err(DaemonError::Failed("off script".into()))
                }
            }
        }
        fn cancel(&mut self, session: &str) -> Result<(), DaemonError> {
            match self.script.next() {
                Some(Event::Cancel(s, reply)) if session == s => reply,
                other => {
                    self.script
                        .off_script(format!("Cancel({session:?}), expected {other:?}"));
                    Err(DaemonError::Failed("off script".into()))
                }
            }
        }
        fn commit(&mut self, session: &str) -> Result<Step, DaemonError> {
            match self.script.next() {
                Some(Event::Commit(s, reply)) if session == s => reply,
                other => {
                    self.script
                        .off_script(format!("Commit({session:?}), expected {other:?}"));
                    Err(DaemonError::Failed("off script".into()))
                }
            }
        }
        fn report(&mut self, session: &str) -> Result<(), DaemonError> {
            match self.script.next() {
                Some(Event::Report(s, reply)) if session == s => reply,
                other => {
                    self.script
                        .off_script(format!("Report({session:?}), expected {other:?}"));
                    Err(DaemonError::Failed("off script".into()))
                }
            }
        }
    }

    struct FakeConv(Script);

    impl Conversation for FakeConv {
        fn info(&mut self, text: &str) -> Result<(), ConvError> {
            match self.0.next() {
                Some(Event::Info(t)) if text == t => Ok(()),
                other => {
                    self.0
                        .off_script(format!("info {text:?}, expected {other:?}"));
                    Err(ConvError(19))
                }
            }
        }
        fn error(&mut self, text: &str) -> Result<(), ConvError> {
            match self.0.next() {
                Some(Event::Error(t)) if text == t => Ok(()),
                other => {
                    self.0
                        .off_script(format!("error {text:?}, expected {other:?}"));
                    Err(ConvError(19))
                }
            }
        }
        fn ask(&mut self, prompt: &str, echo: bool) -> Result<Answer, ConvError> {
            match self.0.next() {
                Some(Event::Ask(p, e, reply)) if (prompt, echo) == (p, e) => {
                    reply.map(Zeroizing::new)
                }
                other => {
                    self.0
                        .off_script(format!("ask {prompt:?} echo={echo}, expected {other:?}"));
                    Err(ConvError(19))
                }
            }
        }
    }

    struct FakeKeys(Script);

    impl Keys for FakeKeys {
        fn available(&self) -> bool {
            true
        }
        fn probe(&mut self, request: &[u8]) -> Zeroizing<Vec<u8>> {
            match self.0.next() {
                Some(Event::Probe(r, answer)) if request == r.as_slice() => Zeroizing::new(answer),
                other => {
                    self.0
                        .off_script(format!("probe {request:?}, expected {other:?}"));
                    Zeroizing::new(Vec::new())
                }
            }
        }
        fn run(&mut self, request: &[u8], pin: &str) -> Zeroizing<Vec<u8>> {
            match self.0.next() {
                Some(Event::Key(r, p, answer)) if (request, pin) == (r.as_slice(), p) => {
                    Zeroizing::new(answer)
                }
                other => {
                    self.0
                        .off_script(format!("key {request:?} pin={pin:?}, expected {other:?}"));
                    Zeroizing::new(Vec::new())
                }
            }
        }
    }

    #[derive(Default)]
    struct FakeLog(Vec<(Level, String)>);

    impl Log for FakeLog {
        fn log(&mut self, level: Level, message: &str) {
            self.0.push((level, message.to_string()));
        }
    }

    fn request() -> LoginRequest {
        LoginRequest {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "127.0.0.1".into(),
            tty: "ssh".into(),
            ssh_auth_info: String::new(),
            security_keys: false,
        }
    }

    const SECURE: Settings = Settings {
        failmode: FailMode::Secure,
        silent: false,
    };
    const SAFE: Settings = Settings {
        failmode: FailMode::Safe,
        silent: false,
    };

    fn ask_code() -> Step {
        Step::new(Action::AskHidden("Verification code: ".into()))
    }

    /// Runs the loop against the script; returns the code and the log.
    fn play(settings: Settings, events: Vec<Event>) -> (PamResultCode, FakeLog) {
        let (outcome, log) = play_outcome(settings, events);
        assert_eq!(outcome.pending, None);
        (outcome.code, log)
    }

    fn play_outcome(settings: Settings, events: Vec<Event>) -> (Outcome, FakeLog) {
        let script = Script::new(events);
        let mut daemon = FakeDaemon {
            script: script.clone(),
            request: request(),
        };
        let mut conv = FakeConv(script.clone());
        let mut keys = FakeKeys(script.clone());
        let mut log = FakeLog::default();
        let outcome = run(
            &mut daemon,
            &mut conv,
            &mut keys,
            &mut log,
            &request(),
            settings,
        );
        script.assert_done();
        (outcome, log)
    }

    fn absent() -> DaemonError {
        DaemonError::Absent(
            "org.freedesktop.DBus.Error.ServiceUnknown: The name is not activatable".into(),
        )
    }

    fn unavailable() -> DaemonError {
        DaemonError::Unavailable("org.freedesktop.DBus.Error.NoReply: no reply in time".into())
    }

    #[test]
    fn a_key_step_carries_the_request_to_the_key_and_its_answer_back() {
        use twofactor_proto::key::KeyAnswer;
        let touch = Step::new(Action::UseKey(vec![0x41, 1, 2])).info("Touch your security key.");
        let no_touch = KeyAnswer::NoTouch.encode();
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), touch))),
                Event::Probe(vec![0x41, 1, 2], KeyAnswer::Ready.encode()),
                Event::Info("Touch your security key."),
                Event::Key(vec![0x41, 1, 2], "", no_touch.clone()),
                Event::Answer("s1", no_touch, Ok(ask_code())),
                Event::Ask("Verification code: ", false, Ok(b"123456".to_vec())),
                Event::Answer("s1", b"123456".to_vec(), Ok(Step::new(Action::Accept))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn a_key_that_wants_its_pin_gets_it_asked_and_the_pin_never_reaches_the_daemon() {
        use twofactor_proto::key::KeyAnswer;
        let touch = Step::new(Action::UseKey(vec![0x41]));
        let signed = KeyAnswer::NoTouch.encode();
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), touch))),
                Event::Probe(vec![0x41], KeyAnswer::Ready.encode()),
                Event::Key(vec![0x41], "", KeyAnswer::PinRequired.encode()),
                Event::Ask(PIN_PROMPT, false, Ok(b"4321".to_vec())),
                Event::Key(vec![0x41], "4321", signed.clone()),
                Event::Answer("s1", signed, Ok(Step::new(Action::Deny))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn without_a_key_to_touch_the_key_is_not_offered() {
        use twofactor_proto::key::KeyAnswer;
        let touch = Step::new(Action::UseKey(vec![0x41])).info("Touch your security key.");
        let no_device = KeyAnswer::NoDevice.encode();
        // No "touch" message, no key run: the probe's answer goes back.
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), touch))),
                Event::Probe(vec![0x41], no_device.clone()),
                Event::Answer("s1", no_device, Ok(ask_code())),
                Event::Ask("Verification code: ", false, Ok(b"123456".to_vec())),
                Event::Answer("s1", b"123456".to_vec(), Ok(Step::new(Action::Accept))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn right_code_is_accepted() {
        let (code, log) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(b"123456".to_vec())),
                Event::Answer("s1", b"123456".to_vec(), Ok(Step::new(Action::Accept))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
        assert!(log.0.is_empty());
    }

    #[test]
    fn wrong_code_is_denied_with_the_daemons_message() {
        let (code, log) = play(
            SECURE,
            vec![
                Event::Begin(Ok((
                    "s1".into(),
                    ask_code().info("Enter the code from your app."),
                ))),
                Event::Info("Enter the code from your app."),
                Event::Ask("Verification code: ", false, Ok(b"654321".to_vec())),
                Event::Answer(
                    "s1",
                    b"654321".to_vec(),
                    Ok(Step::new(Action::Deny).error("Invalid verification code.")),
                ),
                Event::Error("Invalid verification code."),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
        assert!(log.0.iter().all(|(_, l)| !l.contains("654321")));
    }

    #[test]
    fn user_without_method_is_accepted_without_question() {
        let (code, _) = play(
            SECURE,
            vec![Event::Begin(Ok(("s1".into(), Step::new(Action::Accept))))],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn several_questions_and_echo_on() {
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok((
                    "s9".into(),
                    Step::new(Action::AskVisible("Method? ".into())),
                ))),
                Event::Ask("Method? ", true, Ok(b"app".to_vec())),
                Event::Answer("s9", b"app".to_vec(), Ok(ask_code())),
                Event::Ask("Verification code: ", false, Ok(b"000000".to_vec())),
                Event::Answer(
                    "s9",
                    b"000000".to_vec(),
                    Ok(Step::new(Action::Accept).info("Welcome.")),
                ),
                Event::Info("Welcome."),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn answers_pass_as_raw_bytes() {
        let raw = vec![0xff, 0xfe, b'1', 0x80];
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(raw.clone())),
                Event::Answer("s1", raw, Ok(Step::new(Action::Deny))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn empty_answer_is_sent_as_empty() {
        let (code, _) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(Vec::new())),
                Event::Answer("s1", Vec::new(), Ok(Step::new(Action::Deny))),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn unknown_action_from_the_wire_is_denied() {
        let step = Step::from_wire(twofactor_proto::WireStep {
            messages: vec![],
            action: 42,
            prompt: "x".into(),
        });
        let (code, _) = play(SECURE, vec![Event::Begin(Ok(("s1".into(), step)))]);
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn conversation_failure_cancels() {
        let (code, log) = play(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Err(ConvError(19))),
                Event::Cancel("s1", Ok(())),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_CONV_ERR);
        assert_eq!(log.0.len(), 1);
    }

    #[test]
    fn failing_message_cancels_even_before_accept() {
        struct BrokenInfo(Script);
        impl Conversation for BrokenInfo {
            fn info(&mut self, _: &str) -> Result<(), ConvError> {
                Err(ConvError(19))
            }
            fn error(&mut self, t: &str) -> Result<(), ConvError> {
                FakeConv(self.0.clone()).error(t)
            }
            fn ask(&mut self, p: &str, e: bool) -> Result<Answer, ConvError> {
                FakeConv(self.0.clone()).ask(p, e)
            }
        }
        let script = Script::new(vec![
            Event::Begin(Ok(("s1".into(), Step::new(Action::Accept).info("hi")))),
            Event::Cancel("s1", Err(DaemonError::Failed("gone".into()))),
        ]);
        let mut daemon = FakeDaemon {
            script: script.clone(),
            request: request(),
        };
        let mut log = FakeLog::default();
        let outcome = run(
            &mut daemon,
            &mut BrokenInfo(script.clone()),
            &mut FakeKeys(script.clone()),
            &mut log,
            &request(),
            SECURE,
        );
        script.assert_done();
        assert_eq!(outcome.code, PamResultCode::PAM_CONV_ERR);
    }

    #[test]
    fn unreachable_daemon_secure_refuses_with_message() {
        let (code, log) = play(
            SECURE,
            vec![
                Event::Begin(Err(absent())),
                Event::Error(UNAVAILABLE_MESSAGE),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTHINFO_UNAVAIL);
        assert_eq!(log.0.len(), 1);
        assert!(log.0.iter().any(|(level, l)| *level == Level::Error
            && l.contains("failmode=secure")
            && l.contains("user=alice")
            && l.contains("ServiceUnknown")));
    }

    #[test]
    fn unreachable_daemon_safe_allows_and_logs() {
        let (code, log) = play(SAFE, vec![Event::Begin(Err(absent()))]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
        assert!(log.0.iter().any(|(level, l)| *level == Level::Warning
            && l.contains("failmode=safe")
            && l.contains("user=alice")));
    }

    #[test]
    fn a_timeout_at_begin_refuses_even_when_safe() {
        for settings in [SAFE, SECURE] {
            let (code, log) = play(
                settings,
                vec![
                    Event::Begin(Err(unavailable())),
                    Event::Error(UNAVAILABLE_MESSAGE),
                ],
            );
            assert_eq!(code, PamResultCode::PAM_AUTHINFO_UNAVAIL);
            assert!(log.0.iter().any(|(level, l)| *level == Level::Error
                && l.contains("login refused")
                && l.contains("NoReply")));
        }
    }

    #[test]
    fn accept_pending_keeps_the_session_for_the_account_phase() {
        let (outcome, _) = play_outcome(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(b"1".to_vec())),
                Event::Answer("s1", b"1".to_vec(), Ok(Step::new(Action::AcceptPending))),
            ],
        );
        assert_eq!(
            outcome,
            Outcome {
                code: PamResultCode::PAM_SUCCESS,
                pending: Some("s1".into()),
                report_only: false,
            }
        );
        // Pending without a session to commit is a daemon bug: refused.
        for action in [Action::AcceptPending, Action::AcceptReport] {
            let (code, _) = play(
                SECURE,
                vec![Event::Begin(Ok((String::new(), Step::new(action))))],
            );
            assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
        }
    }

    #[test]
    fn accept_report_keeps_the_session_to_report_it() {
        let (outcome, _) = play_outcome(
            SECURE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(b"1".to_vec())),
                Event::Answer("s1", b"1".to_vec(), Ok(Step::new(Action::AcceptReport))),
            ],
        );
        assert_eq!(
            outcome,
            Outcome {
                code: PamResultCode::PAM_SUCCESS,
                pending: Some("s1".into()),
                report_only: true,
            }
        );
    }

    #[test]
    fn a_report_the_daemon_did_not_take_is_logged_and_the_login_goes_on() {
        for (reply, logged) in [(Ok(()), false), (Err(unavailable()), true)] {
            let script = Script::new(vec![Event::Report("s1", reply)]);
            let mut daemon = FakeDaemon {
                script: script.clone(),
                request: request(),
            };
            let mut log = FakeLog::default();
            let code = report(&mut daemon, &mut log, "s1");
            script.assert_done();
            assert_eq!(code, PamResultCode::PAM_SUCCESS);
            assert_eq!(
                log.0
                    .iter()
                    .any(|(_, l)| l.contains("not told that the login succeeded")),
                logged,
                "{:?}",
                log.0
            );
        }
    }

    #[test]
    fn commit_maps_the_daemons_verdict() {
        let cases: Vec<(Result<Step, DaemonError>, Vec<Event>, PamResultCode)> = vec![
            (
                Ok(Step::new(Action::Accept).info("set up")),
                vec![Event::Info("set up")],
                PamResultCode::PAM_SUCCESS,
            ),
            (
                Ok(Step::new(Action::Deny).error("no")),
                vec![Event::Error("no")],
                PamResultCode::PAM_PERM_DENIED,
            ),
            (
                Ok(Step::new(Action::AcceptPending)),
                vec![],
                PamResultCode::PAM_PERM_DENIED,
            ),
            (
                Err(unavailable()),
                vec![Event::Error(UNAVAILABLE_MESSAGE)],
                PamResultCode::PAM_PERM_DENIED,
            ),
            (
                Err(absent()),
                vec![Event::Error(UNAVAILABLE_MESSAGE)],
                PamResultCode::PAM_PERM_DENIED,
            ),
        ];
        for (reply, shown, expected) in cases {
            let mut events = vec![Event::Commit("s1", reply)];
            events.extend(shown);
            let script = Script::new(events);
            let mut daemon = FakeDaemon {
                script: script.clone(),
                request: request(),
            };
            let mut conv = FakeConv(script.clone());
            let mut log = FakeLog::default();
            let code = commit(&mut daemon, &mut conv, &mut log, "s1", false);
            script.assert_done();
            assert_eq!(code, expected);
        }
    }

    #[test]
    fn daemon_lost_mid_login_refuses_even_when_safe() {
        for settings in [SAFE, SECURE] {
            let (code, log) = play(
                settings,
                vec![
                    Event::Begin(Ok(("s1".into(), ask_code()))),
                    Event::Ask("Verification code: ", false, Ok(b"123456".to_vec())),
                    Event::Answer("s1", b"123456".to_vec(), Err(unavailable())),
                    Event::Error(UNAVAILABLE_MESSAGE),
                ],
            );
            assert_eq!(code, PamResultCode::PAM_AUTHINFO_UNAVAIL);
            assert!(log.0.iter().all(|(_, l)| !l.contains("123456")));
        }
    }

    #[test]
    fn daemon_error_is_auth_err_not_failmode() {
        let refused =
            || DaemonError::Failed("org.twofactor.Error.PermissionDenied: not your account".into());
        let (code, log) = play(SAFE, vec![Event::Begin(Err(refused()))]);
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
        assert!(log.0.iter().any(|(_, l)| l.contains("PermissionDenied")));

        let (code, _) = play(
            SAFE,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code()))),
                Event::Ask("Verification code: ", false, Ok(b"1".to_vec())),
                Event::Answer("s1", b"1".to_vec(), Err(refused())),
                Event::Cancel("s1", Ok(())),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn silent_hides_messages_but_still_asks() {
        let silent = Settings {
            failmode: FailMode::Secure,
            silent: true,
        };
        let (code, _) = play(
            silent,
            vec![
                Event::Begin(Ok(("s1".into(), ask_code().info("hidden")))),
                Event::Ask("Verification code: ", false, Ok(b"1".to_vec())),
                Event::Answer(
                    "s1",
                    b"1".to_vec(),
                    Ok(Step::new(Action::Deny).error("also hidden")),
                ),
            ],
        );
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
        let (code, _) = play(silent, vec![Event::Begin(Err(absent()))]);
        assert_eq!(code, PamResultCode::PAM_AUTHINFO_UNAVAIL);
    }

    #[test]
    fn endless_questions_are_cut_off() {
        let mut events = vec![Event::Begin(Ok(("s1".into(), ask_code())))];
        for _ in 0..MAX_STEPS {
            events.push(Event::Ask("Verification code: ", false, Ok(b"1".to_vec())));
            events.push(Event::Answer("s1", b"1".to_vec(), Ok(ask_code())));
        }
        events.push(Event::Cancel("s1", Ok(())));
        let (code, _) = play(SECURE, events);
        assert_eq!(code, PamResultCode::PAM_AUTH_ERR);
    }
}
