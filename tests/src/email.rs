//! Email codes end to end: a daemon whose `[email]` points at a real SMTP
//! server on loopback (aiosmtpd, see [`crate::smtp`]), users who enable
//! email codes with the real `twofactorctl`, and codes read from the
//! messages the server received.

use std::time::Duration;

use crate::proc::{Finished, Interactive};
use crate::smtp::{Received, SmtpServer};
use crate::users::TestUser;
use crate::{Ctl, DaemonConfig};

/// How long a mail may take to arrive.
pub const ARRIVAL: Duration = Duration::from_secs(20);

/// An `[email]` section: codes and notices on, plain SMTP to the relay on
/// 127.0.0.1:`port`, then `extra` lines.
pub fn section(port: u16, extra: &str) -> String {
    format!(
        "\n[email]\ncodes = true\nnotices = true\nrelay = \"127.0.0.1\"\nport = {port}\n\
         from = \"twofactor@example.com\"\nmax_sends_per_hour = 60\n{extra}\n"
    )
}

/// The test daemon's config, sending mail to `server`.
pub fn config(server: &SmtpServer) -> DaemonConfig {
    DaemonConfig {
        extra: section(server.port(), ""),
        ..DaemonConfig::default()
    }
}

/// An address of `user` at a test domain.
pub fn address_of(user: &TestUser) -> String {
    format!("{}@mail.example.org", user.name)
}

/// The 6-digit code in a code mail's body.
pub fn code_in(mail: &Received) -> String {
    mail.body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no 6-digit code in the mail: {:?}", mail.body))
        .to_string()
}

/// What kind of mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A code (subject "Your verification code ...").
    Code,
    /// A security notice (subject "Two-factor authentication changed ...").
    Notice,
}

impl Kind {
    fn of(mail: &Received) -> Kind {
        if mail.subject.starts_with("Your verification code") {
            Kind::Code
        } else {
            Kind::Notice
        }
    }
}

/// The mails of `kind` to `to` received so far, oldest first (notices go
/// out in the background, so only mails of one kind keep their order).
pub fn mails(server: &SmtpServer, to: &str, kind: Kind) -> Vec<Received> {
    server
        .messages()
        .into_iter()
        .filter(|m| m.to.contains(to) && Kind::of(m) == kind)
        .collect()
}

/// Waits for the `n`-th mail (1-based) of `kind` to `to`, and returns it.
pub fn nth(server: &SmtpServer, to: &str, kind: Kind, n: usize) -> Received {
    let mut found = None;
    crate::wait_until(ARRIVAL, || {
        found = mails(server, to, kind).get(n - 1).cloned();
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("{kind:?} mail number {n} to {to} did not arrive"))
}

/// The code of the `n`-th code mail to `to`.
pub fn nth_code(server: &SmtpServer, to: &str, n: usize) -> String {
    code_in(&nth(server, to, Kind::Code, n))
}

/// How many code mails went to `to` so far.
pub fn codes_sent(server: &SmtpServer, to: &str) -> usize {
    mails(server, to, Kind::Code).len()
}

impl Ctl {
    /// `twofactorctl enable email ADDRESS` as `user`: the password on
    /// stdin (and `current`, a current second factor, when the user has a
    /// method: "" for a first method), then the code from the mail the
    /// relay received, typed back once it arrived. Returns what the command
    /// printed.
    pub fn enable_email(
        &self,
        user: &TestUser,
        address: &str,
        server: &SmtpServer,
        current: &str,
    ) -> Finished {
        let before = codes_sent(server, address);
        let mut p = Interactive::spawn(&mut self.command(user, &["enable", "email", address]));
        p.write(format!("{}\n", user.password()).as_bytes());
        if !current.is_empty() {
            p.write(format!("{current}\n").as_bytes());
        }
        let code = nth_code(server, address, before + 1);
        p.write(format!("{code}\n").as_bytes());
        p.close_stdin();
        p.finish(ARRIVAL)
    }

    /// [`Ctl::enable_email`], asserting that it worked.
    pub fn enroll_email(
        &self,
        user: &TestUser,
        address: &str,
        server: &SmtpServer,
        current: &str,
    ) -> Finished {
        let out = self.enable_email(user, address, server, current);
        assert!(
            out.success() && out.stdout().contains("Email codes enabled"),
            "twofactorctl enable email failed for {}: {}",
            user.name,
            out.describe()
        );
        out
    }
}

/// The prompt of the list of other methods.
pub const CHOOSE_PROMPT: &str = "Choose a number (Enter: back): ";
/// The email prompt when no code could be sent and none is waiting.
pub const NO_CODE_PROMPT: &str = "Email code (none was sent; press Enter for another method): ";
