//! The part of the D-Bus wire format (specification, "Message Protocol")
//! that twofactor speaks without a D-Bus library: the PAM module's calls
//! (`org.twofactor.Login1`, `org.freedesktop.DBus.Hello`) and the replies
//! and errors they get back, and on the daemon's login socket the same
//! calls read and their replies written. Nothing else is read or written.
//!
//! Every length and offset read is checked against the buffer; a message
//! that cannot be read is an error, never a panic.

use std::fmt;

use crate::WireStep;

/// A message this large is not one of ours (the daemon's replies are a few
/// hundred bytes); the specification's limit is 128 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The specification's limit: no bus sends a larger message, so a header
/// that claims more is a broken stream, not something to read past.
pub const SPEC_MAX_MESSAGE_BYTES: usize = 1 << 27;

/// The fixed part of a header: endianness, type, flags, version, body
/// length, serial, and the length of the header-field array.
pub const FIXED_HEADER_BYTES: usize = 16;

/// Message types.
pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// Header flags.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

/// Header field codes.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// Why bytes from the bus could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: &str) -> WireError {
    WireError(format!("malformed message from the bus: {what}"))
}

fn pad(len: usize, align: usize) -> usize {
    (align - len % align) % align
}

/// Builds a little-endian body or header, aligning as the format says.
/// Alignment is relative to the start of the buffer, which is where the
/// message (header) or the body starts: both start 8-aligned.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// Room for `bytes` from the start, so that writing them never moves
    /// the buffer and leaves a copy behind (an answer the user typed).
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn align(&mut self, align: usize) {
        let n = pad(self.buf.len(), align);
        self.buf.resize(self.buf.len() + n, 0);
    }

    pub fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// `s` or `o`. The callers have refused NUL in `v` already.
    pub fn string(&mut self, v: &str) {
        self.u32(len_u32(v.len()));
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
    }

    /// `g`: at most 255 bytes, which every signature here is.
    pub fn signature(&mut self, v: &str) {
        self.buf.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
    }

    /// `ay`.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(len_u32(v.len()));
        self.buf.extend_from_slice(v);
    }

    /// An array whose elements `write` appends; `align` is the elements'
    /// alignment (8 for structs and dict entries). The length excludes the
    /// padding before the first element.
    pub fn array(&mut self, align: usize, write: impl FnOnce(&mut Writer)) {
        self.align(4);
        let at = self.buf.len();
        self.u32(0);
        self.align(align);
        let start = self.buf.len();
        write(self);
        let len = len_u32(self.buf.len() - start);
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&len.to_le_bytes());
        }
    }

    /// A dict entry or struct: 8-aligned.
    pub fn structure(&mut self, write: impl FnOnce(&mut Writer)) {
        self.align(8);
        write(self);
    }

    /// A variant holding a string.
    pub fn string_variant(&mut self, v: &str) {
        self.signature("s");
        self.string(v);
    }

    /// Wipes what was written (an answer the user typed may be in it).
    pub fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

/// How deep containers (arrays, structs, variants) may nest in a value
/// that is skipped (the specification allows 32 of arrays and 32 of
/// structs).
pub const MAX_NESTING: usize = 64;

/// The alignment of a value whose type code is `code`.
fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// The length of the one complete type `sig` starts with.
fn complete_type(sig: &[u8], depth: usize) -> Result<usize, WireError> {
    if depth > MAX_NESTING {
        return Err(bad("types nested too deep"));
    }
    match sig.first() {
        None => Err(bad("truncated signature")),
        Some(b'a') => Ok(1 + complete_type(sig.get(1..).unwrap_or_default(), depth + 1)?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut at = 1;
            while sig.get(at) != Some(&close) {
                if at >= sig.len() {
                    return Err(bad("unclosed container in a signature"));
                }
                at += complete_type(sig.get(at..).unwrap_or_default(), depth + 1)?;
            }
            Ok(at + 1)
        }
        Some(_) => Ok(1),
    }
}

/// Lengths here are bounded by what the module sends (PAM items and
/// answers of at most a few KiB): never above `u32::MAX`.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A method call: header, padding, body.
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    /// The body's signature, "" for none.
    pub signature: &'a str,
}

impl Call<'_> {
    /// The whole message, little-endian, `serial` nonzero; a reply is
    /// expected.
    pub fn encode(&self, serial: u32, body: &[u8]) -> Vec<u8> {
        self.encode_with(0, serial, body)
    }

    /// [`Call::encode`] with the header's `flags` (e.g.
    /// [`NO_REPLY_EXPECTED`]).
    pub fn encode_with(&self, flags: u8, serial: u32, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.byte(b'l');
        w.byte(METHOD_CALL);
        w.byte(flags);
        w.byte(1); // protocol version
        w.u32(len_u32(body.len()));
        w.u32(serial);
        w.array(8, |w| {
            let mut field = |code: u8, sig: &str, value: &str| {
                w.structure(|w| {
                    w.byte(code);
                    w.signature(sig);
                    if sig == "g" {
                        w.signature(value);
                    } else {
                        w.string(value);
                    }
                });
            };
            field(FIELD_PATH, "o", self.path);
            field(FIELD_INTERFACE, "s", self.interface);
            field(FIELD_MEMBER, "s", self.member);
            field(FIELD_DESTINATION, "s", self.destination);
            if !self.signature.is_empty() {
                field(FIELD_SIGNATURE, "g", self.signature);
            }
        });
        w.align(8);
        let header = w.into_bytes();
        // One allocation of the final size: the body (it may hold an
        // answer) is copied once and never moved.
        let mut out = Vec::with_capacity(header.len() + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out
    }
}

/// The start of a message: its type and how many bytes it takes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub total: usize,
}

/// The frame of the message at the start of `buf`, once its fixed header
/// is there (`None` before): known before the message is read, so that one
/// over [`MAX_MESSAGE_BYTES`] need never be held. A header that claims more
/// than [`SPEC_MAX_MESSAGE_BYTES`] is an error.
pub fn frame(buf: &[u8]) -> Result<Option<Frame>, WireError> {
    let Some(head) = buf
        .get(..FIXED_HEADER_BYTES)
        .and_then(|h| <[u8; FIXED_HEADER_BYTES]>::try_from(h).ok())
    else {
        return Ok(None);
    };
    let big = match head[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err(bad("unknown byte order")),
    };
    if head[3] != 1 {
        return Err(bad("unknown protocol version"));
    }
    let word = |b: [u8; 4]| {
        usize::try_from(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
        .unwrap_or(usize::MAX)
    };
    let body = word([head[4], head[5], head[6], head[7]]);
    let fields = word([head[12], head[13], head[14], head[15]]);
    let header = FIXED_HEADER_BYTES.saturating_add(fields);
    let total = header.saturating_add(pad(header, 8)).saturating_add(body);
    if total > SPEC_MAX_MESSAGE_BYTES {
        return Err(bad("longer than the specification allows"));
    }
    Ok(Some(Frame {
        kind: head[1],
        total,
    }))
}

/// A message read: its header as far as twofactor cares, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub signature: String,
    big_endian: bool,
    body: Vec<u8>,
}

impl Message {
    /// A method return or an error: the only kinds that answer a call. Any
    /// user may send this connection a signal, and a signal may carry a
    /// REPLY_SERIAL field; the bus lets through only the replies it
    /// expects, from the connection the call went to.
    pub fn is_reply(&self) -> bool {
        self.kind == METHOD_RETURN || self.kind == ERROR
    }

    /// Reads one whole message (`buf` is exactly its [`frame`]'s bytes, at
    /// most [`MAX_MESSAGE_BYTES`]).
    pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
        let total = frame(buf)?.ok_or_else(|| bad("truncated header"))?.total;
        if total > MAX_MESSAGE_BYTES {
            return Err(bad("too large"));
        }
        if total != buf.len() {
            return Err(bad("length does not match"));
        }
        let big_endian = buf.first() == Some(&b'B');
        let kind = buf.get(1).copied().ok_or_else(|| bad("truncated header"))?;
        let flags = buf.get(2).copied().ok_or_else(|| bad("truncated header"))?;
        let mut r = Reader::new(buf, big_endian);
        r.pos = 4;
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        if serial == 0 {
            return Err(bad("serial 0"));
        }
        let fields_len = r.u32()? as usize;
        let fields_end = FIXED_HEADER_BYTES
            .checked_add(fields_len)
            .ok_or_else(|| bad("overflow"))?;
        let mut reply_serial = None;
        let mut error_name = None;
        let (mut path, mut interface, mut member) = (None, None, None);
        let mut signature = String::new();
        while r.pos < fields_end {
            r.align(8)?;
            let code = r.byte()?;
            let sig = r.signature()?;
            match (code, sig.as_str()) {
                (FIELD_REPLY_SERIAL, "u") => reply_serial = Some(r.u32()?),
                (FIELD_ERROR_NAME, "s") => error_name = Some(r.string()?),
                (FIELD_PATH, "o") => path = Some(r.string()?),
                (FIELD_INTERFACE, "s") => interface = Some(r.string()?),
                (FIELD_MEMBER, "s") => member = Some(r.string()?),
                (FIELD_SIGNATURE, "g") => signature = r.signature()?,
                (_, "s" | "o") => {
                    r.string()?;
                }
                (_, "u") => {
                    r.u32()?;
                }
                (_, "g") => {
                    r.signature()?;
                }
                _ => return Err(bad("unknown header field type")),
            }
        }
        if r.pos != fields_end {
            return Err(bad("header fields overrun"));
        }
        let body_start = fields_end + pad(fields_end, 8);
        let body = buf
            .get(body_start..body_start.saturating_add(body_len))
            .ok_or_else(|| bad("body out of bounds"))?
            .to_vec();
        Ok(Message {
            kind,
            flags,
            serial,
            path,
            interface,
            member,
            reply_serial,
            error_name,
            signature,
            big_endian,
            body,
        })
    }

    /// The body, for reading, if its signature is `expected`.
    pub fn body(&self, expected: &str) -> Result<Reader<'_>, WireError> {
        if self.signature != expected {
            return Err(WireError(format!(
                "unexpected reply signature \"{}\" (expected \"{expected}\")",
                self.signature
            )));
        }
        Ok(Reader::new(&self.body, self.big_endian))
    }

    /// An error's message: its body's first string, if it has one.
    pub fn error_message(&self) -> Option<String> {
        if !self.signature.starts_with('s') {
            return None;
        }
        Reader::new(&self.body, self.big_endian).string().ok()
    }
}

/// Reads values from a header or body, bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            big_endian,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad("overflow"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad("value out of bounds"))?;
        self.pos = end;
        Ok(bytes)
    }

    pub fn align(&mut self, align: usize) -> Result<(), WireError> {
        let n = pad(self.pos, align);
        if self.take(n)?.iter().any(|&b| b != 0) {
            return Err(bad("nonzero padding"));
        }
        Ok(())
    }

    pub fn byte(&mut self) -> Result<u8, WireError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or_else(|| bad("value out of bounds"))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.align(4)?;
        let b = <[u8; 4]>::try_from(self.take(4)?).map_err(|_| bad("value out of bounds"))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn text(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err(bad("string not NUL-terminated"));
        }
        if bytes.contains(&0) {
            return Err(bad("NUL inside a string"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("string not UTF-8"))
    }

    /// `s` or `o`.
    pub fn string(&mut self) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        self.text(len)
    }

    /// `ay`.
    pub fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    /// `g`.
    pub fn signature(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.byte()?);
        self.text(len)
    }

    /// An array whose elements `read` reads one at a time; `align` is the
    /// elements' alignment.
    pub fn array<T>(
        &mut self,
        align: usize,
        mut read: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let len = self.u32()? as usize;
        self.align(align)?;
        let end = self.pos.checked_add(len).ok_or_else(|| bad("overflow"))?;
        if end > self.buf.len() {
            return Err(bad("array out of bounds"));
        }
        let mut items = Vec::new();
        while self.pos < end {
            let before = self.pos;
            items.push(read(self)?);
            // An element that takes no bytes would repeat for ever (and
            // the list grow without bound).
            if self.pos == before {
                return Err(bad("array element of no size"));
            }
        }
        if self.pos != end {
            return Err(bad("array element overruns the array"));
        }
        Ok(items)
    }

    /// Reads past one value of each type in `sig` (a value the reader
    /// has no use for, such as a detail of a newer module), checking only
    /// that it fits the buffer. Containers nest at most
    /// [`MAX_NESTING`] deep.
    pub fn skip(&mut self, sig: &str) -> Result<(), WireError> {
        let mut rest = sig.as_bytes();
        while !rest.is_empty() {
            self.skip_one(&mut rest, 0)?;
        }
        Ok(())
    }

    fn skip_one(&mut self, sig: &mut &[u8], depth: usize) -> Result<(), WireError> {
        if depth > MAX_NESTING {
            return Err(bad("values nested too deep"));
        }
        let (&code, rest) = sig
            .split_first()
            .ok_or_else(|| bad("truncated signature"))?;
        *sig = rest;
        match code {
            b'y' | b'n' | b'q' | b'b' | b'i' | b'u' | b'h' | b'x' | b't' | b'd' => {
                let size = alignment(code);
                self.align(size)?;
                self.take(size)?;
            }
            b's' | b'o' => {
                self.string()?;
            }
            b'g' => {
                self.signature()?;
            }
            b'v' => {
                let inner = self.signature()?;
                let mut inner = inner.as_bytes();
                self.skip_one(&mut inner, depth + 1)?;
                if !inner.is_empty() {
                    return Err(bad("a variant holds more than one type"));
                }
            }
            b'a' => {
                let element = complete_type(sig, depth + 1)?;
                let first = *sig.first().ok_or_else(|| bad("truncated signature"))?;
                *sig = sig.get(element..).unwrap_or_default();
                let len = self.u32()? as usize;
                self.align(alignment(first))?;
                self.take(len)?;
            }
            b'(' | b'{' => {
                self.align(8)?;
                let close = if code == b'(' { b')' } else { b'}' };
                while sig.first() != Some(&close) {
                    self.skip_one(sig, depth + 1)?;
                }
                *sig = sig.get(1..).unwrap_or_default();
            }
            _ => return Err(bad("unknown type in a signature")),
        }
        Ok(())
    }

    /// The body has been read to its end.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(bad("trailing bytes in the body"))
        }
    }
}

/// A reply to the call with serial `reply_serial`: a method return
/// (`sig` and `body` its out arguments) or, with [`error`], an error.
pub fn method_return(serial: u32, reply_serial: u32, sig: &str, body: &[u8]) -> Vec<u8> {
    encode(
        METHOD_RETURN,
        NO_REPLY_EXPECTED,
        serial,
        reply_serial,
        &[],
        sig,
        body,
    )
}

/// An error reply named `name` whose body is the one string `text`.
pub fn error(serial: u32, reply_serial: u32, name: &str, text: &str) -> Vec<u8> {
    let mut body = Writer::new();
    body.string(&text.replace('\0', ""));
    encode(
        ERROR,
        NO_REPLY_EXPECTED,
        serial,
        reply_serial,
        &[(FIELD_ERROR_NAME, "s", &name.replace('\0', ""))],
        "s",
        &body.into_bytes(),
    )
}

/// A message as dbus-daemon frames a reply (REPLY_SERIAL, other fields as
/// `(code, signature "s", value)`, SIGNATURE), for tests and fuzz targets
/// that play the bus (`kind` may be any, a signal too).
pub fn encode_reply(
    kind: u8,
    reply_serial: u32,
    fields: &[(u8, &str, &str)],
    sig: &str,
    body: &[u8],
) -> Vec<u8> {
    encode(kind, NO_REPLY_EXPECTED, 99, reply_serial, fields, sig, body)
}

fn encode(
    kind: u8,
    flags: u8,
    serial: u32,
    reply_serial: u32,
    fields: &[(u8, &str, &str)],
    sig: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + body.len());
    w.byte(b'l');
    w.byte(kind);
    w.byte(flags);
    w.byte(1);
    w.u32(len_u32(body.len()));
    w.u32(serial);
    w.array(8, |w| {
        w.structure(|w| {
            w.byte(FIELD_REPLY_SERIAL);
            w.signature("u");
            w.u32(reply_serial);
        });
        for (code, s, v) in fields {
            w.structure(|w| {
                w.byte(*code);
                w.signature(s);
                w.string(v);
            });
        }
        if !sig.is_empty() {
            w.structure(|w| {
                w.byte(FIELD_SIGNATURE);
                w.signature("g");
                w.signature(sig);
            });
        }
    });
    w.align(8);
    let mut out = w.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Writes a step, [`crate::signature::STEP`].
pub fn write_step(w: &mut Writer, step: &WireStep) {
    w.structure(|w| {
        w.array(8, |w| {
            for (kind, text) in &step.messages {
                w.structure(|w| {
                    w.u32(*kind);
                    w.string(&text.replace('\0', ""));
                });
            }
        });
        w.u32(step.action);
        w.string(&step.prompt.replace('\0', ""));
    });
}

/// Reads a step, [`crate::signature::STEP`].
pub fn read_step(r: &mut Reader<'_>) -> Result<WireStep, WireError> {
    r.align(8)?;
    let messages = r.array(8, |r| {
        r.align(8)?;
        Ok((r.u32()?, r.string()?))
    })?;
    let action = r.u32()?;
    let prompt = r.string()?;
    Ok(WireStep {
        messages,
        action,
        prompt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call<'static> {
        Call {
            destination: "org.twofactor.Daemon1",
            path: "/org/twofactor/Daemon1",
            interface: "org.twofactor.Login1",
            member: "Cancel",
            signature: "s",
        }
    }

    #[test]
    fn a_call_is_framed_as_the_specification_says() {
        let mut body = Writer::new();
        body.string("abc");
        let msg = call().encode(7, &body.into_bytes());
        assert_eq!(&msg[..4], b"l\x01\x00\x01");
        assert_eq!(u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]), 8);
        assert_eq!(u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]), 7);
        assert_eq!(
            frame(&msg),
            Ok(Some(Frame {
                kind: METHOD_CALL,
                total: msg.len()
            }))
        );
        assert_eq!((msg.len() - 8) % 8, 0, "the body starts 8-aligned");
        // The body (u32 3, "abc\0") ends the message, after 8-alignment.
        assert_eq!(&msg[msg.len() - 8..], b"\x03\x00\x00\x00abc\x00");
        // Our own reader reads our header back.
        let parsed = Message::parse(&msg);
        assert!(matches!(parsed, Ok(ref m) if m.kind == METHOD_CALL && m.signature == "s"));
    }

    fn reply(kind: u8, fields: &[(u8, &str, &str)], sig: &str, body: &[u8]) -> Vec<u8> {
        encode_reply(kind, 5, fields, sig, body)
    }

    #[test]
    fn a_step_reply_reads_back() {
        let mut b = Writer::new();
        b.structure(|w| {
            w.array(8, |w| {
                w.structure(|w| {
                    w.u32(1);
                    w.string("hello");
                });
                w.structure(|w| {
                    w.u32(2);
                    w.string("again");
                });
            });
            w.u32(3);
            w.string("Code: ");
        });
        let msg = reply(
            METHOD_RETURN,
            &[(7, "s", ":1.1")],
            crate::signature::STEP,
            &b.into_bytes(),
        );
        let m = Message::parse(&msg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.reply_serial, Some(5));
        let mut r = m
            .body(crate::signature::STEP)
            .unwrap_or_else(|e| panic!("{e}"));
        r.align(8).unwrap_or_else(|e| panic!("{e}"));
        let messages = r
            .array(8, |r| {
                r.align(8)?;
                Ok((r.u32()?, r.string()?))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(messages, vec![(1, "hello".into()), (2, "again".into())]);
        assert_eq!(r.u32(), Ok(3));
        assert_eq!(r.string(), Ok("Code: ".into()));
        assert_eq!(r.finish(), Ok(()));
        assert!(m.body("s").is_err());
    }

    #[test]
    fn an_error_carries_its_name_and_message() {
        let mut b = Writer::new();
        b.string("no such session");
        let msg = reply(
            ERROR,
            &[(FIELD_ERROR_NAME, "s", "org.twofactor.Error.NotFound")],
            "s",
            &b.into_bytes(),
        );
        let m = Message::parse(&msg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.kind, ERROR);
        assert_eq!(
            m.error_name.as_deref(),
            Some("org.twofactor.Error.NotFound")
        );
        assert_eq!(m.error_message().as_deref(), Some("no such session"));
    }

    #[test]
    fn lies_in_lengths_are_errors_not_panics() {
        let mut b = Writer::new();
        b.string("x");
        let good = reply(METHOD_RETURN, &[], "s", &b.into_bytes());
        // Every truncation and every single-byte corruption: an error or a
        // message, never a panic or an out-of-bounds read.
        for cut in 0..good.len() {
            let _ = frame(&good[..cut]);
            let _ = Message::parse(&good[..cut]);
        }
        for at in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut m = good.clone();
                m[at] = v;
                if let Ok(msg) = Message::parse(&m) {
                    if let Ok(mut r) = msg.body("s") {
                        let _ = r.string();
                    }
                }
            }
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&(MAX_MESSAGE_BYTES as u32).to_le_bytes());
        assert!(matches!(frame(&huge), Ok(Some(f)) if f.total > MAX_MESSAGE_BYTES));
        assert!(Message::parse(&huge).is_err());
    }

    #[test]
    fn a_length_past_the_specifications_limit_is_an_error() {
        // Regression: a header claiming up to 8 GiB (body and fields
        // lengths at u32::MAX) was framed, and a signal that large was
        // read past until the timeout instead of refused.
        let mut b = Writer::new();
        b.string("x");
        let good = encode_reply(SIGNAL, 0, &[], "s", &b.into_bytes());
        for (at, len) in [
            (4, u32::MAX),
            (12, u32::MAX),
            (4, SPEC_MAX_MESSAGE_BYTES as u32),
        ] {
            let mut m = good.clone();
            m[at..at + 4].copy_from_slice(&len.to_le_bytes());
            assert!(frame(&m).is_err(), "{at}: {len}");
            assert!(Message::parse(&m).is_err());
        }
        // Just under: framed (and then read past, if a signal).
        let mut m = good.clone();
        let fields = u32::from_le_bytes([m[12], m[13], m[14], m[15]]) as usize;
        let header = (FIXED_HEADER_BYTES + fields).next_multiple_of(8);
        let body = (SPEC_MAX_MESSAGE_BYTES - header) as u32;
        m[4..8].copy_from_slice(&body.to_le_bytes());
        assert!(matches!(frame(&m), Ok(Some(f)) if f.total == SPEC_MAX_MESSAGE_BYTES));
        m[4..8].copy_from_slice(&(body + 1).to_le_bytes());
        assert!(frame(&m).is_err());
    }

    #[test]
    fn an_array_element_that_reads_nothing_ends_the_array() {
        // An element reader that takes no bytes must not loop for ever
        // (pushing elements without bound): the array is refused.
        let mut w = Writer::new();
        w.array(4, |w| w.u32(1));
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes, false);
        assert_eq!(r.array(4, |_| Ok(())), Err(bad("array element of no size")));
        let mut r = Reader::new(&bytes, false);
        assert_eq!(r.array(4, |r| r.u32()), Ok(vec![1]));
    }

    #[test]
    fn skip_reads_past_any_value_and_no_further() {
        let mut w = Writer::new();
        w.byte(7); // y
        w.u32(1); // u
        w.array(8, |w| {
            w.structure(|w| {
                w.string("k");
                w.signature("v");
                w.signature("x");
                w.align(8);
                w.u32(1);
                w.u32(2);
            });
        }); // a{sv} holding a variant holding an x
        w.structure(|w| {
            w.string("a");
            w.signature("ai");
        }); // (sg)
        w.string("end");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes, false);
        assert_eq!(r.skip("yua{sv}(sg)"), Ok(()));
        assert_eq!(r.string(), Ok("end".into()));
        assert_eq!(r.finish(), Ok(()));
        // Each prefix of the buffer: an error, never a panic.
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut], false);
            let _ = r.skip("yua{sv}(sg)s");
        }
        for sig in ["(", "a", "a{s", "z", "(i"] {
            let mut r = Reader::new(&bytes, false);
            assert!(r.skip(sig).is_err(), "{sig}");
        }
        // Variants inside variants around a byte: read up to the limit,
        // refused past it.
        let nested = |n: usize| {
            let mut v = b"\x01v\x00".repeat(n);
            v.extend_from_slice(b"\x01y\x00\x2a");
            v
        };
        let shallow = nested(MAX_NESTING - 1);
        let mut r = Reader::new(&shallow, false);
        assert_eq!(r.skip("v").and_then(|()| r.finish()), Ok(()));
        let deep = nested(MAX_NESTING + 1);
        let mut r = Reader::new(&deep, false);
        assert_eq!(r.skip("v"), Err(bad("values nested too deep")));
    }

    #[test]
    fn a_reply_written_reads_back() {
        let step = WireStep {
            messages: vec![(1, "hello".into())],
            action: 3,
            prompt: "Code: ".into(),
        };
        let mut body = Writer::new();
        body.string("session");
        write_step(&mut body, &step);
        let msg = method_return(4, 9, crate::signature::login::BEGIN_OUT, &body.into_bytes());
        let m = Message::parse(&msg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (m.kind, m.serial, m.reply_serial),
            (METHOD_RETURN, 4, Some(9))
        );
        let mut r = m
            .body(crate::signature::login::BEGIN_OUT)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.string(), Ok("session".into()));
        assert_eq!(read_step(&mut r), Ok(step));
        assert_eq!(r.finish(), Ok(()));
        let e = Message::parse(&error(5, 9, "org.twofactor.Error.NotFound", "gone"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.error_name.as_deref(),
            Some("org.twofactor.Error.NotFound")
        );
        assert_eq!(e.error_message().as_deref(), Some("gone"));
    }

    #[test]
    fn a_call_reads_back_with_its_header() {
        let mut body = Writer::new();
        body.string("abc");
        let msg = call().encode(7, &body.into_bytes());
        let m = Message::parse(&msg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.serial, 7);
        assert_eq!(m.path.as_deref(), Some("/org/twofactor/Daemon1"));
        assert_eq!(m.interface.as_deref(), Some("org.twofactor.Login1"));
        assert_eq!(m.member.as_deref(), Some("Cancel"));
        assert_eq!(m.flags & NO_REPLY_EXPECTED, 0);
        let unanswered = call().encode_with(NO_REPLY_EXPECTED, 8, &[]);
        let m = Message::parse(&unanswered).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (m.serial, m.flags & NO_REPLY_EXPECTED),
            (8, NO_REPLY_EXPECTED)
        );
    }

    #[test]
    fn a_string_length_past_the_end_is_refused() {
        let mut r = Reader::new(b"\xff\x00\x00\x00ab\x00", false);
        assert!(r.string().is_err());
        let mut r = Reader::new(b"\x02\x00\x00\x00a\x00\x00", false);
        assert!(r.string().is_err(), "NUL inside");
        let mut r = Reader::new(b"\x02\x00\x00\x00\xff\xfe\x00", false);
        assert!(r.string().is_err(), "not UTF-8");
    }
}
