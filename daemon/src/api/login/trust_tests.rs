//! Trusted devices at login, with the injected clock: trust is offered
//! after a right app code on a login that proves an SSH key, stored only
//! at Commit, skips the code on the next login with the same key, and ends
//! at 30 days, on removal, on a reset, on a new secret, on a password
//! change and on new backup codes. Other keys, other services, non-root
//! callers, backup codes and users without a method never get it; a
//! shadow look-up that fails neither uses trust nor gives it.

use super::*;
use crate::adapters::nss::testing::ShadowAnswer;
use crate::adapters::nss::Shadow;
use crate::api::fixture::{origin, root, World, T0};
use crate::clock::Clock;
use crate::config::Config;
use crate::rules::totp::{self, Secret};
use crate::rules::trusted_devices;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// `SSH_AUTH_INFO_0` as sshd writes it for an ed25519 key of `seed`.
fn auth_info(seed: u8) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(&[seed; 32]);
    format!("publickey ssh-ed25519 {}\n", STANDARD.encode(blob))
}

fn with_key(user: &str, seed: u8) -> Origin {
    Origin {
        ssh_auth_info: auth_info(seed),
        ..origin(user)
    }
}

fn world() -> (World, Secret) {
    let w = World::at(Config::default(), T0);
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
    let bytes = secret.bytes().to_vec();
    w.rt.block_on(w.handles.store.run(move |c| {
        bookkeeping::ensure(c, "alice", 0)?;
        totp::activate(c, "alice", &Secret::from_bytes(bytes), 0, 0)
    }))
    .unwrap();
    (w, secret)
}

/// A login with `o`: the code of the current step (if asked), then `yes`
/// or `no` to the question (if asked), then Commit (every login whose
/// second factor passed waits for it).
fn login(w: &World, secret: &Secret, o: Origin, trust: &str) -> Vec<Step> {
    w.rt.block_on(async {
        let mut steps = Vec::new();
        let (id, step) = w.logins.begin(&root(), o).await.unwrap();
        steps.push(step.clone());
        if step.action == Action::AcceptPending {
            // A trusted device: no code, and the account phase follows.
            steps.push(w.logins.commit(&root(), &id).await.unwrap());
            return steps;
        }
        if step.is_final() {
            return steps;
        }
        // A fresh step each time: codes are single use.
        w.clock.advance(30);
        let code = secret.code_at(w.clock.now(), 6);
        let mut step = w
            .logins
            .answer(&root(), &id, code.into_bytes())
            .await
            .unwrap();
        steps.push(step.clone());
        if matches!(step.action, Action::AskVisible(_)) {
            step = w
                .logins
                .answer(&root(), &id, trust.as_bytes().to_vec())
                .await
                .unwrap();
            steps.push(step.clone());
        }
        if step.action == Action::AcceptPending {
            steps.push(w.logins.commit(&root(), &id).await.unwrap());
        }
        steps
    })
}

/// A current code of alice's app, of a step no login used yet (a change
/// to the account is confirmed with one).
fn current(w: &World, secret: &Secret) -> Vec<u8> {
    w.clock.advance(30);
    secret.code_at(w.clock.now(), 6).into_bytes()
}

fn asked_code(steps: &[Step]) -> bool {
    matches!(&steps[0].action, Action::AskHidden(p) if p == APP_PROMPT)
}

fn count(w: &World) -> u32 {
    w.rt.block_on(
        w.handles
            .store
            .run(|c| trusted_devices::count(c, "alice", i64::MIN + 1)),
    )
    .unwrap()
}

#[test]
fn trust_is_offered_stored_at_commit_and_skips_the_code_next_time() {
    let (w, secret) = world();
    let steps = login(&w, &secret, with_key("alice", 1), "y");
    assert!(asked_code(&steps));
    assert_eq!(steps[1].action, Action::AskVisible(trust_question(30)));
    assert_eq!(steps[2].action, Action::AcceptPending);
    assert_eq!(steps[3].action, Action::Accept);
    assert_eq!(count(&w), 1);
    // The same key: no code; the login waits for the account phase.
    let steps = login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].action, Action::AcceptPending);
    assert_eq!(steps[1].action, Action::Accept);
    // Another key from the same address: the code is asked.
    let steps = login(&w, &secret, with_key("alice", 2), "n");
    assert!(asked_code(&steps));
    assert_eq!(steps.last().unwrap().action, Action::Accept);
    assert_eq!(count(&w), 1, "no means no");
    // The audit names the device by id, never the key or fingerprint.
    let lines = w.audit_lines();
    assert!(lines.contains("method=trusted-device device="), "{lines}");
    assert!(
        !lines.contains("SHA256:") && !lines.contains("AAAA"),
        "{lines}"
    );
}

#[test]
fn nothing_is_stored_without_commit() {
    let (w, secret) = world();
    w.rt.block_on(async {
        let (id, _) = w.logins.begin(&root(), with_key("alice", 1)).await.unwrap();
        w.clock.advance(30);
        let code = secret.code_at(w.clock.now(), 6);
        w.logins
            .answer(&root(), &id, code.into_bytes())
            .await
            .unwrap();
        let pending = w
            .logins
            .answer(&root(), &id, b"yes".to_vec())
            .await
            .unwrap();
        assert_eq!(pending.action, Action::AcceptPending);
        // The PAM stack failed after us: the handle ended, no Commit.
        w.logins.connection_closed(":1.1").await;
    });
    assert_eq!(count(&w), 0);
}

#[test]
fn trust_ends_after_thirty_days_however_often_it_is_used() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    for _ in 0..29 {
        w.clock.advance(86_400);
        assert_eq!(login(&w, &secret, with_key("alice", 1), "n").len(), 2);
    }
    // Trust ends 30 days after it was given, not after the last use.
    let list =
        w.rt.block_on(
            w.handles
                .store
                .run(|c| trusted_devices::list(c, "alice", 0)),
        )
        .unwrap();
    assert_eq!(list[0].expires, list[0].added + 30 * 86_400);
    assert!(list[0].last_used > list[0].added);
    w.clock.advance(list[0].expires - w.clock.now() - 1);
    assert_eq!(login(&w, &secret, with_key("alice", 1), "n").len(), 2);
    w.clock.advance(2);
    let steps = login(&w, &secret, with_key("alice", 1), "n");
    assert!(asked_code(&steps), "{steps:?}");
}

/// A lockout stops guessing codes; a trusted device is not a guess (sshd
/// verified its key, no code is asked), so it still logs in while its
/// source, or the whole account, waits (docs/configuration.md). The
/// failures stay counted: trust does not reset them.
#[test]
fn a_trusted_device_logs_in_while_its_source_is_locked_out() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(count(&w), 1);
    let limit = w.handles.config.limits.max_failures;
    let wrong = |w: &World| {
        w.rt.block_on(async {
            let (id, _) = w.logins.begin(&root(), origin("alice")).await.unwrap();
            w.logins
                .answer(&root(), &id, b"000000".to_vec())
                .await
                .unwrap()
        })
    };
    for _ in 0..limit {
        wrong(&w);
    }
    let locked = wrong(&w);
    assert!(
        locked
            .messages
            .iter()
            .any(|(_, m)| m.contains("Too many failed attempts")),
        "{locked:?}"
    );
    let steps = login(&w, &secret, with_key("alice", 1), "n");
    assert_eq!(steps.len(), 2, "no code asked: {steps:?}");
    assert_eq!(steps[1].action, Action::Accept);
    let status = w.status_of("alice");
    assert!(status.failures >= limit, "{status:?}");
}

#[test]
fn a_reset_a_new_secret_or_a_removal_ends_trust() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    // Removed by the user.
    let alice = Caller {
        uid: 1000,
        connection: ":1.9".into(),
        invoker: None,
        on_host: None,
    };
    let list = w.rt.block_on(w.accounts.list_devices(&alice)).unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].label.starts_with("ssh-ed25519 SHA256:"));
    assert_eq!(list[0].expires - list[0].added, 30 * 86_400);
    w.rt.block_on(w.accounts.remove_devices(
        &alice,
        &list[0].id,
        b"pw-a".to_vec(),
        current(&w, &secret),
    ))
    .unwrap();
    assert!(asked_code(&login(&w, &secret, with_key("alice", 1), "y")));
    assert_eq!(count(&w), 1);
    // A new app secret.
    let e =
        w.rt.block_on(
            w.accounts
                .enroll_app(&alice, b"pw-a".to_vec(), current(&w, &secret)),
        )
        .unwrap();
    let new = Secret::from_bytes(
        totp_rs::Secret::Encoded(e.secret_base32.clone())
            .to_bytes()
            .unwrap(),
    );
    w.rt.block_on(
        w.accounts
            .confirm_app(&alice, &e.enrolment, &new.code_at(w.clock.now(), 6)),
    )
    .unwrap();
    assert_eq!(count(&w), 0);
    login(&w, &new, with_key("alice", 1), "y");
    assert_eq!(count(&w), 1);
    // An administrator's reset.
    w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
        .unwrap();
    assert_eq!(count(&w), 0);
}

#[test]
fn a_trusted_device_is_no_pass_for_a_non_root_caller() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(count(&w), 1);
    // The login's facts are read before the caller is known (while the
    // bus is asked): the trust they find must not reach a screen locker
    // at alice's own uid, which cannot present a device.
    let alice = Caller {
        uid: 1000,
        connection: ":1.9".into(),
        invoker: None,
        on_host: None,
    };
    let (id, step) =
        w.rt.block_on(w.logins.begin(&alice, with_key("alice", 1)))
            .unwrap();
    assert!(!id.is_empty(), "a session: the code is asked");
    assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
    // root (sshd) with the same key still passes on the trust.
    let steps = login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].action, Action::AcceptPending);
}

#[test]
fn never_for_other_services_non_root_callers_backup_codes_or_no_method() {
    let (w, secret) = world();
    // su presents no device, whatever its environment says.
    let su = Origin {
        service: "su".into(),
        ..with_key("alice", 1)
    };
    let steps = login(&w, &secret, su, "y");
    assert_eq!(steps.last().unwrap().action, Action::Accept);
    assert_eq!(steps.len(), 3, "no question: {steps:?}");
    // A screen locker (the user's own uid) cannot present one.
    let alice = Caller {
        uid: 1000,
        connection: ":1.9".into(),
        invoker: None,
        on_host: None,
    };
    let step = w.rt.block_on(async {
        let (id, _) = w.logins.begin(&alice, with_key("alice", 1)).await.unwrap();
        w.clock.advance(30);
        let code = secret.code_at(w.clock.now(), 6);
        w.logins
            .answer(&alice, &id, code.into_bytes())
            .await
            .unwrap()
    });
    assert_eq!(step.action, Action::AcceptPending);
    // A user with no method is not offered trust (and passes without it).
    let steps = login(&w, &secret, with_key("bob", 1), "y");
    assert_eq!(steps.len(), 1);
    assert_eq!(count(&w), 0);
    // A backup code is not a method's code: no question.
    let codes = crate::rules::backup_codes::generate_set(&crate::random::OsRandom).unwrap();
    let hashed: Vec<(String, String)> = codes
        .iter()
        .map(|c| {
            let h = w
                .handles
                .hashing
                .hasher()
                .hash(c.secret(), &crate::random::OsRandom)
                .unwrap();
            (c.selector().to_string(), h)
        })
        .collect();
    w.rt.block_on(
        w.handles
            .store
            .run(move |c| crate::rules::backup_codes::replace_set(c, "alice", &hashed, 0)),
    )
    .unwrap();
    let step = w.rt.block_on(async {
        let (id, _) = w.logins.begin(&root(), with_key("alice", 1)).await.unwrap();
        w.logins
            .answer(&root(), &id, codes[0].display().into_bytes())
            .await
            .unwrap()
    });
    assert_eq!(step.action, Action::AcceptPending);
    assert_eq!(count(&w), 0);
}

#[test]
fn trust_can_be_turned_off_and_malformed_key_lines_are_no_device() {
    let mut config = Config::default();
    config.devices.enabled = false;
    let w = World::at(config, T0);
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
    let bytes = secret.bytes().to_vec();
    w.rt.block_on(w.handles.store.run(move |c| {
        bookkeeping::ensure(c, "alice", 0)?;
        totp::activate(c, "alice", &Secret::from_bytes(bytes), 0, 0)
    }))
    .unwrap();
    assert_eq!(login(&w, &secret, with_key("alice", 1), "y").len(), 3);
    for bad in [
        "publickey ssh-ed25519 !!!notbase64",
        "publickey ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
        "password",
        "",
    ] {
        assert!(trusted_devices::ssh_key(bad).is_none(), "{bad}");
    }
    let (kind, blob) = trusted_devices::ssh_key(&auth_info(3)).unwrap();
    assert_eq!(kind, "ssh-ed25519");
    assert_eq!(blob.len(), 4 + 11 + 4 + 32);
}

#[test]
fn the_user_is_told_and_an_administrator_lists_and_removes() {
    let mut config = Config::default();
    config.email.notices = true;
    let w = World::at(config, T0);
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
    let bytes = secret.bytes().to_vec();
    w.rt.block_on(w.handles.store.run(move |c| {
        bookkeeping::ensure(c, "alice", 0)?;
        totp::activate(c, "alice", &Secret::from_bytes(bytes), 0, 0)
    }))
    .unwrap();
    login(&w, &secret, with_key("alice", 1), "y");
    let sent = w.rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while w.mail.sent.lock().map(|s| s.is_empty()).unwrap_or(true)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        w.mail.take()
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "alice@localhost");
    assert!(
        sent[0].body.contains("A device was trusted"),
        "{}",
        sent[0].body
    );
    // An administrator sees it and removes it; bob (not an admin) may not.
    let list =
        w.rt.block_on(w.admin.list_devices(&root(), "alice"))
            .unwrap();
    assert_eq!(list.len(), 1);
    let bob = Caller {
        uid: 1001,
        connection: ":1.8".into(),
        invoker: None,
        on_host: None,
    };
    assert!(matches!(
        w.rt.block_on(w.admin.list_devices(&bob, "alice")),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        w.rt.block_on(w.admin.remove_devices(&root(), "alice", "zz", Vec::new())),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        w.rt.block_on(w.admin.remove_devices(&root(), "alice", "all", Vec::new()))
            .unwrap(),
        1
    );
    assert_eq!(count(&w), 0);
    assert!(w
        .audit_lines()
        .contains("devices-removed user=alice by=root device=all count=1"));
}

/// A shadow entry as chpasswd leaves it.
fn shadow(hash: &str, last_change: i64) -> ShadowAnswer {
    ShadowAnswer::Entry(Shadow {
        hash: zeroize::Zeroizing::new(hash.as_bytes().to_vec()),
        last_change,
    })
}

/// The login passed on a trusted device: no code, then the account phase.
fn on_trust(steps: &[Step]) -> bool {
    steps.len() == 2
        && steps[0].action == Action::AcceptPending
        && steps[1].action == Action::Accept
}

fn alice() -> Caller {
    Caller {
        uid: 1000,
        connection: ":1.9".into(),
        invoker: None,
        on_host: None,
    }
}

#[test]
fn a_password_change_ends_trust_and_the_code_is_asked() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    let id = w.rt.block_on(w.accounts.list_devices(&alice())).unwrap()[0]
        .id
        .clone();
    assert!(on_trust(&login(&w, &secret, with_key("alice", 1), "n")));
    // chpasswd: another hash, changed today.
    w.users
        .set_shadow("alice", shadow("$y$j9T$new$alice", 20_001));
    let steps = login(&w, &secret, with_key("alice", 1), "n");
    assert!(asked_code(&steps), "{steps:?}");
    assert_eq!(steps.last().unwrap().action, Action::Accept);
    assert_eq!(count(&w), 0, "the trust ended");
    let lines = w.audit_lines();
    assert!(
        lines.contains(&format!(
            "device-ended user=alice service=sshd rhost=192.0.2.1 tty=ssh device={id} \
             why=password-changed"
        )),
        "{lines}"
    );
    assert!(!lines.contains("$y$"), "{lines}");
    // Trusted again under the new password, it holds.
    login(&w, &secret, with_key("alice", 1), "y");
    assert!(on_trust(&login(&w, &secret, with_key("alice", 1), "n")));
    // The date of the last change alone (`chage -d`, `passwd -e`) ends it.
    w.users.set_shadow("alice", shadow("$y$j9T$new$alice", 0));
    assert!(asked_code(&login(&w, &secret, with_key("alice", 1), "n")));
    assert_eq!(count(&w), 0);
    // So does locking the password (`passwd -l`: `!` before the hash).
    login(&w, &secret, with_key("alice", 1), "y");
    w.users.set_shadow("alice", shadow("!$y$j9T$new$alice", 0));
    assert!(asked_code(&login(&w, &secret, with_key("alice", 1), "n")));
    assert_eq!(count(&w), 0);
}

#[test]
fn a_shadow_look_up_that_fails_uses_no_trust_and_gives_none() {
    let (w, secret) = world();
    login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(count(&w), 1);
    w.users.set_shadow("alice", ShadowAnswer::Fails);
    // Not taken for "unchanged": the code is asked; the trust stays.
    let steps = login(&w, &secret, with_key("alice", 1), "n");
    assert!(asked_code(&steps), "{steps:?}");
    assert_eq!(count(&w), 1);
    assert!(w.audit_lines().contains("error context=login-device"));
    // Nor is a new device trusted without an answer.
    let steps = login(&w, &secret, with_key("alice", 2), "y");
    assert_eq!(steps.last().unwrap().action, Action::Accept);
    assert!(
        steps
            .last()
            .unwrap()
            .messages
            .iter()
            .any(|(_, m)| m.contains("could not be trusted")),
        "{steps:?}"
    );
    assert_eq!(count(&w), 1);
    // The answer back, unchanged: the trust holds again.
    w.users.set_shadow("alice", shadow("$y$fake$alice", 20_000));
    assert!(on_trust(&login(&w, &secret, with_key("alice", 1), "n")));
}

#[test]
fn an_account_without_a_shadow_entry_is_trusted_until_one_appears() {
    let (w, secret) = world();
    // A password kept elsewhere (LDAP, SSSD): getspnam has no entry.
    w.users.set_shadow("alice", ShadowAnswer::NoEntry);
    login(&w, &secret, with_key("alice", 1), "y");
    assert_eq!(count(&w), 1);
    assert!(on_trust(&login(&w, &secret, with_key("alice", 1), "n")));
    w.users.set_shadow("alice", shadow("$y$j9T$local", 20_000));
    assert!(asked_code(&login(&w, &secret, with_key("alice", 1), "n")));
    assert_eq!(count(&w), 0);
}

#[test]
fn new_backup_codes_end_every_trust_in_the_same_change() {
    let (w, secret) = world();
    // No device: no line about devices.
    w.rt.block_on(
        w.accounts
            .new_backup_codes(&alice(), b"pw-a".to_vec(), current(&w, &secret)),
    )
    .unwrap();
    assert!(!w.audit_lines().contains("devices-removed"));
    login(&w, &secret, with_key("alice", 1), "y");
    login(&w, &secret, with_key("alice", 2), "y");
    assert_eq!(count(&w), 2);
    let codes = w
        .rt
        .block_on(
            w.accounts
                .new_backup_codes(&alice(), b"pw-a".to_vec(), current(&w, &secret)),
        )
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(count(&w), 0);
    let lines = w.audit_lines();
    assert!(
        lines.contains(
            "devices-removed user=alice by=alice device=all count=2 why=backup-codes-new"
        ),
        "{lines}"
    );
    assert!(asked_code(&login(&w, &secret, with_key("alice", 1), "n")));
    // A wrong password changes nothing: the trust given since stays.
    login(&w, &secret, with_key("alice", 1), "y");
    assert!(w
        .rt
        .block_on(
            w.accounts
                .new_backup_codes(&alice(), b"bad".to_vec(), current(&w, &secret))
        )
        .is_err());
    assert_eq!(count(&w), 1);
}
