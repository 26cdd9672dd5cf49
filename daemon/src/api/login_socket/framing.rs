//! The login socket's stream cut into messages, with the limits
//! dbus-daemon used to enforce: no message over [`MAX_MESSAGE_BYTES`]
//! (known from its first 16 bytes, before any room is made for it), and
//! no file descriptors (plain reads: any sent are closed by the kernel).

use std::io;

use twofactor_proto::wire;

/// The largest message taken on the login socket: `Begin` with the
/// largest `SSH_AUTH_INFO_0` the contract allows, with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Bytes read from one connection, given back a whole message at a time.
/// It holds at most one message and one read's bytes past it: the
/// connection reads only when no whole message is waiting.
#[derive(Debug, Default)]
pub struct Messages {
    buf: Vec<u8>,
}

impl Messages {
    /// Starting with the bytes the handshake read past `BEGIN`.
    pub fn new(leftover: Vec<u8>) -> Self {
        Messages { buf: leftover }
    }

    /// Takes the next bytes read.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether no byte is waiting (a stream may end only here).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole message, if it has all been read; an error when
    /// one is announced over [`MAX_MESSAGE_BYTES`] or is not D-Bus.
    pub fn next_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        let refused = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        // The module's own framing (one reading of the header for both).
        let Some(frame) = wire::frame(&self.buf).map_err(|e| refused(e.0))? else {
            return Ok(None);
        };
        let total = frame.total;
        if total > MAX_MESSAGE_BYTES {
            return Err(refused("message too large for the login socket".into()));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A little-endian message header announcing `fields` bytes of header
    /// fields and `body` bytes of body, followed by them.
    fn message(fields: u32, body: u32) -> Vec<u8> {
        let mut m = vec![b'l', 1, 0, 1];
        m.extend(body.to_le_bytes());
        m.extend(7u32.to_le_bytes());
        m.extend(fields.to_le_bytes());
        let headers = (16 + fields as usize).div_ceil(8) * 8;
        m.resize(headers + body as usize, 0x5a);
        m
    }

    /// Feeds `stream` in `chunk`-byte pieces; the messages given back.
    fn cut(stream: &[u8], chunk: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut m = Messages::default();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            m.extend(piece);
            while let Some(msg) = m.next_message()? {
                out.push(msg);
            }
        }
        assert!(m.is_empty(), "ends on a boundary");
        Ok(out)
    }

    #[test]
    fn messages_up_to_the_limit_pass_in_any_chunks() {
        let sizes = [(40, 100), (5, 0), (48, (MAX_MESSAGE_BYTES - 64) as u32)];
        let mut stream = Vec::new();
        for (fields, body) in sizes {
            stream.extend(message(fields, body));
        }
        for chunk in [1usize, 3, 16, 17, 4096, stream.len()] {
            let got = cut(&stream, chunk).unwrap_or_else(|e| panic!("{chunk}: {e}"));
            let want: Vec<Vec<u8>> = sizes.iter().map(|(f, b)| message(*f, *b)).collect();
            assert!(got == want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_header_over_the_limit_fails_on_its_sixteenth_byte() {
        // 128 MiB announced: refused before anything more is read.
        let m = message(0, 0);
        let mut header = m.get(..16).unwrap_or_default().to_vec();
        header.splice(4..8, (128u32 << 20).to_le_bytes());
        let mut f = Messages::default();
        f.extend(header.get(..15).unwrap_or_default());
        assert!(matches!(f.next_message(), Ok(None)));
        f.extend(header.get(15..16).unwrap_or_default());
        assert!(f.next_message().is_err());
        // Just over the limit, and big-endian.
        let mut f = Messages::default();
        let over = message(0, (MAX_MESSAGE_BYTES - 15) as u32);
        f.extend(over.get(..16).unwrap_or_default());
        assert!(f.next_message().is_err());
        let mut be = vec![b'B', 1, 0, 1];
        be.extend(u32::MAX.to_be_bytes());
        be.extend([0; 8]);
        let mut f = Messages::default();
        f.extend(&be);
        assert!(f.next_message().is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let mut f = Messages::default();
        f.extend(b"GET / HTTP/1.1\r\n");
        assert!(f.next_message().is_err());
    }

    proptest! {
        #[test]
        fn every_message_comes_back_whole(
            sizes in proptest::collection::vec((0u32..200, 0u32..300), 1..8),
            chunk in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for (fields, body) in &sizes {
                stream.extend(message(*fields, *body));
            }
            let got = cut(&stream, chunk);
            prop_assert!(got.is_ok());
            let got = got.unwrap_or_default();
            prop_assert_eq!(got.len(), sizes.len());
            prop_assert_eq!(got.concat(), stream);
        }
    }
}
