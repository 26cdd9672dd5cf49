//! Questions to the user: the account password and visible answers (codes).
//!
//! When stdin is a terminal, the password is read from the terminal with
//! echo off (rpassword) and answers are read as typed lines. Otherwise every
//! question takes the next line of stdin, in order: this is how scripts and
//! tests drive the CLI (for `enable app`: line 1 the password, line 2 the
//! code). Lines are read one byte at a time straight from the file
//! descriptor, so nothing past the current line is consumed and no copy of a
//! password stays behind in a library buffer; password buffers are wiped
//! when dropped. Passwords are never taken from argv or the environment.
//!
//! Prompts go to stderr (to the terminal, for the hidden password), so that
//! stdout carries only the command's output.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;

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
        if self.tty_password {
            let typed = Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .map_err(|e| Failure::io("reading the password from the terminal", &e))?,
            );
            if typed.len() > max {
                return Err(too_long("the password", max));
            }
            let mut bytes: Password = Zeroizing::new(Vec::with_capacity(typed.len()));
            bytes.extend_from_slice(typed.as_bytes());
            return Ok(bytes);
        }
        self.prompt(prompt)?;
        read_line(&mut self.lines, max).map_err(|e| line_failure(e, "the password", max))
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
