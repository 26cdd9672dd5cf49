//! Property tests of what the login reads from untrusted callers: the
//! answer at the code prompt (any bytes) and the PAM items of `Begin` (any
//! strings). Nothing panics; an answer is taken as a code only when it has
//! one of the documented shapes; a name the system does not know never
//! passes.

use super::tests::{root, world};
use super::*;
use crate::rules::backup_codes;
use crate::services::factors::{classify, Attempt};
use proptest::prelude::*;
use twofactor_proto::names::MAX_ANSWER_BYTES;

/// The documented shapes, written independently of `classify`: after
/// removing spaces, 6 ASCII digits; after removing spaces and `-` (the
/// separators of backup and recovery codes), 8 ASCII digits, or 12 or 16
/// letters of the code alphabet (any case).
fn shape(answer: &[u8]) -> Option<&'static str> {
    if answer.len() > MAX_ANSWER_BYTES {
        return None;
    }
    let text = std::str::from_utf8(answer).ok()?;
    let digits: String = text.chars().filter(|c| *c != ' ').collect();
    if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
        return Some("code");
    }
    let scratch: String = text.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if scratch.len() == 8 && scratch.chars().all(|c| c.is_ascii_digit()) {
        return Some("backup");
    }
    let letters: String = text
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let alphabet = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii() && backup_codes::ALPHABET.contains(&(c as u8)))
    };
    match letters.chars().count() {
        12 if alphabet(&letters) => Some("backup"),
        16 if alphabet(&letters) => Some("recovery"),
        _ => None,
    }
}

/// The kind of an attempt read at the prompt of `asked`: six digits are a
/// code of the method asked, never of another.
fn kind(a: &Attempt, asked: Method) -> &'static str {
    match a {
        Attempt::Code(m, _) if *m == asked => "code",
        Attempt::Code(..) => "another method's code",
        Attempt::Backup(_) => "backup",
        Attempt::Recovery(_) => "recovery",
        Attempt::Key(_) => "key",
    }
}

fn near_answers() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::char::range('0', '9'),
        4 => proptest::sample::select(
            backup_codes::ALPHABET.iter().map(|b| char::from(*b)).collect::<Vec<_>>()
        ),
        1 => proptest::char::range('A', 'Z'),
        1 => prop_oneof![Just(' '), Just('-'), Just('٣'), Just('ｂ'), Just('0'), Just('\u{0}')],
    ];
    proptest::collection::vec(piece, 0..24)
        .prop_map(|v| v.into_iter().collect::<String>().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn an_answer_is_a_code_only_in_a_documented_shape(
        answer in prop_oneof![proptest::collection::vec(any::<u8>(), 0..1100), near_answers()]
    ) {
        for asked in Method::ALL {
            let got = classify(&answer, *asked).ok();
            prop_assert_eq!(got.as_ref().map(|a| kind(a, *asked)), shape(&answer));
        }
    }

    /// Any items are taken or refused as invalid; a name the system does
    /// not know is answered exactly as a user without a method (bob).
    #[test]
    fn begin_takes_any_items_and_answers_an_unknown_name_as_a_user_without_a_method(
        user in ".{0,40}",
        service in ".{0,40}",
        rhost in prop_oneof![".{0,40}", Just("x".repeat(2000))],
        tty in ".{0,40}",
    ) {
        let w = world();
        let origin = Origin { user: user.clone(), service, rhost, tty, ssh_auth_info: String::new(), security_keys: false, commit_report: false, forwarded: None };
        let known = crate::adapters::nss::Users::canonical(&crate::adapters::nss::testing::FakeUsers::new(crate::api::fixture::USERS), &user).is_some();
        let bob = Origin { user: "bob".into(), ..origin.clone() };
        let without_method = w.rt.block_on(w.logins.begin(&root(), bob));
        match w.rt.block_on(w.logins.begin(&root(), origin)) {
            Ok((id, step)) => {
                if !known {
                    let (bob_id, bob_step) = without_method.expect("bob's login begins");
                    prop_assert_eq!((id.is_empty(), step), (bob_id.is_empty(), bob_step));
                }
            }
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput(_))),
        }
    }
}

#[test]
fn the_model_knows_the_shapes() {
    assert_eq!(shape(b"123456"), Some("code"));
    assert_eq!(shape(b"12 34 56 78"), Some("backup"));
    assert_eq!(shape(b"0000000-0"), Some("backup"));
    assert_eq!(shape(b"123-456"), None);
    assert_eq!(shape(b"+12345"), None);
    let code = backup_codes::generate_set(&crate::random::OsRandom)
        .unwrap()
        .remove(0)
        .display();
    assert_eq!(shape(code.to_uppercase().as_bytes()), Some("backup"));
}
