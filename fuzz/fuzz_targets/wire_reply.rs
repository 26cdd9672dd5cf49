//! Valid replies, built from structured input, must read back exactly;
//! the same replies with bytes changed or cut off may be refused but must
//! never panic.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pam_twofactor::dbus::{bus, wire};
use twofactor_proto::signature::{login, STEP};
use twofactor_proto::{Step, WireStep};

#[derive(Arbitrary, Debug)]
struct Reply {
    /// A reply to Begin (session, step) or to Answer (step).
    begin: bool,
    serial: u32,
    session: String,
    messages: Vec<(u32, String)>,
    action: u32,
    prompt: String,
    /// Header fields the bus may add (SENDER, DESTINATION, ...), as
    /// strings.
    fields: Vec<(u8, String)>,
    /// Then: bytes changed (offset, value) and a cut.
    changes: Vec<(u16, u8)>,
    cut: Option<u16>,
}

fuzz_target!(|input: Reply| {
    let mut body = wire::Writer::new();
    if input.begin {
        body.string(&input.session);
    }
    body.structure(|w| {
        w.array(8, |w| {
            for (kind, text) in &input.messages {
                w.structure(|w| {
                    w.u32(*kind);
                    w.string(text);
                });
            }
        });
        w.u32(input.action);
        w.string(&input.prompt);
    });
    let fields: Vec<(u8, &str, &str)> = input
        .fields
        .iter()
        .map(|(code, value)| (*code, "s", value.as_str()))
        .collect();
    let signature = if input.begin { login::BEGIN_OUT } else { STEP };
    let bytes = wire::encode_reply(
        wire::METHOD_RETURN,
        input.serial,
        &fields,
        signature,
        &body.into_bytes(),
    );
    let expected = Step::from_wire(WireStep {
        messages: input.messages.clone(),
        action: input.action,
        prompt: input.prompt.clone(),
    });
    // D-Bus strings cannot hold NUL: a reply with one is refused.
    let has_nul = (input.begin && input.session.contains('\0'))
        || input.messages.iter().any(|(_, t)| t.contains('\0'))
        || input.prompt.contains('\0')
        || input.fields.iter().any(|(_, v)| v.contains('\0'));
    let fits = bytes.len() <= wire::MAX_MESSAGE_BYTES;

    match wire::Message::parse(&bytes) {
        Ok(message) => {
            assert!(fits);
            assert_eq!(message.kind, wire::METHOD_RETURN);
            assert_eq!(message.reply_serial, Some(input.serial));
            let step = if input.begin {
                bus::read_begin_reply(&message).map(|(session, step)| {
                    assert_eq!(session, input.session);
                    step
                })
            } else {
                bus::read_answer_reply(&message)
            };
            match step {
                Ok(step) => {
                    assert!(!has_nul);
                    assert_eq!(step, expected);
                }
                Err(e) => assert!(has_nul, "a valid reply was refused: {e}"),
            }
        }
        Err(e) => assert!(has_nul || !fits, "a valid message was refused: {e}"),
    }

    let mut changed = bytes;
    for (at, value) in &input.changes {
        if let Some(b) = changed.get_mut(usize::from(*at)) {
            *b = *value;
        }
    }
    if let Some(cut) = input.cut {
        changed.truncate(usize::from(cut));
    }
    if let Ok(message) = wire::Message::parse(&changed) {
        let _ = message.error_message();
        let _ = bus::read_begin_reply(&message);
        let _ = bus::read_answer_reply(&message);
        let _ = bus::read_commit_reply(&message);
    }
});
