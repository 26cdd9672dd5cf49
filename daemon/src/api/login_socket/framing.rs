//! The login socket's halves as zbus reads and writes them, with the
//! limits dbus-daemon used to enforce: no message over
//! [`MAX_MESSAGE_BYTES`], and no file descriptors.
//!
//! zbus makes room for a whole message as soon as it has read the 16
//! bytes that give its length (up to the specification's 128 MiB): the
//! reader here looks at those 16 bytes as they pass and fails the read
//! when the length is over the limit, before zbus makes any room.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The largest message taken on the login socket: `Begin` with the
/// largest `SSH_AUTH_INFO_0` the contract allows, with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The fixed part of a D-Bus message header.
const FIXED_HEADER: usize = 16;

/// Follows message boundaries through the bytes read, by the fixed
/// header of each message.
#[derive(Debug, Default)]
pub struct Framer {
    header: [u8; FIXED_HEADER],
    /// Bytes of the current fixed header seen so far.
    have: usize,
    /// Bytes of the current message still to come after its fixed header.
    rest: usize,
}

impl Framer {
    /// Takes the next bytes read; an error when a message is announced
    /// over [`MAX_MESSAGE_BYTES`] or its header is not D-Bus.
    pub fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.rest > 0 {
                let k = self.rest.min(bytes.len());
                self.rest -= k;
                bytes = bytes.get(k..).unwrap_or_default();
                continue;
            }
            let k = (FIXED_HEADER - self.have).min(bytes.len());
            if let (Some(to), Some(from)) = (
                self.header.get_mut(self.have..self.have + k),
                bytes.get(..k),
            ) {
                to.copy_from_slice(from);
            }
            self.have += k;
            bytes = bytes.get(k..).unwrap_or_default();
            if self.have == FIXED_HEADER {
                self.have = 0;
                self.rest = message_length(&self.header)? - FIXED_HEADER;
            }
        }
        Ok(())
    }
}

/// A message's whole length from its fixed header: the header fields'
/// array, padded to 8, and the body.
fn message_length(header: &[u8; FIXED_HEADER]) -> io::Result<usize> {
    let refused = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let word = |at: usize| -> [u8; 4] {
        let mut w = [0u8; 4];
        w.copy_from_slice(header.get(at..at + 4).unwrap_or(&[0; 4]));
        w
    };
    let read = match header.first() {
        Some(b'l') => u32::from_le_bytes,
        Some(b'B') => u32::from_be_bytes,
        _ => return Err(refused("not a D-Bus message")),
    };
    let body = u64::from(read(word(4)));
    let fields = u64::from(read(word(12)));
    let headers = (FIXED_HEADER as u64 + fields).div_ceil(8) * 8;
    let total = headers + body;
    if total > MAX_MESSAGE_BYTES as u64 {
        return Err(refused("message too large for the login socket"));
    }
    usize::try_from(total).map_err(|_| refused("message too large"))
}

/// The read half zbus reads messages from: first the bytes the handshake
/// read past `BEGIN`, then the socket; every byte goes through the
/// [`Framer`]. Plain reads take no file descriptors (any sent are closed
/// by the kernel).
#[derive(Debug)]
pub struct FramedRead {
    inner: OwnedReadHalf,
    leftover: Vec<u8>,
    framer: Framer,
}

impl FramedRead {
    pub fn new(inner: OwnedReadHalf, leftover: Vec<u8>) -> Self {
        FramedRead {
            inner,
            leftover,
            framer: Framer::default(),
        }
    }
}

#[async_trait::async_trait]
impl zbus::connection::socket::ReadHalf for FramedRead {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        let n = if self.leftover.is_empty() {
            self.inner.read(buf).await?
        } else {
            let n = self.leftover.len().min(buf.len());
            if let Some(to) = buf.get_mut(..n) {
                to.copy_from_slice(self.leftover.get(..n).unwrap_or_default());
            }
            self.leftover.drain(..n);
            n
        };
        self.framer.feed(buf.get(..n).unwrap_or_default())?;
        Ok((n, Vec::new()))
    }
}

/// The write half zbus writes replies to; it sends no descriptors.
#[derive(Debug)]
pub struct FramedWrite(pub OwnedWriteHalf);

#[async_trait::async_trait]
impl zbus::connection::socket::WriteHalf for FramedWrite {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        if !fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no file descriptors on the login socket",
            ));
        }
        self.0.write(buffer).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
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

    #[test]
    fn messages_up_to_the_limit_pass_in_any_chunks() {
        let mut stream = message(40, 100);
        stream.extend(message(5, 0));
        let biggest_body = (MAX_MESSAGE_BYTES - 64) as u32;
        stream.extend(message(48, biggest_body));
        for chunk in [1usize, 3, 16, 17, 4096] {
            let mut f = Framer::default();
            for piece in stream.chunks(chunk) {
                assert!(f.feed(piece).is_ok(), "chunk {chunk}");
            }
            assert_eq!((f.have, f.rest), (0, 0), "ends on a boundary");
        }
    }

    #[test]
    fn a_header_over_the_limit_fails_on_its_sixteenth_byte() {
        // 128 MiB announced: refused before anything more is read.
        let m = message(0, 0);
        let mut header = m.get(..16).unwrap_or_default().to_vec();
        header.splice(4..8, (128u32 << 20).to_le_bytes());
        let mut f = Framer::default();
        assert!(f.feed(header.get(..15).unwrap_or_default()).is_ok());
        assert!(f.feed(header.get(15..16).unwrap_or_default()).is_err());
        // Just over the limit, and big-endian.
        let mut f = Framer::default();
        let over = message(0, (MAX_MESSAGE_BYTES - 15) as u32);
        assert!(f.feed(over.get(..16).unwrap_or_default()).is_err());
        let mut be = vec![b'B', 1, 0, 1];
        be.extend(u32::MAX.to_be_bytes());
        be.extend([0; 8]);
        assert!(Framer::default().feed(&be).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Framer::default().feed(b"GET / HTTP/1.1\r\n").is_err());
    }

    proptest! {
        #[test]
        fn the_framer_finds_every_boundary(
            sizes in proptest::collection::vec((0u32..200, 0u32..300), 1..8),
            chunk in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for (fields, body) in &sizes {
                stream.extend(message(*fields, *body));
            }
            let mut f = Framer::default();
            for piece in stream.chunks(chunk) {
                prop_assert!(f.feed(piece).is_ok());
            }
            prop_assert_eq!((f.have, f.rest), (0, 0));
        }
    }
}
