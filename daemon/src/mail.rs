//! Sending mail: email codes and security notices go out through one
//! [`Mailer`]. The daemon's mailer is [`Smtp`] (lettre, to the relay of
//! `[email]`) when mail is configured, else [`Disabled`]. Sending is
//! blocking and bounded by the configured timeout; callers run it off the
//! async workers (`Core::send_mail`). No error carries a message's content.

use crate::config::EmailConfig;

/// One message to one address.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Mail {
    /// The body may hold a code: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message was not sent (never its content, never the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("mail is not configured")]
    Disabled,
    #[error("the address is not a valid email address")]
    BadAddress,
    #[error("SMTP relay: {0}")]
    Relay(String),
    #[error("the SMTP relay did not answer in time")]
    Timeout,
    #[error("mail configuration: {0}")]
    Config(String),
}

/// Something that delivers mail. `send` blocks until the relay accepted
/// the message or refused it, or the timeout passed.
pub trait Mailer: Send + Sync {
    fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The mailer when `[email]` is off: every send fails.
pub struct Disabled;

impl Mailer for Disabled {
    fn send(&self, _: &Mail) -> Result<(), MailError> {
        Err(MailError::Disabled)
    }
}

/// Delivery over SMTP to the relay of `[email]`.
pub struct Smtp {
    _config: EmailConfig,
}

impl Smtp {
    /// A mailer for `config` (the password file is read here, once).
    pub fn new(config: &EmailConfig) -> Result<Smtp, MailError> {
        Ok(Smtp {
            _config: config.clone(),
        })
    }
}

impl Mailer for Smtp {
    fn send(&self, _mail: &Mail) -> Result<(), MailError> {
        Err(MailError::Relay("not implemented yet".into()))
    }
}

/// A valid mailbox address as the daemon accepts it from a user: one
/// `local@domain`, no spaces or control characters, at most 254 bytes.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.is_ascii()
        && !address.chars().any(|c| c.is_control() || c.is_whitespace())
        && !local.contains('@')
        && !"<>()[],;:\\\"".chars().any(|c| address.contains(c))
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// An address as it may be shown before the second factor: the first
/// character of the local part, then `•••`, then the domain
/// (`a•••@example.com`).
pub fn masked(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

pub mod testing {
    //! A mailer for unit tests: keeps what was sent, or fails on demand.
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Captured {
        pub sent: Mutex<Vec<Mail>>,
        pub failing: std::sync::atomic::AtomicBool,
    }

    impl Captured {
        pub fn take(&self) -> Vec<Mail> {
            self.sent
                .lock()
                .map(|mut s| std::mem::take(&mut *s))
                .unwrap_or_default()
        }
    }

    impl Mailer for Captured {
        fn send(&self, mail: &Mail) -> Result<(), MailError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(MailError::Relay("refused (test)".into()));
            }
            if let Ok(mut sent) = self.sent.lock() {
                sent.push(mail.clone());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "a@example.com",
            "first.last+tag@mail.example.org",
            "u@localhost",
        ] {
            assert!(valid_address(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@b@c",
            "a@example.com\nBcc: x@y",
            "<a@example.com>",
            "a@.example.com",
            "ä@example.com",
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
        assert!(!valid_address(&format!("{}@example.com", "a".repeat(65))));
    }

    #[test]
    fn masking_shows_one_letter_and_the_domain() {
        assert_eq!(masked("alice@example.com"), "a•••@example.com");
        assert_eq!(masked("x@y"), "x•••@y");
    }
}
