//! Email codes at login: asked by name, sent when asked, switched to and
//! from within one login, single use under concurrency, expiring, limited,
//! and failing gently when the relay does.

use super::*;
use crate::api::fixture::{origin, root, World, T0};
use crate::clock::Clock;
use crate::config::Config;
use crate::message::Mail;
use crate::rules::email_codes;
use crate::rules::totp::{self, Secret};
use twofactor_proto::types::method;

const ADDRESS: &str = "alice.private@example.org";

/// alice has the app and email (at ADDRESS); email codes are on; 3
/// failures lock for 30 s; 4 sends an hour.
fn world() -> (World, Secret) {
    let mut config = Config::default();
    config.limits.max_failures = 3;
    config.limits.lockout_seconds = 30;
    config.email.codes = true;
    config.email.max_sends_per_hour = 4;
    let w = World::at(config, T0);
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
    let bytes = secret.bytes().to_vec();
    w.rt.block_on(w.handles.store.run(move |c| {
        bookkeeping::ensure(c, "alice", 0)?;
        totp::activate(c, "alice", &Secret::from_bytes(bytes), 0, 0)?;
        email_codes::activate(c, "alice", ADDRESS, 0)
    }))
    .unwrap();
    (w, secret)
}

fn prefer(w: &World, m: &str) {
    let m = m.to_string();
    w.rt.block_on(
        w.handles
            .store
            .run(move |c| bookkeeping::set_preferred(c, "alice", &m)),
    )
    .unwrap();
}

/// The code in the one mail sent since the last call.
fn mailed_code(w: &World) -> String {
    let mut sent: Vec<Mail> = w.mail.take();
    assert_eq!(sent.len(), 1, "one mail");
    let mail = sent.remove(0);
    assert_eq!(mail.to, ADDRESS);
    mail.body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the body")
        .to_string()
}

fn begin(w: &World, caller: &Caller) -> (String, Step) {
    w.rt.block_on(w.logins.begin(caller, origin("alice")))
        .unwrap()
}

fn answer(w: &World, caller: &Caller, id: &str, a: &str) -> Step {
    w.rt.block_on(w.logins.answer(caller, id, a.as_bytes().to_vec()))
        .unwrap()
}

fn failures(w: &World) -> u32 {
    w.status_of("alice").failures
}

const EMAIL_PROMPT: &str = "Verification code sent to a***@example.org: ";

#[test]
fn preferred_email_is_asked_first_and_its_code_is_sent_then_accepted_once() {
    let (w, _) = world();
    prefer(&w, "email");
    let (id, step) = begin(&w, &root());
    assert_eq!(step.action, Action::AskHidden(EMAIL_PROMPT.into()));
    let code = mailed_code(&w);
    assert_eq!(
        answer(&w, &root(), &id, &code).action,
        Action::AcceptPending
    );
    // Single use: the same code again is refused (a new login sends a new
    // code, and the old one is not it).
    let (id, _) = begin(&w, &root());
    let fresh = mailed_code(&w);
    if fresh != code {
        assert_eq!(answer(&w, &root(), &id, &code).action, Action::Deny);
    }
    let status = w.status_of("alice");
    assert_eq!(status.last_method, method::EMAIL);
    // Nothing of the code or the whole address in the audit.
    let lines = w.audit_lines();
    assert!(!lines.contains(&code) && !lines.contains(ADDRESS));
    assert!(lines.contains("mail-sent user=alice purpose=login"));
}

#[test]
fn last_used_is_asked_first_without_a_preference() {
    let (w, secret) = world();
    let (id, step) = begin(&w, &root());
    assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
    assert!(w.mail.take().is_empty(), "no mail while the app is asked");
    // Switch to email and log in with it: email is now the last used.
    assert!(matches!(
        answer(&w, &root(), &id, "").action,
        Action::AskVisible(_)
    ));
    answer(&w, &root(), &id, "1");
    let code = mailed_code(&w);
    assert_eq!(
        answer(&w, &root(), &id, &code).action,
        Action::AcceptPending
    );
    let (_, step) = begin(&w, &root());
    assert_eq!(step.action, Action::AskHidden(EMAIL_PROMPT.into()));
    w.mail.take();
    // A preference wins over the last used.
    prefer(&w, "app");
    let (id, step) = begin(&w, &root());
    assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
    let now = w.clock.now();
    assert_eq!(
        answer(&w, &root(), &id, &secret.code_at(now, 6)).action,
        Action::AcceptPending
    );
}

#[test]
fn switching_lists_the_other_methods_costs_no_try_and_goes_both_ways() {
    let (w, secret) = world();
    let (id, step) = begin(&w, &root());
    assert!(step.messages.iter().any(|(_, m)| m.contains("Press Enter")));
    // The list: email, numbered; switching is not a failure.
    let menu = answer(&w, &root(), &id, "");
    assert_eq!(menu.action, Action::AskVisible(CHOOSE_PROMPT.into()));
    let lines: Vec<&str> = menu.messages.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(lines, vec!["1. Code by email to a***@example.org"]);
    let asked = answer(&w, &root(), &id, "1");
    assert_eq!(asked.action, Action::AskHidden(EMAIL_PROMPT.into()));
    let first = mailed_code(&w);
    // At the email prompt: back to the app, or a new code.
    let menu = answer(&w, &root(), &id, "");
    let lines: Vec<&str> = menu.messages.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "1. Code from your authenticator app",
            "2. Send a new code to a***@example.org"
        ]
    );
    answer(&w, &root(), &id, "2");
    let second = mailed_code(&w);
    let menu = answer(&w, &root(), &id, "");
    assert!(matches!(menu.action, Action::AskVisible(_)));
    // Enter at the list goes back without sending, and the prompt says
    // no new code was sent.
    assert_eq!(
        answer(&w, &root(), &id, "").action,
        Action::AskHidden("Code from the last email to a***@example.org: ".into())
    );
    assert!(w.mail.take().is_empty());
    answer(&w, &root(), &id, "");
    assert_eq!(
        answer(&w, &root(), &id, "1").action,
        Action::AskHidden(APP_PROMPT.into())
    );
    assert_eq!(failures(&w), 0, "switching is not a failure");
    // At the app prompt six digits are an app code, never the email code.
    if first != second && second != secret.code_at(w.clock.now(), 6) {
        let step = answer(&w, &root(), &id, &second);
        assert_eq!(step.action, Action::Deny);
        assert_eq!(failures(&w), 1);
    }
    // A choice that is not on the list ends the login, uncounted.
    let before = failures(&w);
    let (id, _) = begin(&w, &root());
    answer(&w, &root(), &id, "");
    assert_eq!(answer(&w, &root(), &id, "7").action, Action::Deny);
    assert_eq!(failures(&w), before);
}

#[test]
fn a_new_code_voids_the_last_and_codes_expire_after_ten_minutes() {
    let (w, _) = world();
    // A login left open longer than a code lives (the default session
    // timeout, 120 s, ends the login first).
    let mut config = w.handles.config.as_ref().clone();
    config.login.session_timeout_seconds = 3600;
    let w = World::at(config, T0);
    w.rt.block_on(w.handles.store.run(|c| {
        bookkeeping::ensure(c, "alice", 0)?;
        email_codes::activate(c, "alice", ADDRESS, 0)
    }))
    .unwrap();
    prefer(&w, "email");
    let (old_id, _) = begin(&w, &root());
    let old = mailed_code(&w);
    let (id, _) = begin(&w, &root());
    let new = mailed_code(&w);
    if old != new {
        assert_eq!(answer(&w, &root(), &old_id, &old).action, Action::Deny);
    }
    w.clock.advance(10 * 60 + 1);
    let step = answer(&w, &root(), &id, &new);
    assert_eq!(step.action, Action::Deny);
    assert!(step.messages.iter().any(|(_, m)| m.contains("expired")));
    // Within the time it works.
    let (id, _) = begin(&w, &root());
    let code = mailed_code(&w);
    w.clock.advance(10 * 60 - 1);
    assert_eq!(
        answer(&w, &root(), &id, &code).action,
        Action::AcceptPending
    );
}

#[test]
fn sends_are_limited_and_the_last_code_still_works() {
    let (w, _) = world();
    prefer(&w, "email");
    let mut last = String::new();
    for _ in 0..4 {
        begin(&w, &root());
        last = mailed_code(&w);
    }
    let (id, step) = begin(&w, &root());
    assert!(
        w.mail.take().is_empty(),
        "the fifth send in an hour is refused"
    );
    assert!(step
        .messages
        .iter()
        .any(|(_, m)| m.contains("Too many codes were sent")));
    // The prompt does not claim a send that did not happen.
    assert_eq!(
        step.action,
        Action::AskHidden("Code from the last email to a***@example.org: ".into())
    );
    // Another source (the owner elsewhere) has a budget of its own, and
    // its code does not void this source's.
    let elsewhere = Origin {
        rhost: "198.51.100.7".into(),
        ..origin("alice")
    };
    w.rt.block_on(w.logins.begin(&root(), elsewhere)).unwrap();
    mailed_code(&w);
    assert_eq!(
        answer(&w, &root(), &id, &last).action,
        Action::AcceptPending
    );
    // With no code waiting here, the prompt says none was sent.
    let (_, step) = begin(&w, &root());
    assert_eq!(
        step.action,
        Action::AskHidden("Email code (none was sent; press Enter for another method): ".into())
    );
    // An hour later codes go out again.
    w.clock.advance(3600);
    begin(&w, &root());
    mailed_code(&w);
}

#[test]
fn a_relay_that_fails_says_so_and_the_app_still_works() {
    let (w, secret) = world();
    prefer(&w, "email");
    w.mail
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (id, step) = begin(&w, &root());
    assert!(step
        .messages
        .iter()
        .any(|(_, m)| m.contains("could not be sent")));
    assert!(
        matches!(&step.action, Action::AskHidden(p) if !p.contains("sent to")),
        "the prompt claims a send: {step:?}"
    );
    answer(&w, &root(), &id, "");
    let step = answer(&w, &root(), &id, "1");
    assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
    let now = w.clock.now();
    assert_eq!(
        answer(&w, &root(), &id, &secret.code_at(now, 6)).action,
        Action::AcceptPending
    );
    let lines = w.audit_lines();
    assert!(lines.contains("mail-failed user=alice purpose=login"));
}

#[test]
fn fifty_concurrent_logins_with_one_email_code_accept_once() {
    let (mut w, _) = world();
    let mut config = w.handles.config.as_ref().clone();
    config.email.max_sends_per_hour = 100;
    w = World::at(config, T0);
    w.rt.block_on(w.handles.store.run(|c| {
        bookkeeping::ensure(c, "alice", 0)?;
        email_codes::activate(c, "alice", ADDRESS, 0)
    }))
    .unwrap();
    let logins = Arc::new(Logins::new(&w.handles));
    // Fifty logins at the email prompt (each sent a code, voiding the one
    // before); the last code sent is the valid one; all fifty answer it at
    // once.
    let mut sessions = Vec::new();
    for i in 0..50 {
        let c = Caller {
            uid: 0,
            connection: format!(":5.{i}"),
            invoker: None,
            on_host: None,
        };
        let (id, step) = w.rt.block_on(logins.begin(&c, origin("alice"))).unwrap();
        assert_eq!(step.action, Action::AskHidden(EMAIL_PROMPT.into()));
        sessions.push((c, id));
    }
    let code = w
        .mail
        .take()
        .pop()
        .map(|m| {
            m.body
                .split(|c: char| !c.is_ascii_digit())
                .find(|d| d.len() == 6)
                .unwrap_or_default()
                .to_string()
        })
        .unwrap();
    let accepted = w.rt.block_on(async {
        let mut tasks = Vec::new();
        for (c, id) in sessions {
            let l = logins.clone();
            let code = code.clone();
            tasks.push(tokio::spawn(async move {
                l.answer(&c, &id, code.into_bytes()).await.unwrap()
            }));
        }
        let mut n = 0;
        for t in tasks {
            if t.await.unwrap().action == Action::AcceptPending {
                n += 1;
            }
        }
        n
    });
    assert_eq!(accepted, 1);
}

#[test]
fn a_user_whose_only_method_is_turned_off_gets_no_free_pass() {
    let (w, _) = world();
    let mut config = w.handles.config.as_ref().clone();
    config.email.codes = false;
    let off = World::at(config, T0);
    off.rt
        .block_on(off.handles.store.run(|c| {
            bookkeeping::ensure(c, "alice", 0)?;
            email_codes::activate(c, "alice", ADDRESS, 0)
        }))
        .unwrap();
    let (id, step) = off
        .rt
        .block_on(off.logins.begin(&root(), origin("alice")))
        .unwrap();
    assert_eq!(step.action, Action::AskHidden("Backup code: ".into()));
    assert!(step.messages.iter().any(|(_, m)| m.contains("turned off")));
    assert!(off.mail.take().is_empty());
    let step = off
        .rt
        .block_on(off.logins.answer(&root(), &id, b"123456".to_vec()))
        .unwrap();
    assert_eq!(step.action, Action::Deny);
}

/// [`world`] under the mandatory policy for everyone.
fn mandatory_world() -> World {
    let (w, _) = world();
    w.rt.block_on(w.handles.store.run(|c| {
        crate::rules::policy::set(
            c,
            &twofactor_proto::types::Policy {
                mandatory: true,
                ..Default::default()
            },
        )
    }))
    .unwrap();
    w
}

#[test]
fn enrolment_at_the_prompt_offers_email_and_stores_it_only_at_commit() {
    let w = mandatory_world();
    let (id, step) =
        w.rt.block_on(w.logins.begin(&root(), origin("bob")))
            .unwrap();
    assert_eq!(step.action, Action::AskVisible(enrol::CHOOSE_PROMPT.into()));
    assert!(step
        .messages
        .iter()
        .any(|(_, m)| m.contains("2. Codes sent to you by email")));
    let ask = |a: &str| {
        w.rt.block_on(w.logins.answer(&root(), &id, a.as_bytes().to_vec()))
            .unwrap()
    };
    assert_eq!(
        ask("2").action,
        Action::AskVisible(enrol::ADDRESS_PROMPT.into())
    );
    let bad = ask("bob at example");
    assert_eq!(bad.action, Action::AskVisible(enrol::ADDRESS_PROMPT.into()));
    assert!(w.mail.take().is_empty());
    assert_eq!(
        ask("bob@example.net").action,
        Action::AskVisible(enrol::EMAIL_CODE_PROMPT.into())
    );
    let sent = w.mail.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "bob@example.net");
    let code = sent[0]
        .body
        .split(|c: char| !c.is_ascii_digit())
        .find(|d| d.len() == 6)
        .unwrap()
        .to_string();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        ask(wrong).action,
        Action::AskVisible(enrol::EMAIL_CODE_PROMPT.into())
    );
    let codes = ask(&code);
    assert_eq!(
        codes.action,
        Action::AskVisible(enrol::CONFIRM_PROMPT.into())
    );
    assert_eq!(ask("yes").action, Action::AcceptPending);
    let has = |w: &World| {
        w.rt.block_on(w.handles.store.run(|c| email_codes::address(c, "bob")))
            .unwrap()
    };
    assert_eq!(has(&w), None, "nothing stored before the account phase");
    let done = w.rt.block_on(w.logins.commit(&root(), &id)).unwrap();
    assert_eq!(done.action, Action::Accept);
    assert_eq!(has(&w).as_deref(), Some("bob@example.net"));
    let status = w.status_of("bob");
    assert_eq!(status.methods, vec!["email".to_string()]);
    assert_eq!(status.backup_codes_left, 10);
    assert!(w
        .audit_lines()
        .contains("method=email via=login why=policy"));
}

#[test]
fn enrolment_at_the_prompt_can_still_choose_the_app() {
    let w = mandatory_world();
    let (id, _) =
        w.rt.block_on(w.logins.begin(&root(), origin("bob")))
            .unwrap();
    let step =
        w.rt.block_on(w.logins.answer(&root(), &id, b"1".to_vec()))
            .unwrap();
    assert_eq!(step.action, Action::AskVisible(enrol::CODE_PROMPT.into()));
    assert!(step.messages.iter().any(|(_, m)| m.contains("Secret: ")));
}
