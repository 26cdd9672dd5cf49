//! The daemon's mailer (`twofactord::adapters::smtp::Smtp`) against a real SMTP
//! server (aiosmtpd, see `twofactor_tests::smtp`): what arrives is exactly
//! what was sent; TLS is checked (CA and host name) and STARTTLS is never
//! skipped; authentication works and fails without telling the password;
//! a relay that is down or silent fails within the timeout; and a password
//! file others can read stops `--check-config` and the daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use twofactor_tests::smtp::{free_port, Certs, Received, Security, SilentRelay, SmtpServer};
use twofactor_tests::{need_root, Daemon, DaemonConfig, PrivateBus, BUS_NAME};
use twofactord::adapters::smtp::{MailError, Mailer, Smtp};
use twofactord::config::{EmailConfig, SmtpSecurity};
use twofactord::message::Mail;

const ARRIVAL: Duration = Duration::from_secs(20);
const CODE: &str = "493817";

/// A code mail to `to`, with non-ASCII text to exercise the encoding.
fn code_mail(to: &str) -> Mail {
    Mail {
        to: to.into(),
        subject: "Your verification code for tëst-host".into(),
        body: format!(
            "Your verification code for sshd on tëst-host is {CODE}.\n\n\
             It is valid for 10 minutes and can be used once. — Grüße\n"
        ),
    }
}

/// `[email]` for the relay at 127.0.0.1:`port`.
fn email(port: u16, security: SmtpSecurity) -> EmailConfig {
    EmailConfig {
        notices: true,
        relay: "127.0.0.1".into(),
        port,
        security,
        from: "2fa@example.com".into(),
        timeout_seconds: 5,
        ..EmailConfig::default()
    }
}

fn with_ca(mut config: EmailConfig, ca: &Path) -> EmailConfig {
    config.ca_file = ca.to_path_buf();
    config
}

/// A root-only password file (0600, owned by whoever runs the test).
fn password_file(dir: &Path, password: &str, mode: u32) -> PathBuf {
    let path = dir.join("smtp-password");
    twofactor_tests::write_file(&path, format!("{password}\n"), mode);
    path
}

/// A TLS relay on 127.0.0.1 with a fresh CA (for `ca_file`).
fn tls_relay(security: Security) -> (Certs, SmtpServer) {
    let certs = Certs::localhost();
    let server = SmtpServer::tls(security, &certs);
    (certs, server)
}

/// One delivery through a mailer made for `config`.
fn send(config: &EmailConfig, mail: &Mail) -> Result<(), MailError> {
    Smtp::new(config).expect("mailer").send(mail)
}

fn is_the(mail: &Mail) -> impl Fn(&Received) -> bool + '_ {
    move |m| m.to == mail.to
}

/// The relay's error, checked to say nothing of the code or the body.
fn relay_error(result: Result<(), MailError>) -> String {
    match result {
        Err(MailError::Relay(text)) => {
            assert!(!text.contains(CODE), "the error shows the code: {text}");
            assert!(
                !text.contains("used once"),
                "the error shows the body: {text}"
            );
            text
        }
        other => panic!("expected a relay error, got {other:?}"),
    }
}

#[test]
fn plain_smtp_to_loopback_delivers_exactly_what_was_sent() {
    let server = SmtpServer::plain();
    let smtp = Smtp::new(&email(server.port(), SmtpSecurity::None)).expect("mailer");
    let mail = code_mail("alice@example.com");
    smtp.send(&mail).expect("sent");
    let got = server
        .wait_for_message(ARRIVAL, is_the(&mail))
        .unwrap_or_else(|| panic!("not received: {:?}\n{}", server.messages(), server.log()));
    assert_eq!(got.to, "alice@example.com");
    assert_eq!(got.from, "2fa@example.com");
    assert_eq!(got.subject, mail.subject);
    assert_eq!(got.body, mail.body);
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.charset.to_ascii_lowercase(), "utf-8");

    // An empty `from` is twofactor@HOSTNAME.
    let smtp = Smtp::new(&EmailConfig {
        from: String::new(),
        ..email(server.port(), SmtpSecurity::None)
    })
    .expect("mailer");
    let mail = code_mail("bob@example.com");
    smtp.send(&mail).expect("sent");
    let got = server
        .wait_for_message(ARRIVAL, is_the(&mail))
        .expect("received");
    assert_eq!(
        got.from,
        format!("twofactor@{}", twofactor_tests::hostname())
    );
    assert_eq!(server.messages().len(), 2);
}

#[test]
fn a_bad_recipient_is_refused_and_nothing_is_sent() {
    let server = SmtpServer::plain();
    let smtp = Smtp::new(&email(server.port(), SmtpSecurity::None)).expect("mailer");
    for to in [
        "",
        "alice",
        "alice@example.com\r\nBcc: eve@example.com",
        "a b@c",
    ] {
        assert_eq!(
            smtp.send(&code_mail(to)),
            Err(MailError::BadAddress),
            "{to:?}"
        );
    }
    assert!(server.messages().is_empty());
}

#[test]
fn starttls_with_the_relays_ca_delivers() {
    let (certs, server) = tls_relay(Security::StartTls);
    let mail = code_mail("carol@example.com");
    // By address (the certificate names 127.0.0.1) and by name.
    for relay in ["127.0.0.1", "localhost"] {
        let config = EmailConfig {
            relay: relay.into(),
            ..with_ca(email(server.port(), SmtpSecurity::Starttls), &certs.ca)
        };
        send(&config, &mail).unwrap_or_else(|e| panic!("{relay}: {e}\n{}", server.log()));
    }
    assert!(server.wait_for_message(ARRIVAL, is_the(&mail)).is_some());
    let got = server.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, mail.body);
}

#[test]
fn starttls_refuses_a_certificate_from_an_untrusted_ca() {
    let trusted = Certs::localhost();
    let other = Certs::localhost();
    let server = SmtpServer::tls(Security::StartTls, &other);
    let mail = code_mail("dave@example.com");
    // Another CA in ca_file, and no ca_file (system CAs only).
    for config in [
        with_ca(email(server.port(), SmtpSecurity::Starttls), &trusted.ca),
        email(server.port(), SmtpSecurity::Starttls),
    ] {
        let started = Instant::now();
        let text = relay_error(send(&config, &mail));
        assert!(text.contains("TLS"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5), "{text}");
    }
    assert!(server.messages().is_empty(), "{:?}", server.messages());
}

#[test]
fn tls_refuses_a_certificate_for_another_name() {
    let certs = Certs::for_names("DNS:mail.example.test");
    let server = SmtpServer::tls(Security::Tls, &certs);
    let config = with_ca(email(server.port(), SmtpSecurity::Tls), &certs.ca);
    let text = relay_error(send(&config, &code_mail("erin@example.com")));
    assert!(text.contains("TLS"), "{text}");
    assert!(server.messages().is_empty());
}

#[test]
fn starttls_is_required_not_opportunistic() {
    // A relay that offers no STARTTLS: the mail is not sent in the clear.
    let server = SmtpServer::plain();
    let certs = Certs::localhost();
    let config = with_ca(email(server.port(), SmtpSecurity::Starttls), &certs.ca);
    let text = relay_error(send(&config, &code_mail("frank@example.com")));
    assert!(text.to_ascii_lowercase().contains("starttls"), "{text}");
    assert!(server.messages().is_empty());
}

#[test]
fn implicit_tls_delivers() {
    let (certs, server) = tls_relay(Security::Tls);
    let mail = code_mail("grace@example.com");
    let config = with_ca(email(server.port(), SmtpSecurity::Tls), &certs.ca);
    send(&config, &mail).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let got = server
        .wait_for_message(ARRIVAL, is_the(&mail))
        .expect("received");
    assert_eq!(got.subject, mail.subject);
    assert_eq!(got.body, mail.body);
}

#[test]
fn authentication_over_starttls() {
    let certs = Certs::localhost();
    let dir = twofactor_tests::temp_dir("tft-smtp-auth-");
    let secret = format!("pw-{}", twofactor_tests::random_hex(8));
    let file = password_file(dir.path(), &secret, 0o600);
    let server = SmtpServer::with_auth(&certs, "mailer", &file);
    let base = EmailConfig {
        username: "mailer".into(),
        password_file: file.clone(),
        ..with_ca(email(server.port(), SmtpSecurity::Starttls), &certs.ca)
    };
    let mail = code_mail("heidi@example.com");
    send(&base, &mail).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(server.wait_for_message(ARRIVAL, is_the(&mail)).is_some());

    // A wrong password: refused, and the error shows neither password.
    let wrong_dir = twofactor_tests::temp_dir("tft-smtp-auth-");
    let wrong_secret = format!("wrong-{}", twofactor_tests::random_hex(8));
    let wrong = EmailConfig {
        password_file: password_file(wrong_dir.path(), &wrong_secret, 0o600),
        ..base.clone()
    };
    let text = relay_error(send(&wrong, &code_mail("ivan@example.com")));
    assert!(
        text.contains("535") && text.contains("authentication"),
        "{text}"
    );
    assert!(
        !text.contains(&secret) && !text.contains(&wrong_secret),
        "{text}"
    );
    // No credentials at all: the relay wants them.
    let anonymous = EmailConfig {
        username: String::new(),
        password_file: PathBuf::new(),
        ..base
    };
    let text = relay_error(send(&anonymous, &code_mail("judy@example.com")));
    assert!(text.contains("530"), "{text}");
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn a_relay_that_is_down_fails_fast() {
    let config = EmailConfig {
        timeout_seconds: 10,
        ..email(free_port(), SmtpSecurity::None)
    };
    let started = Instant::now();
    let text = relay_error(send(&config, &code_mail("kim@example.com")));
    assert!(text.to_ascii_lowercase().contains("refused"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_relay_that_never_answers_times_out() {
    let relay = SilentRelay::start();
    let config = EmailConfig {
        timeout_seconds: 1,
        ..email(relay.port(), SmtpSecurity::None)
    };
    let smtp = Smtp::new(&config).expect("mailer");
    let started = Instant::now();
    let result = smtp.send(&code_mail("liam@example.com"));
    let took = started.elapsed();
    assert_eq!(result, Err(MailError::Timeout));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_password_file_others_can_read_is_refused_by_name() {
    let dir = twofactor_tests::temp_dir("tft-smtp-pw-");
    let secret = format!("pw-{}", twofactor_tests::random_hex(8));
    let file = password_file(dir.path(), &secret, 0o644);
    let config = EmailConfig {
        relay: "smtp.example.com".into(),
        port: 587,
        security: SmtpSecurity::Starttls,
        username: "mailer".into(),
        password_file: file.clone(),
        ..EmailConfig::default()
    };
    match Smtp::new(&config) {
        Err(MailError::Config(text)) => {
            assert!(text.contains(&file.display().to_string()), "{text}");
            assert!(text.contains("0644"), "{text}");
            assert!(!text.contains(&secret), "{text}");
        }
        other => panic!("accepted a 0644 password file: {other:?}"),
    }
}

/// `--check-config` and the daemon's start-up read the password file: a
/// file others can read is named, the password is not shown, and the
/// daemon does not take its bus name.
#[test]
fn the_daemon_refuses_a_password_file_others_can_read() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let mut d = Daemon::prepare(&DaemonConfig::default());
    let secret = format!("pw-{}", twofactor_tests::random_hex(8));
    let dir = twofactor_tests::var_temp_dir("tft-smtp-pw-");
    let file = password_file(dir.path(), &secret, 0o644);
    let base = std::fs::read_to_string(d.config_path()).expect("config");
    d.write_config(&format!(
        "{base}\n[email]\nnotices = true\nusername = \"mailer\"\npassword_file = {:?}\n",
        file.display().to_string()
    ));
    let out = d.check_config();
    assert!(!out.success(), "{}", out.describe());
    let err = out.stderr();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("0644"),
        "{err}"
    );
    assert!(!err.contains(&secret), "{err}");

    d.start_timeout = Duration::from_secs(10);
    assert!(d.try_launch(&bus).is_err(), "the daemon started");
    assert!(!bus.has_owner(BUS_NAME));
    let log = d.log();
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(!log.contains(&secret), "{log}");

    // Fixed, both accept it.
    twofactor_tests::set_mode(&file, 0o600);
    let out = d.check_config();
    assert!(out.success(), "{}", out.describe());
    d.try_launch(&bus)
        .unwrap_or_else(|e| panic!("the daemon did not start with mail on: {e}"));
    assert!(bus.has_owner(BUS_NAME));
    d.stop(&bus);
}
