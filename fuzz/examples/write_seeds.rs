//! Writes the seed inputs in fuzz/seeds/ (committed; run again after a
//! change to the wire format): valid messages and bus streams, so that a
//! short run starts from inputs that reach past the framing.
//!
//!     cargo +nightly run --manifest-path fuzz/Cargo.toml --example write_seeds

use std::path::Path;

use pam_twofactor::dbus::wire::{self, Writer};
use twofactor_proto::signature::{login, STEP};
use twofactor_proto::{Action, Step};

fn step_body(session: Option<&str>, step: &Step) -> Vec<u8> {
    let w = step.to_wire();
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

fn string_body(text: &str) -> Vec<u8> {
    let mut b = Writer::new();
    b.string(text);
    b.into_bytes()
}

fn ask() -> Step {
    Step::new(Action::AskHidden("Verification code: ".into()))
        .info("Two-factor authentication for alice")
        .error("Invalid verification code.")
}

const SENDER: u8 = 7;
const ERROR_NAME: u8 = 4;

fn begin_reply(serial: u32) -> Vec<u8> {
    wire::encode_reply(
        wire::METHOD_RETURN,
        serial,
        &[(SENDER, "s", ":1.3")],
        login::BEGIN_OUT,
        &step_body(Some("3f0c2a9e"), &ask()),
    )
}

fn step_reply(serial: u32, step: &Step) -> Vec<u8> {
    wire::encode_reply(
        wire::METHOD_RETURN,
        serial,
        &[(SENDER, "s", ":1.3")],
        STEP,
        &step_body(None, step),
    )
}

fn error_reply(serial: u32) -> Vec<u8> {
    wire::encode_reply(
        wire::ERROR,
        serial,
        &[(ERROR_NAME, "s", "org.twofactor.Error.NotFound")],
        "s",
        &string_body("no such session"),
    )
}

/// A big-endian error, as a bus on a big-endian machine may send: the
/// module's Writer writes only little-endian, so by hand.
fn big_endian_error(serial: u32) -> Vec<u8> {
    fn pad(v: &mut Vec<u8>, to: usize) {
        while !v.len().is_multiple_of(to) {
            v.push(0);
        }
    }
    fn u32be(v: &mut Vec<u8>, x: u32) {
        pad(v, 4);
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn string(v: &mut Vec<u8>, s: &str) {
        u32be(v, s.len() as u32);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    fn sig(v: &mut Vec<u8>, s: &str) {
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    let mut body = Vec::new();
    string(&mut body, "the daemon failed");
    let mut fields = Vec::new();
    // Offsets inside `fields` are 16 past the message's: alignment (8)
    // is the same.
    fields.push(5);
    sig(&mut fields, "u");
    u32be(&mut fields, serial);
    pad(&mut fields, 8);
    fields.push(ERROR_NAME);
    sig(&mut fields, "s");
    string(&mut fields, "org.twofactor.Error.Internal");
    pad(&mut fields, 8);
    fields.push(8);
    sig(&mut fields, "g");
    sig(&mut fields, "s");
    let mut m = vec![b'B', wire::ERROR, 1, 1];
    u32be(&mut m, body.len() as u32);
    u32be(&mut m, 77);
    u32be(&mut m, fields.len() as u32);
    m.extend_from_slice(&fields);
    pad(&mut m, 8);
    m.extend_from_slice(&body);
    m
}

fn signal() -> Vec<u8> {
    wire::encode_reply(
        wire::SIGNAL,
        2,
        &[(1, "o", "/org/freedesktop/DBus"), (3, "s", "NameAcquired")],
        "s",
        &string_body(":1.7"),
    )
}

/// What the bus says to a module that logs in: the handshake, Hello's
/// reply, then `messages`.
fn stream(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n".to_vec();
    out.extend(wire::encode_reply(
        wire::METHOD_RETURN,
        1,
        &[],
        "s",
        &string_body(":1.7"),
    ));
    for m in messages {
        out.extend_from_slice(m);
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the seed directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let pending = Step::new(Action::AcceptPending).info("Backup codes saved.");
    let accept = Step::new(Action::Accept);

    let dir = root.join("wire_message");
    write(&dir, "begin-reply", &begin_reply(2));
    write(&dir, "answer-reply", &step_reply(3, &pending));
    write(&dir, "error-reply", &error_reply(3));
    write(&dir, "big-endian-error", &big_endian_error(2));
    write(&dir, "signal", &signal());

    let dir = root.join("bus_stream");
    write(
        &dir,
        "whole-login",
        &stream(&[
            signal(),
            begin_reply(2),
            step_reply(3, &pending),
            step_reply(4, &accept),
            wire::encode_reply(wire::METHOD_RETURN, 5, &[], "", &[]),
        ]),
    );
    write(&dir, "refused", &stream(&[error_reply(2)]));
    write(&dir, "big-endian", &stream(&[big_endian_error(2)]));
    write(&dir, "rejected", b"REJECTED EXTERNAL\r\n");
}
