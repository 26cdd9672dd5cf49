//! Property tests of the module's D-Bus reader (what fuzz/ does at
//! length, here on every `cargo test`): arbitrary bytes and changed valid
//! messages are read without a panic, valid replies read back exactly,
//! and a bus stream of any bytes ends a call with an error or a step.

use std::io::Write as _;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use proptest::prelude::*;
use twofactor_proto::signature::{login, STEP};
use twofactor_proto::{Step, WireStep};

use super::bus::{self, BusDaemon};
use super::wire::{self, Message, Writer};
use super::{Daemon, DaemonError, LoginRequest};

/// Everything the module does with a message it has read.
fn read_all(bytes: &[u8]) {
    if let Ok(Some(frame)) = wire::frame(bytes) {
        let _ = bytes.get(..frame.total).map(Message::parse);
    }
    if let Ok(m) = Message::parse(bytes) {
        let _ = m.is_reply();
        let _ = m.error_message();
        let _ = bus::read_begin_reply(&m);
        let _ = bus::read_answer_reply(&m);
        let _ = bus::read_commit_reply(&m);
    }
}

/// A step body, `(a(us)us)`, after the session if there is one.
fn step_body(session: Option<&str>, w: &WireStep) -> Vec<u8> {
    let mut b = Writer::new();
    if let Some(s) = session {
        b.string(s);
    }
    b.structure(|b| {
        b.array(8, |b| {
            for (kind, text) in &w.messages {
                b.structure(|b| {
                    b.u32(*kind);
                    b.string(text);
                });
            }
        });
        b.u32(w.action);
        b.string(&w.prompt);
    });
    b.into_bytes()
}

/// Text without NUL (D-Bus strings cannot carry one), any other
/// character.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,40}"
}

fn wire_step() -> impl Strategy<Value = WireStep> {
    (
        proptest::collection::vec((any::<u32>(), text()), 0..6),
        prop_oneof![0u32..6, any::<u32>()],
        text(),
    )
        .prop_map(|(messages, action, prompt)| WireStep {
            messages,
            action,
            prompt,
        })
}

/// Header fields the bus adds (SENDER, DESTINATION, ...) as strings;
/// never ERROR_NAME (4), which a method return does not carry.
fn fields() -> impl Strategy<Value = Vec<(u8, String)>> {
    proptest::collection::vec(
        (
            any::<u8>().prop_filter("not ERROR_NAME", |c| *c != 4),
            text(),
        ),
        0..4,
    )
}

/// A message whose fixed header is right (byte order, version, the
/// lengths agree with the input's size) and whose header fields and body
/// are arbitrary: past the framing, into the field and body readers.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(b'l'), Just(b'B')],
        1u8..=4,
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(order, kind, fields, body)| {
            let word = |n: usize| {
                let n = n as u32;
                if order == b'B' {
                    n.to_be_bytes()
                } else {
                    n.to_le_bytes()
                }
            };
            let mut m = vec![order, kind, 0, 1];
            m.extend_from_slice(&word(body.len()));
            m.extend_from_slice(&word(7));
            m.extend_from_slice(&word(fields.len()));
            m.extend_from_slice(&fields);
            while m.len() % 8 != 0 {
                m.push(0);
            }
            m.extend_from_slice(&body);
            m
        })
}

/// What the bus says after the module's handshake: `DATA`, `OK`, the
/// reply to `Hello`, then `rest`.
fn after_handshake(rest: &[u8]) -> Vec<u8> {
    let mut hello = Writer::new();
    hello.string(":1.7");
    let mut out = b"DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n".to_vec();
    out.extend(wire::encode_reply(
        wire::METHOD_RETURN,
        1,
        &[],
        "s",
        &hello.into_bytes(),
    ));
    out.extend_from_slice(rest);
    out
}

fn request() -> LoginRequest {
    LoginRequest {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: String::new(),
        tty: String::new(),
        ssh_auth_info: String::new(),
        security_keys: false,
    }
}

/// `Begin` over a socket pair whose other end sent `stream` and closed:
/// no call waits for the timeout.
fn begin_over(stream: &[u8]) -> Result<(String, Step), DaemonError> {
    let (ours, mut theirs) = UnixStream::pair().map_err(|e| DaemonError::Failed(e.to_string()))?;
    theirs
        .write_all(stream)
        .and_then(|()| theirs.shutdown(Shutdown::Write))
        .map_err(|e| DaemonError::Failed(e.to_string()))?;
    let mut daemon = BusDaemon::over(ours, Duration::from_secs(10))?;
    daemon.begin(&request())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes at all: an error or a message, never a panic.
    #[test]
    fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_all(&bytes);
    }

    /// A right fixed header before arbitrary fields and body.
    #[test]
    fn any_fields_and_body(bytes in framed_garbage()) {
        read_all(&bytes);
    }

    /// A valid reply to Begin reads back as what was sent; to Answer and
    /// Commit too.
    #[test]
    fn valid_replies_read_back(
        serial in any::<u32>(),
        session in text(),
        step in wire_step(),
        fields in fields(),
    ) {
        let fields: Vec<(u8, &str, &str)> =
            fields.iter().map(|(c, v)| (*c, "s", v.as_str())).collect();
        let expected = Step::from_wire(step.clone());

        let begin = wire::encode_reply(
            wire::METHOD_RETURN, serial, &fields, login::BEGIN_OUT,
            &step_body(Some(&session), &step),
        );
        let m = Message::parse(&begin);
        prop_assert!(m.is_ok(), "{m:?}");
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(m.is_reply());
        prop_assert_eq!(m.reply_serial, Some(serial));
        prop_assert_eq!(bus::read_begin_reply(&m), Ok((session, expected.clone())));
        prop_assert!(bus::read_answer_reply(&m).is_err(), "Begin's reply is not a step");

        let answer = wire::encode_reply(
            wire::METHOD_RETURN, serial, &fields, STEP, &step_body(None, &step),
        );
        let m = Message::parse(&answer).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(bus::read_answer_reply(&m), Ok(expected.clone()));
        prop_assert_eq!(bus::read_commit_reply(&m), Ok(expected));
    }

    /// An error reply carries its name and message.
    #[test]
    fn error_replies_read_back(name in "[a-zA-Z.]{1,60}", message in text()) {
        let mut body = Writer::new();
        body.string(&message);
        let bytes = wire::encode_reply(
            wire::ERROR, 9, &[(4, "s", &name)], "s", &body.into_bytes(),
        );
        let m = Message::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(m.kind, wire::ERROR);
        prop_assert_eq!(m.error_name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(m.error_message(), Some(message));
    }

    /// A valid reply with bytes changed and cut short: never a panic;
    /// and a message the reader still accepts has the length it says.
    #[test]
    fn changed_replies(
        session in text(),
        step in wire_step(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = wire::encode_reply(
            wire::METHOD_RETURN, 2, &[], login::BEGIN_OUT,
            &step_body(Some(&session), &step),
        );
        for (at, value) in &changes {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        read_all(&bytes);
        if Message::parse(&bytes).is_ok() {
            let total = wire::frame(&bytes).ok().flatten().map(|f| f.total);
            prop_assert_eq!(total, Some(bytes.len()));
        }
    }

    /// Whatever the bus sends after a right handshake (here: one of the
    /// replies above, changed, then anything): the call ends with a step
    /// or an error once the stream does.
    #[test]
    fn any_stream_after_the_handshake(
        step in wire_step(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut reply = wire::encode_reply(
            wire::METHOD_RETURN, 2, &[], login::BEGIN_OUT,
            &step_body(Some("s1"), &step),
        );
        for (at, value) in &changes {
            let i = at.index(reply.len());
            reply[i] = *value;
        }
        reply.extend_from_slice(&tail);
        let result = begin_over(&after_handshake(&reply));
        if changes.is_empty() {
            prop_assert_eq!(result, Ok(("s1".to_string(), Step::from_wire(step))));
        }
    }

    /// Any bytes as the whole stream, handshake included.
    #[test]
    fn any_stream(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = begin_over(&bytes);
    }
}
