//! The daemon's parsers of text that someone else wrote, on arbitrary
//! bytes, one target for all of them (one build of the daemon):
//!
//! - a `~/.google_authenticator` file (an administrator imports a user's
//!   own file: the user wrote it);
//! - `SSH_AUTH_INFO_0` (sshd wrote it; the module forwards it);
//! - `twofactord.toml` (the configuration loader);
//! - an email address (a user types it at `enable email` or at the
//!   prompt), and how it is masked;
//! - the stream of D-Bus messages on the login socket, as it is cut into
//!   messages and each is read as a `Login1` call (any local user writes
//!   it).
//!
//! The first byte picks the parser; anything may be refused, nothing may
//! panic, and what is accepted obeys the parser's own rule.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor_proto::wire::Message;
use twofactord::api::login_socket::calls;
use twofactord::api::login_socket::framing::{Messages, MAX_MESSAGE_BYTES};
use twofactord::config::Config;
use twofactord::message::{is_loopback, masked, valid_address};
use twofactord::rules::{google_authenticator, trusted_devices};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => {
            if let Ok(parsed) = google_authenticator::parse(&text, "f") {
                assert!(parsed.secret.bytes().len() >= 16);
            }
        }
        1 => {
            if let Some((kind, blob)) = trusted_devices::ssh_key(&text) {
                // The blob names its own type.
                let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
                assert_eq!(&blob[4..4 + len], kind.as_bytes());
            }
        }
        2 => {
            let _ = Config::parse(&text, "twofactord.toml");
        }
        3 => {
            // Fed in pieces of the sizes the first bytes say, each whole
            // message read as a call: until it refuses, a header announced
            // over the limit or not D-Bus. No message given back is over
            // the limit, and the messages given back are the stream's
            // first bytes, in order.
            let mut messages = Messages::default();
            let mut rest = rest;
            let mut given = Vec::new();
            let mut step = 1usize;
            'stream: while !rest.is_empty() {
                let (piece, after) = rest.split_at(step.min(rest.len()));
                messages.extend(piece);
                rest = after;
                step = step % 31 + 1;
                loop {
                    match messages.next_message() {
                        Ok(Some(m)) => {
                            assert!(m.len() <= MAX_MESSAGE_BYTES);
                            if let Ok(msg) = Message::parse(&m) {
                                let _ = calls::read(&msg);
                            }
                            given.extend_from_slice(&m);
                        }
                        Ok(None) => break,
                        Err(_) => break 'stream,
                    }
                }
            }
            assert!(data[1..].starts_with(&given));
        }
        _ => {
            if valid_address(&text) {
                assert!(text.is_ascii() && text.len() <= 254);
                assert_eq!(text.matches('@').count(), 1);
                assert!(!text.contains(['\r', '\n', '<', '>']));
            }
            let _ = masked(&text);
            let _ = is_loopback(&text);
        }
    }
});
