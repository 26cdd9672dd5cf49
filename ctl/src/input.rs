//! Questions to the user: the account password and visible answers (codes).
//!
//! When stdin is a terminal, the password is read with echo off from the
//! controlling terminal (`/dev/tty`), or, when there is none (`su - user -c
//! ...`, `setsid`), from stdin itself; answers are read as typed lines.
//! Echo comes back on every way out: the end of the line, an error, and a
//! signal (Ctrl-C, a closed terminal, kill), which is re-raised once the
//! terminal is restored. Otherwise every
//! question takes the next line of stdin, in order: this is how scripts and
//! tests drive the CLI (for `enable app`: line 1 the password, line 2 the
//! code). Lines are read one byte at a time straight from the file
//! descriptor, so nothing past the current line is consumed and no copy of a
//! password stays behind in a library buffer; password buffers are wiped
//! when dropped. Passwords are never taken from argv or the environment.
//!
//! Prompts go to stderr (to the terminal, for the hidden password), so that
//! stdout carries only the command's output.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicI32, Ordering};

use zeroize::Zeroizing;

use crate::error::{Failure, Reason};

/// A password, wiped from memory when dropped.
pub type Password = Zeroizing<Vec<u8>>;

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// The input ended before anything was read.
    Eof,
    /// The line is longer than allowed (the rest was not read).
    TooLong,
    Io(io::Error),
}

/// Reads one line from `source`, one byte at a time, without the line end
/// (`\n` or `\r\n`). A last line without `\n` counts. At most `max` bytes;
/// the buffer never reallocates, so no stray copy is left behind.
pub fn read_line<R: Read + ?Sized>(source: &mut R, max: usize) -> Result<Password, LineError> {
    let mut line: Password = Zeroizing::new(Vec::with_capacity(max.saturating_add(2)));
    let mut byte = Zeroizing::new([0u8; 1]);
    let mut seen_any = false;
    loop {
        match source.read(&mut byte[..]) {
            Ok(0) if !seen_any => return Err(LineError::Eof),
            Ok(0) => break,
            Ok(_) => {
                seen_any = true;
                if byte[0] == b'\n' {
                    break;
                }
                if line.len() > max {
                    return Err(LineError::TooLong);
                }
                line.push(byte[0]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        }
    }
    if line.last() == Some(&b'\r') {
        // The popped byte stays in spare capacity, which `Zeroizing<Vec>`
        // wipes too.
        line.pop();
    }
    if line.len() > max {
        return Err(LineError::TooLong);
    }
    Ok(line)
}

/// Where the answers come from and where the prompts go.
pub struct Input {
    /// stdin is a terminal: a person is typing.
    interactive: bool,
    /// Read the password from the terminal with echo off.
    tty_password: bool,
    lines: Box<dyn Read>,
    prompts: Box<dyn Write>,
}

impl Input {
    /// Questions answered on stdin (a terminal or a script).
    pub fn from_stdin() -> Result<Input, Failure> {
        let stdin = io::stdin();
        let interactive = stdin.is_terminal();
        let fd = stdin
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Failure::io("opening stdin", &e))?;
        Ok(Input {
            interactive,
            tty_password: interactive,
            lines: Box::new(File::from(fd)),
            prompts: Box::new(io::stderr()),
        })
    }

    /// Answers from `data`, prompts discarded; `interactive` as if a person
    /// were typing (more tries), but the password is read from `data` too.
    #[cfg(test)]
    pub fn scripted(data: &[u8], interactive: bool) -> Input {
        Input {
            interactive,
            tty_password: false,
            lines: Box::new(io::Cursor::new(data.to_vec())),
            prompts: Box::new(io::sink()),
        }
    }

    /// Like [`Input::scripted`], but the prompts and messages are kept in
    /// the returned buffer, in order.
    #[cfg(test)]
    pub fn scripted_seen(data: &[u8], interactive: bool) -> (Input, Seen) {
        let seen = Seen::default();
        let input = Input {
            prompts: Box::new(seen.clone()),
            ..Input::scripted(data, interactive)
        };
        (input, seen)
    }

    /// A person is answering at a terminal.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Asks for the account password (echo off on a terminal; the next line
    /// of stdin otherwise). At most `max` bytes.
    pub fn password(&mut self, prompt: &str, max: usize) -> Result<Password, Failure> {
        self.hidden(prompt, "the password", max)
    }

    /// Like [`Input::password`], for another secret: `what` names it in
    /// the errors (e.g. "the security key's PIN").
    pub fn hidden(&mut self, prompt: &str, what: &str, max: usize) -> Result<Password, Failure> {
        if self.tty_password {
            let stdin = io::stdin();
            let read = match hidden_source(stdin.is_terminal(), open_controlling_tty()) {
                HiddenSource::Lines => None,
                HiddenSource::Tty(mut tty) => {
                    let fd = tty.as_raw_fd();
                    Some(read_hidden(fd, &mut tty, prompt, max))
                }
                HiddenSource::Stdin => {
                    let fd = stdin.as_fd().as_raw_fd();
                    Some(read_hidden(fd, &mut self.prompts, prompt, max))
                }
            };
            if let Some(read) = read {
                return read.map_err(|e| match e {
                    LineError::Io(e) => {
                        Failure::io(&format!("reading {what} from the terminal"), &e)
                    }
                    e => line_failure(e, what, max),
                });
            }
        }
        self.prompt(prompt)?;
        read_line(&mut self.lines, max).map_err(|e| line_failure(e, what, max))
    }

    /// Asks a question answered with echo on (a code); returns the line with
    /// surrounding whitespace removed. At most `max` bytes; invalid UTF-8 is
    /// kept as replacement characters for the daemon to refuse.
    pub fn answer(
        &mut self,
        prompt: &str,
        what: &str,
        max: usize,
    ) -> Result<Zeroizing<String>, Failure> {
        self.optional_answer(prompt, what, max)?
            .ok_or_else(|| line_failure(LineError::Eof, what, max))
    }

    /// Like [`Input::answer`], for a question that may be left unanswered:
    /// `None` when the input has ended (Ctrl-D at a terminal).
    pub fn optional_answer(
        &mut self,
        prompt: &str,
        what: &str,
        max: usize,
    ) -> Result<Option<Zeroizing<String>>, Failure> {
        self.prompt(prompt)?;
        let line = match read_line(&mut self.lines, max) {
            Ok(line) => line,
            Err(LineError::Eof) => return Ok(None),
            Err(e) => return Err(line_failure(e, what, max)),
        };
        let text = String::from_utf8_lossy(&line);
        Ok(Some(Zeroizing::new(text.trim().to_owned())))
    }

    /// Tells the person something between questions (stderr), one line.
    pub fn tell(&mut self, line: &str) -> Result<(), Failure> {
        self.prompt(&format!("{line}\n"))
    }

    fn prompt(&mut self, prompt: &str) -> Result<(), Failure> {
        self.prompts
            .write_all(prompt.as_bytes())
            .and_then(|()| self.prompts.flush())
            .map_err(|e| Failure::io("writing a prompt", &e))
    }
}

/// Where a password typed with echo off comes from.
#[derive(Debug)]
enum HiddenSource<T> {
    /// stdin is no terminal: the next line of stdin (a script).
    Lines,
    /// The controlling terminal, opened as `/dev/tty`.
    Tty(T),
    /// stdin is a terminal, but the process has no controlling terminal
    /// (`/dev/tty` does not open: ENXIO under `su - user -c`, `setsid`):
    /// stdin itself, with echo off.
    Stdin,
}

/// Chooses where the hidden password is read from, given whether stdin is a
/// terminal and how opening `/dev/tty` went.
fn hidden_source<T>(stdin_is_terminal: bool, tty: io::Result<T>) -> HiddenSource<T> {
    match (stdin_is_terminal, tty) {
        (false, _) => HiddenSource::Lines,
        (true, Ok(tty)) => HiddenSource::Tty(tty),
        (true, Err(_)) => HiddenSource::Stdin,
    }
}

/// `/dev/tty`, without making it the controlling terminal of a process
/// that has none.
fn open_controlling_tty() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/tty")
}

/// The signal caught while echo was off (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// The signals that end (or stop) a password prompt and must find echo on.
const PROMPT_SIGNALS: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGTSTP,
];

extern "C" fn on_prompt_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe. The read in progress fails
    // with EINTR (no SA_RESTART) and the reader does the rest.
    CAUGHT.store(signal, Ordering::SeqCst);
}

/// A terminal with echo off and the prompt signals caught, until dropped.
struct EchoOff {
    fd: RawFd,
    saved: libc::termios,
    old_actions: Vec<(libc::c_int, libc::sigaction)>,
}

impl EchoOff {
    /// Turns echo off on `fd` (a newline still echoes), discarding what was
    /// typed ahead, and catches the prompt signals.
    fn new(fd: RawFd) -> io::Result<EchoOff> {
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a whole termios on success; it is read
        // only then.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut guard = EchoOff {
            fd,
            saved,
            old_actions: Vec::new(),
        };
        guard.catch_signals();
        guard.echo_off()?;
        Ok(guard)
    }

    fn echo_off(&self) -> io::Result<()> {
        let mut quiet = self.saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a valid termios for a descriptor we hold.
        if unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn restore_terminal(&self) {
        // SAFETY: the termios read from this descriptor at the start.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }

    fn catch_signals(&mut self) {
        CAUGHT.store(0, Ordering::SeqCst);
        for signal in PROMPT_SIGNALS {
            // SAFETY: a zeroed sigaction is valid (empty mask, no flags);
            // the handler only stores into an atomic.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_prompt_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) == 0 {
                    if old.sa_sigaction == libc::SIG_IGN {
                        // Ignored before (e.g. SIGHUP under nohup): keep it so.
                        libc::sigaction(signal, &old, std::ptr::null_mut());
                    } else {
                        self.old_actions.push((signal, old));
                    }
                }
            }
        }
    }

    fn release_signals(&mut self) {
        for (signal, old) in self.old_actions.drain(..) {
            // SAFETY: restores the action sigaction returned for it.
            unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
        }
    }

    /// A signal arrived while echo was off: echo back on, the signal's own
    /// action back, and the signal again. When that returns (a handler of
    /// the program's, or a stop then continue), a stop resumes the prompt
    /// (`Ok`); anything else ends it.
    fn deliver(&mut self, signal: libc::c_int, prompts: &mut dyn Write) -> io::Result<()> {
        self.restore_terminal();
        self.release_signals();
        let _ = prompts.write_all(b"\n").and_then(|()| prompts.flush());
        // SAFETY: raising a signal in this process.
        unsafe { libc::raise(signal) };
        if signal == libc::SIGTSTP {
            self.catch_signals();
            self.echo_off()?;
            return Ok(());
        }
        // Not ErrorKind::Interrupted: read_line would try again.
        Err(io::Error::other("interrupted by a signal"))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        self.restore_terminal();
        self.release_signals();
    }
}

/// Reads a line from terminal `fd`, one byte at a time; a signal caught
/// while echo is off is handed to [`EchoOff::deliver`].
struct HiddenReader<'a> {
    fd: BorrowedFd<'a>,
    echo: &'a mut EchoOff,
    prompts: &'a mut dyn Write,
}

impl Read for HiddenReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let caught = CAUGHT.swap(0, Ordering::SeqCst);
            if caught != 0 {
                self.echo.deliver(caught, self.prompts)?;
                continue;
            }
            // SAFETY: reads into a buffer we own, from a descriptor we hold.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len().min(1),
                )
            };
            if n >= 0 {
                return Ok(n.unsigned_abs());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Writes `prompt` to `prompts`, then reads one line from terminal `fd`
/// with echo off (at most `max` bytes). Echo is on again whatever happens.
fn read_hidden(
    fd: RawFd,
    prompts: &mut dyn Write,
    prompt: &str,
    max: usize,
) -> Result<Password, LineError> {
    let mut echo = EchoOff::new(fd).map_err(LineError::Io)?;
    prompts
        .write_all(prompt.as_bytes())
        .and_then(|()| prompts.flush())
        .map_err(LineError::Io)?;
    // SAFETY: `fd` stays open for the whole call (owned by the caller).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut reader = HiddenReader {
        fd,
        echo: &mut echo,
        prompts,
    };
    read_line(&mut reader, max)
    // `echo` is dropped here: the terminal and the signals are restored.
}

/// What a scripted [`Input`] showed on stderr (tests only).
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Seen(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

#[cfg(test)]
impl Seen {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

#[cfg(test)]
impl Write for Seen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn too_long(what: &str, max: usize) -> Failure {
    Failure::usage(format!("{what} is longer than {max} bytes"))
}

fn line_failure(err: LineError, what: &str, max: usize) -> Failure {
    match err {
        LineError::Eof => Failure::new(
            Reason::Usage,
            format!("no input: {what} was expected on stdin"),
        ),
        LineError::TooLong => too_long(what, max),
        LineError::Io(e) => Failure::io(&format!("reading {what}"), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn lines(data: &[u8]) -> Cursor<Vec<u8>> {
        Cursor::new(data.to_vec())
    }

    #[test]
    fn reads_one_line_at_a_time() {
        let mut src = lines(b"secret pw\n123456\n");
        assert_eq!(&read_line(&mut src, 100).unwrap()[..], b"secret pw");
        // Nothing of the second line was consumed by the first read.
        assert_eq!(src.position(), 10);
        assert_eq!(&read_line(&mut src, 100).unwrap()[..], b"123456");
        assert!(matches!(read_line(&mut src, 100), Err(LineError::Eof)));
    }

    #[test]
    fn strips_crlf_and_keeps_inner_spaces() {
        let mut src = lines(b"  two words \r\n");
        assert_eq!(&read_line(&mut src, 100).unwrap()[..], b"  two words ");
    }

    #[test]
    fn last_line_without_newline_counts_and_empty_line_is_empty() {
        let mut src = lines(b"\nlast");
        assert_eq!(&read_line(&mut src, 100).unwrap()[..], b"");
        assert_eq!(&read_line(&mut src, 100).unwrap()[..], b"last");
        assert!(matches!(read_line(&mut src, 100), Err(LineError::Eof)));
    }

    #[test]
    fn too_long_is_refused() {
        let mut src = lines(b"12345\n");
        assert_eq!(&read_line(&mut src, 5).unwrap()[..], b"12345");
        let mut src = lines(b"123456\n");
        assert!(matches!(read_line(&mut src, 5), Err(LineError::TooLong)));
        let mut src = lines(b"123456");
        assert!(matches!(read_line(&mut src, 5), Err(LineError::TooLong)));
    }

    #[test]
    fn non_utf8_bytes_pass_through_for_passwords() {
        let mut src = lines(b"\xff\xfe\n");
        assert_eq!(&read_line(&mut src, 10).unwrap()[..], b"\xff\xfe");
    }

    #[test]
    fn scripted_password_then_answer() {
        let mut input = Input::scripted(b"hunter2\n 123 456 \n", false);
        assert!(!input.is_interactive());
        assert_eq!(&input.password("Password: ", 4096).unwrap()[..], b"hunter2");
        assert_eq!(
            input.answer("Code: ", "the code", 64).unwrap().as_str(),
            "123 456"
        );
        let f = input.answer("Code: ", "the code", 64).unwrap_err();
        assert_eq!(f.exit_code(), 2);
        assert_eq!(f.message(), "no input: the code was expected on stdin");
    }

    #[test]
    fn optional_answer_ends_quietly_at_eof() {
        let (mut input, seen) = Input::scripted_seen(b" path \n", true);
        let a = input.optional_answer("Path: ", "a path", 64).unwrap();
        assert_eq!(a.as_deref().map(String::as_str), Some("path"));
        assert!(input
            .optional_answer("Path: ", "a path", 64)
            .unwrap()
            .is_none());
        assert_eq!(seen.text(), "Path: Path: ");
        let mut input = Input::scripted(b"123456789\n", true);
        let f = input.optional_answer("Path: ", "a path", 4).unwrap_err();
        assert_eq!(f.exit_code(), 2);
    }

    #[test]
    fn hidden_password_source() {
        let no_tty = || Err::<(), _>(io::Error::from_raw_os_error(libc::ENXIO));
        assert!(matches!(hidden_source(false, Ok(())), HiddenSource::Lines));
        assert!(matches!(
            hidden_source(false, no_tty()),
            HiddenSource::Lines
        ));
        assert!(matches!(hidden_source(true, Ok(())), HiddenSource::Tty(())));
        // stdin is a terminal but there is no controlling terminal
        // (`su - user -c ...`): stdin, with echo off, not an error.
        assert!(matches!(hidden_source(true, no_tty()), HiddenSource::Stdin));
    }

    /// A pseudo-terminal pair: (master, slave).
    fn pty() -> (File, File) {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two descriptors, owned by the Files below.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: fresh descriptors nobody else owns.
        unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(master), File::from_raw_fd(slave))
        }
    }

    fn lflag(fd: &File) -> libc::tcflag_t {
        let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios on success (asserted).
        unsafe {
            assert_eq!(libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()), 0);
            t.assume_init().c_lflag
        }
    }

    /// Types `text` on the master side once echo is off on the slave.
    fn type_when_hidden(
        master: &File,
        slave: &File,
        text: &'static [u8],
    ) -> std::thread::JoinHandle<()> {
        let mut master = master.try_clone().unwrap();
        let slave = slave.try_clone().unwrap();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while lflag(&slave) & libc::ECHO != 0 {
                assert!(std::time::Instant::now() < deadline, "echo never went off");
                std::thread::yield_now();
            }
            master.write_all(text).unwrap();
        })
    }

    #[test]
    fn hidden_read_turns_echo_off_and_back_on() {
        let (master, slave) = pty();
        assert_ne!(lflag(&slave) & libc::ECHO, 0);
        let typing = type_when_hidden(&master, &slave, b"hunter2\n");
        let mut prompts = Vec::new();
        let pw = read_hidden(slave.as_raw_fd(), &mut prompts, "Password: ", 64).unwrap();
        typing.join().unwrap();
        assert_eq!(&pw[..], b"hunter2");
        assert_eq!(prompts, b"Password: ");
        assert_ne!(lflag(&slave) & libc::ECHO, 0, "echo is on again");
        assert_eq!(lflag(&slave) & libc::ECHONL, 0, "ECHONL as it was");
    }

    #[test]
    fn hidden_read_restores_echo_after_an_error() {
        let (master, slave) = pty();
        let typing = type_when_hidden(&master, &slave, b"averylongpassword\n");
        let mut prompts = Vec::new();
        let e = read_hidden(slave.as_raw_fd(), &mut prompts, "Password: ", 4).unwrap_err();
        typing.join().unwrap();
        assert!(matches!(e, LineError::TooLong), "{e:?}");
        assert_ne!(lflag(&slave) & libc::ECHO, 0, "echo is on again");

        // Not a terminal: refused before any prompt, nothing read.
        let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        w.write_all(b"pw\n").unwrap();
        let mut prompts = Vec::new();
        let e = read_hidden(r.as_raw_fd(), &mut prompts, "Password: ", 64).unwrap_err();
        assert!(matches!(e, LineError::Io(_)), "{e:?}");
        assert!(prompts.is_empty());
    }

    #[test]
    fn missing_password_is_a_usage_error_without_content() {
        let mut input = Input::scripted(b"", false);
        let f = input.password("Password: ", 4096).unwrap_err();
        assert_eq!(f.exit_code(), 2);

        let mut input = Input::scripted(b"averyverylongpassword\n", false);
        let f = input.password("Password: ", 8).unwrap_err();
        assert_eq!(f.exit_code(), 2);
        assert!(!f.message().contains("avery"));
    }
}
