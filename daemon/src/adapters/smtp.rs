//! Sending mail: email codes and security notices go out through one
//! [`Mailer`]. The daemon's mailer is [`Smtp`] (lettre, to the relay of
//! `[email]`) when mail is configured, else [`Disabled`]. Sending is
//! blocking and bounded by the configured timeout; callers run it off the
//! async workers (`Core::send_mail`). No error carries a message's content.

use crate::config::{EmailConfig, SmtpSecurity};
use crate::message::{is_loopback, valid_address, Mail};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{SmtpTransport, Transport};
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

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

/// Delivery over SMTP to the relay of `[email]` (lettre's blocking
/// transport, one connection per message).
///
/// - `security = "none"`: plain SMTP, only to a relay on this machine
///   (`localhost`, 127.0.0.0/8, `::1`).
/// - `starttls`: STARTTLS is required (a relay that does not offer it is
///   refused), `tls`: implicit TLS; both check the certificate against the
///   system CA store (/etc/ssl/certs) plus `ca_file`, and the host name
///   against `relay`.
/// - With a `username`, the password is read once, here, from
///   `password_file` (see [`read_password_file`]) and kept zeroized; a
///   copy lives only for the length of one delivery.
pub struct Smtp {
    relay: String,
    port: u16,
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    username: String,
    password: Zeroizing<String>,
    timeout: Duration,
    from: lettre::message::Mailbox,
    host: String,
}

impl std::fmt::Debug for Smtp {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("relay", &self.relay)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// A mailer for `config` (the password file is read here, once).
    pub fn new(config: &EmailConfig) -> Result<Smtp, MailError> {
        let relay = config.relay.trim().to_string();
        if relay.is_empty() {
            return Err(MailError::Config("relay is empty".into()));
        }
        if config.security == SmtpSecurity::None && !is_loopback(&relay) {
            return Err(MailError::Config(format!(
                "security = \"none\" sends in the clear: allowed only to a relay on this \
                 machine (localhost, 127.0.0.0/8, ::1), not {relay}; use starttls or tls"
            )));
        }
        let host = crate::config::hostname();
        let from = if config.from.is_empty() {
            format!("twofactor@{host}")
        } else {
            config.from.clone()
        };
        let from = from
            .parse::<lettre::message::Mailbox>()
            .ok()
            .filter(|_| valid_address(&from))
            .ok_or_else(|| {
                MailError::Config(format!("the sender address {from:?} is not valid"))
            })?;
        let tls = match config.security {
            SmtpSecurity::None => None,
            SmtpSecurity::Starttls | SmtpSecurity::Tls => {
                let mut builder = TlsParameters::builder(relay.clone());
                if !config.ca_file.as_os_str().is_empty() {
                    builder = builder.add_root_certificate(read_ca_file(&config.ca_file)?);
                }
                Some(builder.build_rustls().map_err(|e| {
                    MailError::Config(format!("cannot set up TLS for {relay}: {e}"))
                })?)
            }
        };
        let password = if config.username.is_empty() {
            Zeroizing::new(String::new())
        } else if config.password_file.as_os_str().is_empty() {
            return Err(MailError::Config(
                "username is set but password_file is not".into(),
            ));
        } else {
            read_password_file(&config.password_file)?
        };
        Ok(Smtp {
            relay,
            port: config.port,
            security: config.security,
            tls,
            username: config.username.clone(),
            password,
            timeout: Duration::from_secs(u64::from(config.timeout_seconds.max(1))),
            from,
            host,
        })
    }

    /// The message as it goes to the relay.
    fn message(&self, mail: &Mail) -> Result<lettre::Message, MailError> {
        if !valid_address(&mail.to) {
            return Err(MailError::BadAddress);
        }
        let to = mail
            .to
            .parse::<lettre::message::Mailbox>()
            .map_err(|_| MailError::BadAddress)?;
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id)
            .map_err(|e| MailError::Config(format!("no random message id: {e}")))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .message_id(Some(format!("<{}@{}>", hex::encode(id), self.host)))
            .header(ContentType::TEXT_PLAIN)
            // SMTP's end of data ends the last line: a final line end of
            // the body's own would arrive as an extra empty line.
            .body(
                mail.body
                    .strip_suffix('\n')
                    .map(|b| b.strip_suffix('\r').unwrap_or(b))
                    .unwrap_or(&mail.body)
                    .to_string(),
            )
            .map_err(|e| MailError::Config(format!("cannot build the message: {e}")))
    }

    /// A transport for one delivery (it holds the only other copy of the
    /// password, dropped with it).
    fn transport(&self) -> SmtpTransport {
        let tls = match (&self.security, &self.tls) {
            (SmtpSecurity::Starttls, Some(p)) => Tls::Required(p.clone()),
            (SmtpSecurity::Tls, Some(p)) => Tls::Wrapper(p.clone()),
            _ => Tls::None,
        };
        let mut builder = SmtpTransport::builder_dangerous(self.relay.as_str())
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(self.host.clone()));
        if !self.username.is_empty() {
            builder = builder
                .credentials(Credentials::new(
                    self.username.clone(),
                    self.password.as_str().to_owned(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        builder.build()
    }

    /// What went wrong, for the log: the kind of failure, the relay, and
    /// the relay's own words unless they repeat the password or a code.
    fn failure(&self, e: &lettre::transport::smtp::Error, mail: &Mail) -> MailError {
        if timed_out(e) {
            return MailError::Timeout;
        }
        let at = format!("{}:{}", self.relay, self.port);
        let detail = withheld(
            &std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_default(),
            &self.password,
            &mail.body,
        );
        let text = if let Some(code) = e.status() {
            let code_text = code.to_string();
            let what = if code_text == "530" {
                "requires authentication"
            } else if code_text.starts_with("53") {
                "refused authentication"
            } else if e.is_permanent() {
                "refused the message"
            } else {
                "refused the message for now"
            };
            format!("{at} {what}: {code} {detail}")
        } else if io_kind(e) == Some(ErrorKind::ConnectionRefused) {
            format!("cannot connect to {at}: {detail}")
        } else if e.is_tls() || (self.tls.is_some() && io_kind(e) == Some(ErrorKind::InvalidData)) {
            // rustls reports a failed handshake (a certificate that is not
            // trusted or not for this name) as invalid data.
            format!("TLS with {at} failed: {detail}")
        } else if e.is_client() {
            format!("{at}: {detail}")
        } else if e.is_response() {
            format!("{at} answered something that is not SMTP: {detail}")
        } else {
            format!("cannot talk to {at}: {detail}")
        };
        MailError::Relay(text.trim_end().to_string())
    }
}

impl Mailer for Smtp {
    fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = self.message(mail)?;
        self.transport()
            .send(&message)
            .map(|_| ())
            .map_err(|e| self.failure(&e, mail))
    }
}

/// The kind of the first I/O error under `e`, if any.
fn io_kind(e: &lettre::transport::smtp::Error) -> Option<ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

/// Whether `e` is a timeout (a read timeout shows as `WouldBlock` on
/// Linux).
fn timed_out(e: &lettre::transport::smtp::Error) -> bool {
    matches!(
        io_kind(e),
        Some(ErrorKind::TimedOut | ErrorKind::WouldBlock)
    )
}

/// `text` (a relay's answer or a library's error) made fit for the log:
/// one line, at most 200 characters, and nothing at all if it repeats the
/// password or a word of the body that holds a digit (a code).
fn withheld(text: &str, password: &str, body: &str) -> String {
    let secret = |w: &&str| w.len() >= 4 && w.bytes().any(|b| b.is_ascii_digit());
    let leaks = (!password.is_empty() && text.contains(password))
        || body
            .split(|c: char| !c.is_alphanumeric())
            .filter(secret)
            .any(|w| text.contains(w));
    if leaks {
        return "(the relay's answer is withheld: it repeats part of the message)".into();
    }
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.trim().to_string()
}

/// The extra CA of `ca_file` (PEM).
fn read_ca_file(path: &Path) -> Result<Certificate, MailError> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| MailError::Config(format!("ca_file {shown}: cannot read: {e}")))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(MailError::Config(format!(
            "ca_file {shown}: holds no PEM certificate"
        )));
    }
    Certificate::from_pem(&pem)
        .map_err(|e| MailError::Config(format!("ca_file {shown}: not a usable certificate: {e}")))
}

/// Longest password file read.
const PASSWORD_FILE_MAX: u64 = 4096;

/// The SMTP password: the first line of `path`, without its newline. The
/// file must be a regular file (not a symbolic link) owned by root (or by
/// the daemon's own user, for tests run as another user) that neither its
/// group nor others may read. Errors name the file and the problem, never
/// what it holds.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, MailError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let bad = |what: String| MailError::Config(format!("password_file {shown}: {what}"));
    if !path.is_absolute() {
        return Err(bad("must be an absolute path".into()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => bad("is a symbolic link; name the file itself".into()),
            _ => bad(format!("cannot open: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot stat: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(bad("is not a regular file".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(bad(format!(
            "is owned by uid {}; it must be owned by root (chown root:root)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "mode {:04o} lets others read it; it must be readable by root only (chmod 0600)",
            meta.mode() & 0o7777
        )));
    }
    let mut raw = Zeroizing::new(Vec::new());
    file.take(PASSWORD_FILE_MAX + 1)
        .read_to_end(&mut raw)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if raw.len() as u64 > PASSWORD_FILE_MAX {
        return Err(bad(format!(
            "is longer than {PASSWORD_FILE_MAX} bytes; it must hold the password on one line"
        )));
    }
    let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let password =
        std::str::from_utf8(first).map_err(|_| bad("the password is not UTF-8".into()))?;
    if password.is_empty() {
        return Err(bad("the first line (the password) is empty".into()));
    }
    Ok(Zeroizing::new(password.to_owned()))
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

    fn password_file(contents: &[u8], mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtp-password");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn config_error(e: MailError) -> String {
        match e {
            MailError::Config(text) => text,
            other => panic!("not a configuration error: {other:?}"),
        }
    }

    #[test]
    fn the_password_is_the_first_line() {
        let (_dir, path) = password_file(b"s3cret pass\nsecond line\n", 0o600);
        assert_eq!(read_password_file(&path).unwrap().as_str(), "s3cret pass");
        let (_dir, path) = password_file(b"no-newline", 0o400);
        assert_eq!(read_password_file(&path).unwrap().as_str(), "no-newline");
        let (_dir, path) = password_file(b"crlf\r\n", 0o600);
        assert_eq!(read_password_file(&path).unwrap().as_str(), "crlf");
    }

    #[test]
    fn a_readable_password_file_is_refused_by_name_not_content() {
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let (_dir, path) = password_file(b"hunter2-secret\n", mode);
            let e = config_error(read_password_file(&path).unwrap_err());
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(&format!("{mode:04o}")), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn password_file_must_be_a_plain_file_with_a_password() {
        let (dir, path) = password_file(b"pw\n", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = config_error(read_password_file(&link).unwrap_err());
        assert!(e.contains("symbolic link") && e.contains("link"), "{e}");
        let e = config_error(read_password_file(dir.path()).unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
        let e = config_error(read_password_file(&dir.path().join("missing")).unwrap_err());
        assert!(e.contains("cannot open"), "{e}");
        let e = config_error(read_password_file(Path::new("relative")).unwrap_err());
        assert!(e.contains("absolute"), "{e}");
        let (_d, empty) = password_file(b"\nsecond\n", 0o600);
        let e = config_error(read_password_file(&empty).unwrap_err());
        assert!(e.contains("empty") && !e.contains("second"), "{e}");
        let (_d, long) = password_file(&[b'x'; 5000], 0o600);
        let e = config_error(read_password_file(&long).unwrap_err());
        assert!(e.contains("longer than"), "{e}");
    }

    #[test]
    fn smtp_new_checks_what_the_file_cannot_see() {
        let base = EmailConfig {
            codes: true,
            ..EmailConfig::default()
        };
        assert!(Smtp::new(&base).is_ok());
        let (_dir, path) = password_file(b"pw\n", 0o644);
        let (_dir2, ca) = password_file(b"not a certificate", 0o644);
        let shown = path.display().to_string();
        let cases: [(EmailConfig, &[&str]); 5] = [
            (
                EmailConfig {
                    relay: "mail.example.com".into(),
                    ..base.clone()
                },
                &["mail.example.com", "starttls"],
            ),
            (
                EmailConfig {
                    username: "u".into(),
                    ..base.clone()
                },
                &["password_file"],
            ),
            (
                EmailConfig {
                    username: "u".into(),
                    password_file: path.clone(),
                    security: SmtpSecurity::Starttls,
                    relay: "mail.example.com".into(),
                    ..base.clone()
                },
                &[shown.as_str(), "0644"],
            ),
            (
                EmailConfig {
                    security: SmtpSecurity::Tls,
                    ca_file: ca.clone(),
                    ..base.clone()
                },
                &["ca_file", "no PEM certificate"],
            ),
            (
                EmailConfig {
                    from: "not an address".into(),
                    ..base
                },
                &["sender"],
            ),
        ];
        for (config, says) in cases {
            let e = config_error(Smtp::new(&config).unwrap_err());
            assert!(says.iter().all(|s| e.contains(s)), "{says:?}: {e}");
        }
    }

    #[test]
    fn a_bad_recipient_is_refused_before_any_connection() {
        let smtp = Smtp::new(&EmailConfig {
            port: 1,
            ..EmailConfig::default()
        })
        .unwrap();
        let mail = Mail {
            to: "a@example.com\nBcc: x@y".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        assert_eq!(smtp.send(&mail), Err(MailError::BadAddress));
    }

    #[test]
    fn the_relays_words_never_carry_a_code_or_the_password() {
        let body = "Your code is 123456. Valid for 10 minutes.";
        assert_eq!(
            withheld("5.7.1 rejected\r\nbye", "pw", body),
            "5.7.1 rejected  bye"
        );
        assert!(!withheld("echo 123456", "pw", body).contains("123456"));
        assert!(!withheld("bad password hunter2", "hunter2", body).contains("hunter2"));
        assert_eq!(withheld(&"x".repeat(500), "", body).len(), 200);
    }
}
