//! The server side of the D-Bus authentication (SASL `EXTERNAL` only),
//! done by the daemon itself rather than by zbus: with a byte budget, a
//! count of tries, no look-up of the peer in the name service, and the
//! bytes the client pipelined after `BEGIN` handed on to the framing
//! reader (which checks every message's size).
//!
//! Who the peer is was read from the kernel (`SO_PEERCRED`) before this
//! runs; `EXTERNAL` only lets a client say who it thinks it is, and a
//! claim that differs from the kernel's word is rejected. The caller puts
//! a deadline around the whole.
//!
//! ```text
//!   client: \0AUTH EXTERNAL [hex uid]\r\n    server: DATA\r\n (no uid given)
//!   client: DATA [hex uid]\r\n               server: OK <guid>\r\n
//!   client: NEGOTIATE_UNIX_FD\r\n            server: ERROR ...\r\n (no descriptors)
//!   client: BEGIN\r\n                        (D-Bus messages follow)
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes a whole handshake may take before `BEGIN` (the module's takes
/// 31; zbus's about 60).
const MAX_HANDSHAKE_BYTES: usize = 1024;
/// `REJECTED` answers before the connection is closed.
const MAX_REJECTIONS: u32 = 3;

/// Why a handshake did not end in `BEGIN`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the client did not start with the credentials byte")]
    NoCredentialsByte,
    #[error("the client sent more than {MAX_HANDSHAKE_BYTES} bytes of handshake")]
    TooLong,
    #[error("the client was rejected {MAX_REJECTIONS} times")]
    Rejected,
    #[error("the connection closed during the handshake")]
    Closed,
    #[error("{0}")]
    Io(String),
}

/// Where the handshake is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for `AUTH`.
    Auth,
    /// `AUTH EXTERNAL` without a uid: waiting for `DATA`.
    Data,
    /// `OK` sent: waiting for `BEGIN` (or `NEGOTIATE_UNIX_FD`).
    Begin,
}

/// Runs the handshake on `stream` for a peer the kernel says is `uid`;
/// `guid` is the server's id, sent with `OK`. Returns the bytes read past
/// `BEGIN\r\n`: the start of the first message.
pub async fn handshake<S>(stream: &mut S, uid: u32, guid: &str) -> Result<Vec<u8>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| HandshakeError::Io(e.to_string());
    let mut buffer: Vec<u8> = Vec::with_capacity(128);
    let mut consumed = 0usize;
    let mut state = State::Auth;
    let mut rejections = 0;
    let mut chunk = [0u8; MAX_HANDSHAKE_BYTES];
    let mut seen_nul = false;
    // The replies to every line read so far, sent in one write before the
    // next read (a client that pipelines its lines, as the module does,
    // gets `DATA` and `OK` together and wakes once).
    let mut replies = String::new();
    loop {
        // Every whole line in the buffer.
        loop {
            if !seen_nul {
                match buffer.first() {
                    None => break,
                    Some(0) => {
                        seen_nul = true;
                        consumed = 1;
                    }
                    Some(_) => return Err(HandshakeError::NoCredentialsByte),
                }
            }
            let Some(end) = buffer
                .get(consumed..)
                .and_then(|rest| rest.windows(2).position(|w| w == b"\r\n"))
            else {
                break;
            };
            let line = buffer.get(consumed..consumed + end).unwrap_or_default();
            consumed += end + 2;
            let (reply, next) = answer(state, line, uid, guid);
            if reply.starts_with("REJECTED") {
                rejections += 1;
                if rejections >= MAX_REJECTIONS {
                    return Err(HandshakeError::Rejected);
                }
            }
            replies.push_str(&reply);
            match next {
                Some(next) => state = next,
                None => {
                    if !replies.is_empty() {
                        stream.write_all(replies.as_bytes()).await.map_err(io)?;
                    }
                    return Ok(buffer.split_off(consumed));
                }
            }
        }
        if !replies.is_empty() {
            stream.write_all(replies.as_bytes()).await.map_err(io)?;
            replies.clear();
        }
        if buffer.len() >= MAX_HANDSHAKE_BYTES {
            return Err(HandshakeError::TooLong);
        }
        let room = (MAX_HANDSHAKE_BYTES - buffer.len()).min(chunk.len());
        let n = stream
            .read(chunk.get_mut(..room).unwrap_or_default())
            .await
            .map_err(io)?;
        if n == 0 {
            return Err(HandshakeError::Closed);
        }
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The reply to `line` in `state`, and the next state (None: `BEGIN`, the
/// handshake is over).
fn answer(state: State, line: &[u8], uid: u32, guid: &str) -> (String, Option<State>) {
    let rejected = || ("REJECTED EXTERNAL\r\n".to_string(), Some(State::Auth));
    let ok = || (format!("OK {guid}\r\n"), Some(State::Begin));
    let error = |why: &str| (format!("ERROR \"{why}\"\r\n"), Some(state));
    let words: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    match (state, words.as_slice()) {
        (State::Auth, [b"AUTH", b"EXTERNAL"]) => ("DATA\r\n".to_string(), Some(State::Data)),
        (State::Auth, [b"AUTH", b"EXTERNAL", claim]) if claims(claim, uid) => ok(),
        (_, [b"AUTH", ..]) => rejected(),
        (State::Data, [b"DATA"]) => ok(),
        (State::Data, [b"DATA", claim]) if claims(claim, uid) => ok(),
        (State::Data, [b"DATA", ..]) => rejected(),
        (State::Begin, [b"BEGIN"]) => (String::new(), None),
        (State::Begin, [b"NEGOTIATE_UNIX_FD"]) => error("file descriptors are not accepted"),
        (_, [b"CANCEL" | b"ERROR", ..]) => rejected(),
        (State::Begin, _) => error("expected BEGIN"),
        _ => error("unknown command"),
    }
}

/// Whether the hex-encoded decimal uid `claim` is `uid`.
fn claims(claim: &[u8], uid: u32) -> bool {
    hex_decode(claim).as_deref() == Some(uid.to_string().as_bytes())
}

fn hex_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    /// Runs the handshake for a peer of `uid` against what a client
    /// writes (`client`), closing the client's side after it; returns the
    /// result and what the server wrote.
    fn run(uid: u32, client: &[u8]) -> (Result<Vec<u8>, HandshakeError>, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { panic!("runtime") };
        rt.block_on(async {
            let (mut server, mut peer) = tokio::io::duplex(4096);
            assert!(peer.write_all(client).await.is_ok());
            // The client has said all it will: a read past it is the end.
            assert!(peer.shutdown().await.is_ok());
            let result = handshake(&mut server, uid, GUID).await;
            drop(server);
            let mut written = Vec::new();
            let _ = peer.read_to_end(&mut written).await;
            (result, String::from_utf8_lossy(&written).into_owned())
        })
    }

    #[test]
    fn the_modules_pipelined_handshake_and_first_message() {
        let (result, written) = run(0, b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\nl\x01\0\x01rest");
        assert_eq!(result, Ok(b"l\x01\0\x01rest".to_vec()));
        assert_eq!(written, format!("DATA\r\nOK {GUID}\r\n"));
    }

    #[test]
    fn zbus_clients_handshake_with_a_uid_and_asks_for_descriptors() {
        // "30" is "0" in hex: zbus sends the uid it runs as.
        let (result, written) = run(0, b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n");
        assert_eq!(result, Ok(Vec::new()));
        assert!(
            written.starts_with(&format!("OK {GUID}\r\nERROR")),
            "{written}"
        );
    }

    #[test]
    fn a_uid_the_kernel_does_not_confirm_is_rejected() {
        // The peer is uid 1000 and claims to be root (hex "0" = "30").
        let (result, written) = run(
            1000,
            b"\0AUTH EXTERNAL 30\r\nAUTH EXTERNAL 30\r\nAUTH EXTERNAL 30\r\n",
        );
        assert_eq!(result, Err(HandshakeError::Rejected));
        assert!(!written.contains("OK"), "{written}");
        let (result, written) = run(
            1000,
            b"\0AUTH EXTERNAL\r\nDATA 30\r\nAUTH EXTERNAL\r\nDATA 31303030\r\nBEGIN\r\n",
        );
        assert_eq!(
            result,
            Ok(Vec::new()),
            "its own uid is accepted after a rejection"
        );
        assert!(written.contains("REJECTED EXTERNAL"), "{written}");
    }

    #[test]
    fn other_mechanisms_and_garbage_are_refused() {
        let (result, _) = run(
            0,
            b"\0AUTH DBUS_COOKIE_SHA1 30\r\nAUTH ANONYMOUS\r\nAUTH\r\n",
        );
        assert_eq!(result, Err(HandshakeError::Rejected));
        let (result, _) = run(0, b"AUTH EXTERNAL\r\n");
        assert_eq!(result, Err(HandshakeError::NoCredentialsByte));
        let (result, written) = run(0, b"\0BEGIN\r\n");
        assert_eq!(result, Err(HandshakeError::Closed), "BEGIN before OK");
        assert!(written.starts_with("ERROR"), "{written}");
    }

    #[test]
    fn an_endless_handshake_is_cut_off() {
        // No line end: the budget, not the deadline, ends it.
        let mut long = b"\0AUTH EXTERNAL ".to_vec();
        long.extend(std::iter::repeat_n(b'3', 2000));
        let (result, _) = run(0, &long);
        assert_eq!(result, Err(HandshakeError::TooLong));
        // Many short lines that are not rejections (unknown commands).
        let mut lines = b"\0".to_vec();
        for _ in 0..200 {
            lines.extend_from_slice(b"HELLO\r\n");
        }
        let (result, _) = run(0, &lines);
        assert_eq!(result, Err(HandshakeError::TooLong));
    }

    #[test]
    fn a_client_that_hangs_up_ends_it() {
        let (result, _) = run(0, b"\0AUTH EXTERNAL\r\n");
        assert_eq!(result, Err(HandshakeError::Closed));
        let (result, _) = run(0, b"");
        assert_eq!(result, Err(HandshakeError::Closed));
    }
}
