//! Codes by email, end to end: the real daemon mails through a real SMTP
//! server on loopback (aiosmtpd); users enable email codes with the real
//! `twofactorctl`; logins go through the built module under real libpam
//! (pam-harness) and through a real sshd with the OpenSSH client; codes are
//! read from the messages the server received. Root only (real users).

use std::time::{Duration, Instant};

use twofactor_tests::email::{self, address_of, code_in, codes_sent, nth, nth_code, Kind};
use twofactor_tests::smtp::{Certs, Security, SilentRelay, SmtpServer};
use twofactor_tests::sshd::Sshd;
use twofactor_tests::{admin, need_root, totp, DaemonConfig, Env, TestUser, CODE_PROMPT};

/// The prompt of an email code sent to `user`'s test address.
fn email_prompt(user: &TestUser) -> String {
    let first: String = user.name.chars().take(1).collect();
    format!("Verification code sent to {first}***@mail.example.org: ")
}

/// Neither a code nor a whole address appears in the daemon's log.
fn assert_log_clean(env: &Env, codes: &[String], addresses: &[String]) {
    let log = env.daemon.log();
    for c in codes {
        assert!(!log.contains(c.as_str()), "code {c} in the log:\n{log}");
    }
    for a in addresses {
        assert!(!log.contains(a.as_str()), "address {a} in the log:\n{log}");
    }
    assert!(log.contains("mail-sent"), "no mail-sent line:\n{log}");
}

#[test]
fn enable_email_then_log_in_with_the_code_sent_once_and_only_once() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&email::config(&server));
    let user = TestUser::new();
    let addr = address_of(&user);
    let ctl = env.ctl();
    let enabled = ctl.enroll_email(&user, &addr, &server, "");
    // The first method: ten backup codes come with it.
    assert!(
        enabled
            .stdout()
            .lines()
            .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
            .count()
            == 10,
        "{}",
        enabled.describe()
    );
    let confirm = nth(&server, &addr, Kind::Code, 1);
    assert_eq!(confirm.from, "twofactor@example.com");
    assert_eq!(ctl.methods(&user), vec!["email".to_string()]);
    // The notice of the new method went to the new address.
    let notice = nth(&server, &addr, Kind::Notice, 1);
    assert!(
        notice.body.contains("method was added: codes by email"),
        "{}",
        notice.body
    );

    let pam = env.pam("");
    let mut live = pam.login(&user.name).spawn();
    assert_eq!(live.expect_prompt(), email_prompt(&user));
    let mail = nth(&server, &addr, Kind::Code, 2);
    assert!(
        mail.body.contains(&twofactor_tests::hostname()),
        "{}",
        mail.body
    );
    let code = code_in(&mail);
    // A wrong code first: refused.
    live.answer(totp::wrong_code(&code));
    let run = live.finish();
    assert_eq!(run.result, "PAM_AUTH_ERR", "{}", run.output.describe());
    // A new login sends a new code (voiding the last one).
    let mut live = pam.login(&user.name).spawn();
    live.expect_prompt();
    let fresh = nth_code(&server, &addr, 3);
    live.answer(&fresh);
    let run = live.finish();
    assert_eq!(
        run.result,
        "PAM_SUCCESS",
        "{}\n{}",
        run.output.describe(),
        env.daemon.log()
    );
    // Reused: refused (the next login's code is another one).
    let mut live = pam.login(&user.name).spawn();
    live.expect_prompt();
    let next = nth_code(&server, &addr, 4);
    if next != fresh {
        live.answer(&fresh);
        assert_eq!(live.finish().result, "PAM_AUTH_ERR");
    }
    let status = ctl.status_json(&user);
    assert_eq!(status["last_method"], "email");
    assert_log_clean(&env, &[code, fresh, next], &[addr]);
}

#[test]
fn switching_between_app_and_email_within_one_ssh_login() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&email::config(&server));
    let user = TestUser::new();
    let addr = address_of(&user);
    let ctl = env.ctl();
    let app = ctl.enroll_app(&user);
    let secret = app.compact_secret();
    // Email is added with the app's first backup code as the second factor.
    ctl.enroll_email(&user, &addr, &server, &app.backup_codes()[0]);
    let sent = codes_sent(&server, &addr);
    let sshd = Sshd::start(&format!("bus={}", env.bus.plain_address()));

    // The app is asked (first set up); Enter, then 1: email, code mailed.
    let ssh = sshd.ssh_scripted(&user);
    assert!(ssh.wait_prompt(1).contains("assword"));
    ssh.answer(1, user.password());
    assert!(
        ssh.wait_prompt(2).contains("authenticator app"),
        "{}",
        ssh.prompts()
    );
    ssh.answer(2, "");
    assert!(
        ssh.wait_prompt(3).contains("Choose a number"),
        "{}",
        ssh.prompts()
    );
    ssh.answer(3, "1");
    assert!(
        ssh.wait_prompt(4)
            .contains(&email_prompt(&user).trim_end().to_string()),
        "{}",
        ssh.prompts()
    );
    let code = nth_code(&server, &addr, sent + 1);
    ssh.answer(4, &code);
    let out = ssh.finish();
    assert!(
        out.success() && out.stdout().contains("LOGGED-IN"),
        "{}\nsshd:\n{}\ndaemon:\n{}",
        out.describe(),
        sshd.log(),
        env.daemon.log()
    );
    assert_eq!(ctl.failures(&user), 0, "switching is not a failure");

    // Now email was used last: it is asked first; switch back to the app.
    let ssh = sshd.ssh_scripted(&user);
    ssh.answer(1, user.password());
    assert!(ssh.wait_prompt(2).contains("sent to"), "{}", ssh.prompts());
    ssh.answer(2, "");
    ssh.wait_prompt(3);
    ssh.answer(3, "1");
    assert!(
        ssh.wait_prompt(4).contains("authenticator app"),
        "{}",
        ssh.prompts()
    );
    totp::ensure_step_margin(3);
    ssh.answer(4, &totp::code_now(&secret));
    let out = ssh.finish();
    assert!(
        out.success() && out.stdout().contains("LOGGED-IN"),
        "{}",
        out.describe()
    );

    // A preference wins over the last used.
    let pref = ctl.run(&user, &["prefer", "email"], b"");
    assert!(pref.success(), "{}", pref.describe());
    let pam = env.pam("");
    let mut live = pam.login(&user.name).spawn();
    assert_eq!(live.expect_prompt(), email_prompt(&user));
    live.answer(b"");
    let _ = live.finish();
    assert_log_clean(&env, &[code], &[addr]);
}

#[test]
fn a_silent_relay_does_not_hold_the_login_and_the_app_still_works() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let mut env = Env::start(&email::config(&server));
    let user = TestUser::new();
    let addr = address_of(&user);
    let ctl = env.ctl();
    let app = ctl.enroll_app(&user);
    let secret = app.compact_secret();
    // Email is added with the app's first backup code as the second factor.
    ctl.enroll_email(&user, &addr, &server, &app.backup_codes()[0]);
    assert!(ctl.run(&user, &["prefer", "email"], b"").success());
    // The relay goes silent (accepts, never answers); 2 s timeout.
    let silent = SilentRelay::start();
    let config = DaemonConfig {
        extra: email::section(silent.port(), "timeout_seconds = 2"),
        ..DaemonConfig::default()
    };
    env.daemon
        .write_config(&config.to_toml(&env.daemon.state_dir()));
    env.restart_daemon();

    let started = Instant::now();
    let pam = env.pam("");
    let mut live = pam.login(&user.name).spawn();
    // The prompt does not claim the send that failed.
    assert_eq!(live.expect_prompt(), twofactor_tests::email::NO_CODE_PROMPT);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "the login waited {waited:?}"
    );
    live.answer(b"");
    assert_eq!(live.expect_prompt(), twofactor_tests::email::CHOOSE_PROMPT);
    live.answer(b"1");
    assert_eq!(live.expect_prompt(), CODE_PROMPT);
    totp::ensure_step_margin(3);
    live.answer(totp::code_now(&secret));
    let run = live.finish();
    assert_eq!(run.result, "PAM_SUCCESS", "{}", run.output.describe());
    assert!(
        run.errors.iter().any(|e| e.contains("could not be sent")),
        "{:?}",
        run.errors
    );
    let log = env.daemon.log();
    assert!(log.contains("mail-failed user="), "{log}");
}

#[test]
fn codes_go_through_a_starttls_relay_with_a_test_certificate() {
    if !need_root!() {
        return;
    }
    let certs = Certs::localhost();
    let server = SmtpServer::tls(Security::StartTls, &certs);
    let config = DaemonConfig {
        extra: email::section(
            server.port(),
            &format!(
                "security = \"starttls\"\nca_file = {:?}",
                certs.ca.display().to_string()
            ),
        ),
        ..DaemonConfig::default()
    };
    let env = Env::start(&config);
    let user = TestUser::new();
    let addr = address_of(&user);
    env.ctl().enroll_email(&user, &addr, &server, "");
    let pam = env.pam("");
    let mut live = pam.login(&user.name).spawn();
    live.expect_prompt();
    let code = nth_code(&server, &addr, 2);
    live.answer(&code);
    assert_eq!(live.finish().result, "PAM_SUCCESS");
}

#[test]
fn notices_reach_the_user_for_new_backup_codes_removals_and_a_reset() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&email::config(&server));
    let user = TestUser::new();
    let addr = address_of(&user);
    let ctl = env.ctl();
    let app = ctl.enroll_app(&user);
    let secret = app.compact_secret();
    // The app came first: its notice goes to the local mailbox.
    let local = format!("{}@localhost", user.name);
    let added = nth(&server, &local, Kind::Notice, 1);
    assert!(added.body.contains("authenticator app"), "{}", added.body);
    ctl.enroll_email(&user, &addr, &server, &app.backup_codes()[0]);
    nth(&server, &addr, Kind::Notice, 1); // email added
                                          // Each change is confirmed with a current code of the app (this
                                          // step's, then the next's).
    totp::ensure_step_margin(6);
    let out = ctl.run(
        &user,
        &["backup-codes"],
        format!("{}\n{}\n", user.password(), totp::code_now(&secret)).as_bytes(),
    );
    assert!(out.success(), "{}", out.describe());
    let codes = nth(&server, &addr, Kind::Notice, 2);
    assert!(
        codes.body.contains("new set of backup codes"),
        "{}",
        codes.body
    );
    let next = totp::code_at_step_offset(&secret, 1);
    assert!(ctl.disable(&user, "app", user.password(), &next).success());
    let removed = nth(&server, &addr, Kind::Notice, 3);
    assert!(
        removed
            .body
            .contains("method was removed: authenticator app"),
        "{}",
        removed.body
    );
    // The reset removes email too; the notice goes to the address the user had.
    admin::reset(&env, &user.name);
    let reset = nth(&server, &addr, Kind::Notice, 4);
    assert!(reset.body.contains("An administrator"), "{}", reset.body);
    assert!(reset.subject.contains(&user.name));
    assert!(ctl.methods(&user).is_empty());
}

#[test]
fn fifty_concurrent_logins_with_one_email_code_accept_exactly_one() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&email::config(&server));
    let user = TestUser::new();
    let addr = address_of(&user);
    env.ctl().enroll_email(&user, &addr, &server, "");
    let pam = env.pam("");
    // Fifty logins at the email prompt; each sent a code and voided the
    // one before: the last code sent is the valid one.
    let mut logins = Vec::new();
    for _ in 0..50 {
        let mut live = pam.login(&user.name).spawn();
        assert_eq!(live.expect_prompt(), email_prompt(&user));
        logins.push(live);
    }
    let code = nth_code(&server, &addr, 51);
    for live in logins.iter_mut() {
        live.answer(&code);
    }
    let results: Vec<String> = logins.into_iter().map(|l| l.finish().result).collect();
    let ok = results.iter().filter(|r| *r == "PAM_SUCCESS").count();
    assert_eq!(ok, 1, "{results:?}");
}

/// Sends are counted per account and source (issue 18, item 2): from one
/// address, a stranger (who reached the prompt on a stack that asks the
/// code after a wrong password) spends that source's budget only. The
/// owner logging in from another address still gets a code, and the
/// stranger's codes do not void it, nor does the owner's void theirs.
#[test]
fn a_strangers_source_spends_its_own_email_budget_not_the_owners() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&DaemonConfig {
        extra: email::section(server.port(), "")
            .replace("max_sends_per_hour = 60", "max_sends_per_hour = 2"),
        ..DaemonConfig::default()
    });
    let user = TestUser::new();
    let addr = address_of(&user);
    env.ctl().enroll_email(&user, &addr, &server, "");
    let pam = env.pam("");
    let stranger = || pam.login(&user.name).rhost("203.0.113.66");
    let before = codes_sent(&server, &addr);
    // The stranger's two sends, then a refusal that claims no send.
    for n in 1..=2 {
        let mut live = stranger().spawn();
        assert_eq!(live.expect_prompt(), email_prompt(&user));
        nth(&server, &addr, Kind::Code, before + n);
        live.finish();
    }
    let mut live = stranger().spawn();
    let prompt = live.expect_prompt();
    let refused = live.finish();
    assert!(
        prompt.starts_with("Code from the last email to"),
        "{prompt:?}: {}",
        refused.describe()
    );
    assert!(
        refused
            .errors
            .iter()
            .any(|e| e.contains("Too many codes were sent")),
        "{}",
        refused.describe()
    );
    assert_eq!(codes_sent(&server, &addr), before + 2, "no third mail");
    // The stranger's last code, still valid for their source.
    let theirs = nth_code(&server, &addr, before + 2);

    // The owner, from elsewhere: a fresh code, accepted.
    let owner = || pam.login(&user.name).rhost("192.0.2.10");
    let mut live = owner().spawn();
    assert_eq!(live.expect_prompt(), email_prompt(&user));
    let mine = nth_code(&server, &addr, before + 3);
    live.answer(&mine);
    let run = live.finish();
    assert_eq!(run.result, "PAM_SUCCESS", "{}", run.describe());
    // A code is good only where it was sent: the stranger's does not work
    // from the owner's address...
    let mut live = owner().spawn();
    live.expect_prompt();
    let next = nth_code(&server, &addr, before + 4);
    if next != theirs {
        live.answer(&theirs);
        assert_eq!(live.finish().result, "PAM_AUTH_ERR");
    }
    // ...and the owner's sends did not void it at its own source.
    let mut live = stranger().spawn();
    live.expect_prompt();
    live.answer(&theirs);
    let run = live.finish();
    assert_eq!(run.result, "PAM_SUCCESS", "{}", run.describe());
}

/// The enrolment's choice between the app and email.
const ENROL_CHOICE: &str = "Choose 1 or 2: ";

/// An address typed at the login prompt (enrolment under the mandatory
/// policy, which may follow a wrong password on a badly written stack) is
/// mailed at most once per source and 10 minutes, whatever the user name.
#[test]
fn an_address_typed_at_the_prompt_is_mailed_once_per_source() {
    if !need_root!() {
        return;
    }
    let server = SmtpServer::plain();
    let env = Env::start(&email::config(&server));
    admin::set_policy(&env, true, &[]);
    let pam = env.pam("");
    let victim = "victim@mail.example.org";
    let typed = |name: &str| {
        let mut live = pam.login(name).rhost("203.0.113.66").spawn();
        assert_eq!(live.expect_prompt(), ENROL_CHOICE);
        live.answer(b"2");
        live.expect_prompt();
        live.answer(victim);
        let prompt = live.expect_prompt();
        (prompt, live.finish())
    };
    let (first, _) = typed(&TestUser::new().name);
    assert_eq!(first, "Code from the email: ");
    nth(&server, victim, Kind::Code, 1);
    let (second, run) = typed(&TestUser::new().name);
    assert_eq!(second, ENROL_CHOICE, "{}", run.describe());
    assert!(
        run.errors.iter().any(|e| e.contains("No code was sent")),
        "{}",
        run.describe()
    );
    assert_eq!(
        codes_sent(&server, victim),
        1,
        "one mail to the typed address"
    );
}
