//! The module's D-Bus message reader (pam-module/src/dbus/wire.rs) on
//! arbitrary bytes, as they would come from the bus: framing, the header
//! fields, and the reply bodies of Begin, Answer and Commit. Anything may
//! be refused; nothing may panic, overflow or allocate without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twofactor::dbus::{bus, wire};

fuzz_target!(|data: &[u8]| {
    // As the connection does: the frame first, then exactly its bytes.
    if let Ok(Some(frame)) = wire::frame(data) {
        if let Some(bytes) = data.get(..frame.total) {
            read(bytes);
        }
    }
    // And the whole input as one message (its lengths may disagree).
    read(data);
});

fn read(bytes: &[u8]) {
    let Ok(message) = wire::Message::parse(bytes) else {
        return;
    };
    let _ = message.is_reply();
    let _ = message.error_message();
    let _ = bus::read_begin_reply(&message);
    let _ = bus::read_answer_reply(&message);
    let _ = bus::read_commit_reply(&message);
    // The reader's primitives on whatever the body is.
    if let Ok(mut r) = message.body(&message.signature.clone()) {
        let _ = r.array(8, |r| {
            r.align(8)?;
            Ok((r.u32()?, r.string()?, r.signature()?, r.byte()?))
        });
        let _ = r.finish();
    }
}
