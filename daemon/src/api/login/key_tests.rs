//! The key step of a login, against the daemon alone (the key's signature
//! is checked end to end in tests/tests/security_keys.rs, with libfido2 and
//! a software key): who is asked for a key, and what an answer without a
//! signature leads to.

use super::key::TOUCH;
use super::tests::world;
use crate::api::fixture::{origin, root};
use crate::rules::security_keys::{self, Credential};
use twofactor_proto::key::{AssertionRequest, KeyAnswer, UserVerification};
use twofactor_proto::{Action, MessageKind, Step};

fn give_alice_a_key(w: &super::tests::World) {
    w.rt.block_on(w.handles.store.run(|c| {
        let cred = Credential {
            credential_id: vec![7; 32],
            alg: -7,
            public_key: vec![4; 64],
            aaguid: vec![0; 16],
            sign_count: 1,
            rp_id: String::new(),
        };
        security_keys::add(c, "alice", "k1", "blue", &cred, 0).map(|_| ())
    }))
    .unwrap();
}

fn local(user: &str) -> crate::origin::Origin {
    let mut o = origin(user);
    o.rhost.clear();
    o.tty = "/dev/tty1".into();
    o.security_keys = true;
    o
}

fn begin(w: &super::tests::World, o: crate::origin::Origin) -> (String, Step) {
    w.rt.block_on(w.logins.begin(&root(), o)).unwrap()
}

#[test]
fn a_local_login_of_a_user_with_a_key_asks_for_the_key_first() {
    let w = world();
    give_alice_a_key(&w);
    let (_, step) = begin(&w, local("alice"));
    let Action::UseKey(request) = &step.action else {
        panic!("no key step: {step:?}");
    };
    assert_eq!(step.messages, vec![(MessageKind::Info, TOUCH.to_string())]);
    let request = AssertionRequest::decode(request).unwrap();
    assert_eq!(request.allow, vec![vec![7u8; 32]]);
    assert!(request.rp_id.starts_with("twofactor:"));
    assert_eq!(request.user_verification, UserVerification::Preferred);
    // Each login gets its own challenge.
    let (_, again) = begin(&w, local("alice"));
    assert_ne!(again.action, step.action);
}

#[test]
fn no_key_step_remotely_from_a_module_without_keys_or_for_a_user_without_one() {
    let w = world();
    give_alice_a_key(&w);
    let mut remote = local("alice");
    remote.rhost = "192.0.2.1".into();
    let mut unable = local("alice");
    unable.security_keys = false;
    for o in [remote, unable] {
        let (_, step) = begin(&w, o);
        assert!(matches!(step.action, Action::AskHidden(_)), "{step:?}");
    }
    // bob has no method at all: no key step either.
    let (_, step) = begin(&w, local("bob"));
    assert!(!matches!(step.action, Action::UseKey(_)), "{step:?}");
}

#[test]
fn an_answer_without_a_signature_is_no_attempt_and_asks_the_other_method() {
    let w = world();
    give_alice_a_key(&w);
    for (answer, says) in [
        (KeyAnswer::NoDevice, ""),
        (KeyAnswer::NoTouch, "not touched in time"),
        (KeyAnswer::NotRegistered, "not registered"),
        (KeyAnswer::Failed("FIDO_ERR_RX".into()), "did not answer"),
    ] {
        let (id, _) = begin(&w, local("alice"));
        let step =
            w.rt.block_on(w.logins.answer(&root(), &id, answer.encode()))
                .unwrap();
        assert!(
            matches!(&step.action, Action::AskHidden(p) if p.contains("code")),
            "{step:?}"
        );
        if says.is_empty() {
            // No key plugged in: not offered, nothing said about it.
            assert!(
                !step.messages.iter().any(|(_, t)| t.contains("key")),
                "{step:?}"
            );
        } else {
            assert!(step.messages[0].1.contains(says), "{step:?}");
        }
        // The app's code is taken after it.
        let code = w.code(0);
        let done =
            w.rt.block_on(w.logins.answer(&root(), &id, code.into_bytes()))
                .unwrap();
        assert!(done.is_final(), "{done:?}");
        w.clock.advance(30);
    }
    assert_eq!(w.failures(), 0, "none of these is an attempt");
}

#[test]
fn a_malformed_answer_or_a_bad_signature_is_refused() {
    let w = world();
    give_alice_a_key(&w);
    let (id, _) = begin(&w, local("alice"));
    let step =
        w.rt.block_on(w.logins.answer(&root(), &id, b"\x61junk".to_vec()))
            .unwrap();
    assert_eq!(step.action, Action::Deny);
    // An assertion libfido2 cannot verify (garbage authdata): refused and
    // counted.
    let (id, _) = begin(&w, local("alice"));
    let forged = KeyAnswer::Assertion(twofactor_proto::key::Assertion {
        credential_id: vec![7; 32],
        authdata: vec![0x58, 0x25],
        signature: vec![0x30; 70],
    });
    let step =
        w.rt.block_on(w.logins.answer(&root(), &id, forged.encode()))
            .unwrap();
    assert_eq!(step.action, Action::Deny);
    assert_eq!(w.failures(), 1);
    assert!(w
        .audit_lines()
        .contains("reason=bad-security-key-signature"));
}
