//! Logging to syslog (facility `authpriv`), the way PAM modules do.
//!
//! Lines look like `pam_twofactor(sshd:auth): twofactord unreachable ...`.
//! The module never calls `openlog`: the ident belongs to the host program
//! (sshd, su, ...). Nothing secret is ever passed here: no answer, no code, no
//! session id.

use std::ffi::CString;

/// Severity of a line, mapped to syslog priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
}

impl Level {
    fn priority(self) -> libc::c_int {
        match self {
            Level::Error => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
        }
    }
}

/// Where the module's log lines go.
pub trait Log {
    fn log(&mut self, level: Level, message: &str);
}

/// The real log: `syslog(3)` with `LOG_AUTHPRIV`.
pub struct Syslog {
    prefix: String,
}

impl Syslog {
    /// `service` is `PAM_SERVICE`; `hook` is the management group (`auth`).
    pub fn new(service: &str, hook: &str) -> Self {
        Syslog {
            prefix: format!("pam_twofactor({}:{}): ", clean(service), clean(hook)),
        }
    }
}

impl Log for Syslog {
    fn log(&mut self, level: Level, message: &str) {
        let line = format!("{}{}", self.prefix, clean(message));
        // `clean` removed every NUL, so this cannot fail; stay quiet if it does.
        let Ok(line) = CString::new(line) else {
            return;
        };
        // SAFETY: the format is the constant "%s" and the only variadic
        // argument is a valid NUL-terminated C string that outlives the call,
        // so syslog reads exactly one string argument.
        unsafe {
            libc::syslog(
                libc::LOG_AUTHPRIV | level.priority(),
                c"%s".as_ptr(),
                line.as_ptr(),
            );
        }
    }
}

/// Replaces control characters (NUL, newlines, escapes) so that a value from
/// outside cannot forge or split log lines.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(clean("a\nb\0c\x1b[1md"), "a?b?c?[1md");
        assert_eq!(clean("plain text é"), "plain text é");
    }

    #[test]
    fn prefix_names_service_and_hook() {
        let s = Syslog::new("sshd", "auth");
        assert_eq!(s.prefix, "pam_twofactor(sshd:auth): ");
        let s = Syslog::new("evil\nservice", "auth");
        assert_eq!(s.prefix, "pam_twofactor(evil?service:auth): ");
    }
}
