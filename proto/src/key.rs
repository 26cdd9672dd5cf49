//! Security keys (FIDO2) in the contract: what the daemon asks a key to do,
//! and what comes back.
//!
//! The daemon decides everything; the PAM module and `twofactorctl` only
//! carry these values between it and the key (through libfido2, in the
//! `twofactor-key` helper or in `twofactorctl`). The key's own formats
//! (CTAP, CBOR, COSE) stay inside libfido2: these values hold its outputs
//! as opaque bytes (`authdata` is the CBOR byte string libfido2 returns and
//! takes back for verification).
//!
//! Encoding: a tag byte naming the value, then its fields in order, each as
//! a 2-byte big-endian length and its bytes (lists: a 1-byte count, then the
//! items). Every field is bounded by [`MAX_FIELD`] and every list by
//! [`MAX_ITEMS`]; decoding refuses anything else, including trailing bytes.

use zeroize::Zeroizing;

/// The most bytes one field may hold (an attestation certificate is the
/// largest, about 1 KiB on the keys sold today).
pub const MAX_FIELD: usize = 4096;
/// The most items one list may hold (credential ids of one user).
pub const MAX_ITEMS: usize = 16;
/// Bytes of a client data hash (SHA-256).
pub const HASH_LEN: usize = 32;

/// How much user verification (a PIN or a fingerprint on the key) a login
/// or an enrolment asks for: `[keys] user_verification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserVerification {
    Discouraged,
    #[default]
    Preferred,
    Required,
}

impl UserVerification {
    pub const fn code(self) -> u8 {
        match self {
            UserVerification::Discouraged => 0,
            UserVerification::Preferred => 1,
            UserVerification::Required => 2,
        }
    }
    pub fn from_code(code: u8) -> Result<Self, KeyWireError> {
        match code {
            0 => Ok(UserVerification::Discouraged),
            1 => Ok(UserVerification::Preferred),
            2 => Ok(UserVerification::Required),
            _ => Err(KeyWireError("unknown user verification")),
        }
    }
    /// The configuration's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "discouraged" => Some(UserVerification::Discouraged),
            "preferred" => Some(UserVerification::Preferred),
            "required" => Some(UserVerification::Required),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            UserVerification::Discouraged => "discouraged",
            UserVerification::Preferred => "preferred",
            UserVerification::Required => "required",
        }
    }
}

/// Bytes that are not one of these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWireError(pub &'static str);

impl std::fmt::Display for KeyWireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed security-key message: {}", self.0)
    }
}

impl std::error::Error for KeyWireError {}

const TAG_ASSERTION_REQUEST: u8 = 0x41;
const TAG_CREDENTIAL_REQUEST: u8 = 0x43;
const TAG_ATTESTATION: u8 = 0x54;
const TAG_HELPER_INPUT: u8 = 0x48;
// Answers, first byte of what the helper writes and the module sends.
const TAG_ASSERTION: u8 = 0x61;
const TAG_NO_DEVICE: u8 = 0x6e;
const TAG_NOT_REGISTERED: u8 = 0x72;
const TAG_NO_TOUCH: u8 = 0x74;
const TAG_PIN_REQUIRED: u8 = 0x70;
const TAG_PIN_INVALID: u8 = 0x69;
const TAG_FAILED: u8 = 0x66;
const TAG_READY: u8 = 0x52;

/// What a login asks a key to sign (the daemon's challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionRequest {
    pub rp_id: String,
    pub client_data_hash: [u8; HASH_LEN],
    /// The user's registered credential ids.
    pub allow: Vec<Vec<u8>>,
    pub user_verification: UserVerification,
}

/// What a key signed, as libfido2 returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub credential_id: Vec<u8>,
    /// CBOR-encoded authenticator data (`fido_assert_authdata_ptr`).
    pub authdata: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What the module sends back for a key step: the helper's answer, passed
/// on unread except for [`KeyAnswer::PinRequired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAnswer {
    Assertion(Assertion),
    /// No security key is plugged in (or none could be opened).
    NoDevice,
    /// The keys plugged in hold none of the user's credentials.
    NotRegistered,
    /// No touch within the time allowed.
    NoTouch,
    /// The key wants its PIN: the module asks for it and runs the helper
    /// again. Never sent to the daemon.
    PinRequired,
    /// The key refused the PIN (or is blocked).
    PinInvalid,
    /// Anything else; the text is for the log (no secret in it).
    Failed(String),
    /// The answer of the helper's silent probe (`--probe`): a key that
    /// may hold one of the credentials is plugged in, so the module shows
    /// the daemon's "touch" message and runs the helper for the
    /// signature. Never sent to the daemon.
    Ready,
}

/// What an enrolment asks a key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRequest {
    pub rp_id: String,
    /// An opaque handle for the account (not the uid or name).
    pub user_id: Vec<u8>,
    pub user_name: String,
    pub client_data_hash: [u8; HASH_LEN],
    pub user_verification: UserVerification,
    /// Credentials the user has already: a key holding one refuses.
    pub exclude: Vec<Vec<u8>>,
}

/// A new credential and its attestation, as libfido2 returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// Attestation format ("packed", "fido-u2f", "none", …).
    pub fmt: String,
    /// CBOR-encoded authenticator data (`fido_cred_authdata_ptr`).
    pub authdata: Vec<u8>,
    /// The attestation certificate (DER), empty for self attestation.
    pub x5c: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What the module hands the key helper on its standard input: the
/// daemon's request, unread, and the PIN when the user gave one.
/// (`Debug` shows whether there is a PIN, never the PIN.)
#[derive(Clone, PartialEq, Eq)]
pub struct HelperInput {
    pub request: Vec<u8>,
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for HelperInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pin = if self.pin.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("HelperInput")
            .field("request", &self.request)
            .field("pin", &pin)
            .finish()
    }
}

struct Out(Vec<u8>);

impl Out {
    fn new(tag: u8) -> Self {
        Out(vec![tag])
    }
    fn bytes(&mut self, b: &[u8]) {
        // Callers only encode values they built or decoded, which are
        // bounded; a longer field is cut rather than wrapped, and then
        // refused by the decoder.
        let len = b.len().min(MAX_FIELD);
        self.0.extend_from_slice(&(len as u16).to_be_bytes());
        self.0.extend_from_slice(&b[..len]);
    }
    fn list(&mut self, items: &[Vec<u8>]) {
        let n = items.len().min(MAX_ITEMS);
        self.0.push(n as u8);
        for item in &items[..n] {
            self.bytes(item);
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn start(b: &'a [u8], tag: u8) -> Result<Self, KeyWireError> {
        match b.split_first() {
            Some((&t, rest)) if t == tag => Ok(In(rest)),
            Some(_) => Err(KeyWireError("unexpected tag")),
            None => Err(KeyWireError("empty")),
        }
    }
    fn u8(&mut self) -> Result<u8, KeyWireError> {
        let (&b, rest) = self.0.split_first().ok_or(KeyWireError("truncated"))?;
        self.0 = rest;
        Ok(b)
    }
    fn bytes(&mut self) -> Result<&'a [u8], KeyWireError> {
        if self.0.len() < 2 {
            return Err(KeyWireError("truncated"));
        }
        let len = u16::from_be_bytes([self.0[0], self.0[1]]) as usize;
        if len > MAX_FIELD {
            return Err(KeyWireError("field too long"));
        }
        let rest = &self.0[2..];
        if rest.len() < len {
            return Err(KeyWireError("truncated"));
        }
        self.0 = &rest[len..];
        Ok(&rest[..len])
    }
    fn string(&mut self) -> Result<String, KeyWireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| KeyWireError("not UTF-8"))
    }
    fn hash(&mut self) -> Result<[u8; HASH_LEN], KeyWireError> {
        self.bytes()?
            .try_into()
            .map_err(|_| KeyWireError("client data hash is not 32 bytes"))
    }
    fn list(&mut self) -> Result<Vec<Vec<u8>>, KeyWireError> {
        let n = self.u8()? as usize;
        if n > MAX_ITEMS {
            return Err(KeyWireError("too many items"));
        }
        (0..n).map(|_| self.bytes().map(<[u8]>::to_vec)).collect()
    }
    fn end(self) -> Result<(), KeyWireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(KeyWireError("trailing bytes"))
        }
    }
}

impl AssertionRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(TAG_ASSERTION_REQUEST);
        o.bytes(self.rp_id.as_bytes());
        o.bytes(&self.client_data_hash);
        o.list(&self.allow);
        o.0.push(self.user_verification.code());
        o.0
    }
    pub fn decode(b: &[u8]) -> Result<Self, KeyWireError> {
        let mut i = In::start(b, TAG_ASSERTION_REQUEST)?;
        let r = AssertionRequest {
            rp_id: i.string()?,
            client_data_hash: i.hash()?,
            allow: i.list()?,
            user_verification: UserVerification::from_code(i.u8()?)?,
        };
        i.end()?;
        Ok(r)
    }
}

impl KeyAnswer {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            KeyAnswer::Assertion(a) => {
                let mut o = Out::new(TAG_ASSERTION);
                o.bytes(&a.credential_id);
                o.bytes(&a.authdata);
                o.bytes(&a.signature);
                o.0
            }
            KeyAnswer::NoDevice => vec![TAG_NO_DEVICE],
            KeyAnswer::NotRegistered => vec![TAG_NOT_REGISTERED],
            KeyAnswer::NoTouch => vec![TAG_NO_TOUCH],
            KeyAnswer::PinRequired => vec![TAG_PIN_REQUIRED],
            KeyAnswer::PinInvalid => vec![TAG_PIN_INVALID],
            KeyAnswer::Ready => vec![TAG_READY],
            KeyAnswer::Failed(why) => {
                let mut o = Out::new(TAG_FAILED);
                o.bytes(why.as_bytes());
                o.0
            }
        }
    }
    pub fn decode(b: &[u8]) -> Result<Self, KeyWireError> {
        let single = |a: KeyAnswer| {
            if b.len() == 1 {
                Ok(a)
            } else {
                Err(KeyWireError("trailing bytes"))
            }
        };
        match b.first() {
            Some(&TAG_ASSERTION) => {
                let mut i = In::start(b, TAG_ASSERTION)?;
                let a = Assertion {
                    credential_id: i.bytes()?.to_vec(),
                    authdata: i.bytes()?.to_vec(),
                    signature: i.bytes()?.to_vec(),
                };
                i.end()?;
                Ok(KeyAnswer::Assertion(a))
            }
            Some(&TAG_NO_DEVICE) => single(KeyAnswer::NoDevice),
            Some(&TAG_NOT_REGISTERED) => single(KeyAnswer::NotRegistered),
            Some(&TAG_NO_TOUCH) => single(KeyAnswer::NoTouch),
            Some(&TAG_PIN_REQUIRED) => single(KeyAnswer::PinRequired),
            Some(&TAG_PIN_INVALID) => single(KeyAnswer::PinInvalid),
            Some(&TAG_READY) => single(KeyAnswer::Ready),
            Some(&TAG_FAILED) => {
                let mut i = In::start(b, TAG_FAILED)?;
                let why = String::from_utf8_lossy(i.bytes()?).into_owned();
                i.end()?;
                Ok(KeyAnswer::Failed(why))
            }
            Some(_) => Err(KeyWireError("unknown answer")),
            None => Err(KeyWireError("empty")),
        }
    }
    /// Whether `answer` (bytes from the helper) asks for the key's PIN:
    /// one of the two things the module reads of an answer.
    pub fn asks_for_pin(answer: &[u8]) -> bool {
        answer == [TAG_PIN_REQUIRED]
    }

    /// Whether `answer` (the helper's probe) says a key is there to touch:
    /// the other thing the module reads.
    pub fn is_ready(answer: &[u8]) -> bool {
        answer == [TAG_READY]
    }
}

impl CredentialRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(TAG_CREDENTIAL_REQUEST);
        o.bytes(self.rp_id.as_bytes());
        o.bytes(&self.user_id);
        o.bytes(self.user_name.as_bytes());
        o.bytes(&self.client_data_hash);
        o.0.push(self.user_verification.code());
        o.list(&self.exclude);
        o.0
    }
    pub fn decode(b: &[u8]) -> Result<Self, KeyWireError> {
        let mut i = In::start(b, TAG_CREDENTIAL_REQUEST)?;
        let r = CredentialRequest {
            rp_id: i.string()?,
            user_id: i.bytes()?.to_vec(),
            user_name: i.string()?,
            client_data_hash: i.hash()?,
            user_verification: UserVerification::from_code(i.u8()?)?,
            exclude: i.list()?,
        };
        i.end()?;
        Ok(r)
    }
}

impl Attestation {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(TAG_ATTESTATION);
        o.bytes(self.fmt.as_bytes());
        o.bytes(&self.authdata);
        o.bytes(&self.x5c);
        o.bytes(&self.signature);
        o.0
    }
    pub fn decode(b: &[u8]) -> Result<Self, KeyWireError> {
        let mut i = In::start(b, TAG_ATTESTATION)?;
        let a = Attestation {
            fmt: i.string()?,
            authdata: i.bytes()?.to_vec(),
            x5c: i.bytes()?.to_vec(),
            signature: i.bytes()?.to_vec(),
        };
        i.end()?;
        Ok(a)
    }
}

impl HelperInput {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut o = Out::new(TAG_HELPER_INPUT);
        o.bytes(&self.request);
        o.bytes(self.pin.as_bytes());
        Zeroizing::new(o.0)
    }
    pub fn decode(b: &[u8]) -> Result<Self, KeyWireError> {
        let mut i = In::start(b, TAG_HELPER_INPUT)?;
        let request = i.bytes()?.to_vec();
        let pin = Zeroizing::new(
            std::str::from_utf8(i.bytes()?)
                .map_err(|_| KeyWireError("PIN is not UTF-8"))?
                .to_owned(),
        );
        i.end()?;
        Ok(HelperInput { request, pin })
    }
}

/// Lower-case hex: how a key step's request travels in the step's prompt
/// string.
pub fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// The inverse of [`to_hex`]; `None` for anything else.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AssertionRequest {
        AssertionRequest {
            rp_id: "twofactor:host".into(),
            client_data_hash: [7; 32],
            allow: vec![vec![1, 2, 3], vec![4; 64]],
            user_verification: UserVerification::Required,
        }
    }

    #[test]
    fn values_round_trip() {
        let r = request();
        assert_eq!(AssertionRequest::decode(&r.encode()), Ok(r));
        let c = CredentialRequest {
            rp_id: "twofactor:host".into(),
            user_id: vec![9; 16],
            user_name: "alice".into(),
            client_data_hash: [1; 32],
            user_verification: UserVerification::Discouraged,
            exclude: vec![vec![5; 32]],
        };
        assert_eq!(CredentialRequest::decode(&c.encode()), Ok(c));
        let a = Attestation {
            fmt: "packed".into(),
            authdata: vec![0x58, 1, 2],
            x5c: vec![],
            signature: vec![3; 70],
        };
        assert_eq!(Attestation::decode(&a.encode()), Ok(a));
        for answer in [
            KeyAnswer::Assertion(Assertion {
                credential_id: vec![1],
                authdata: vec![2, 3],
                signature: vec![4; 72],
            }),
            KeyAnswer::NoDevice,
            KeyAnswer::NotRegistered,
            KeyAnswer::NoTouch,
            KeyAnswer::PinRequired,
            KeyAnswer::PinInvalid,
            KeyAnswer::Ready,
            KeyAnswer::Failed("fido_dev_get_assert: FIDO_ERR_RX".into()),
        ] {
            assert_eq!(KeyAnswer::decode(&answer.encode()), Ok(answer));
        }
        let h = HelperInput {
            request: r_bytes(),
            pin: Zeroizing::new("1234".into()),
        };
        assert_eq!(HelperInput::decode(&h.encode()), Ok(h));
    }

    fn r_bytes() -> Vec<u8> {
        request().encode()
    }

    #[test]
    fn malformed_values_are_refused() {
        let good = request().encode();
        // Every truncation, and one byte more.
        for n in 0..good.len() {
            assert!(AssertionRequest::decode(&good[..n]).is_err(), "{n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(AssertionRequest::decode(&longer).is_err());
        // Another value's tag.
        assert!(CredentialRequest::decode(&good).is_err());
        // A hash of another length.
        let mut r = request();
        r.allow.clear();
        let mut b = r.encode();
        let at = 1 + 2 + r.rp_id.len();
        b[at + 1] = 31;
        assert!(AssertionRequest::decode(&b).is_err());
        // Unknown answers and a single-byte answer with more after it.
        assert!(KeyAnswer::decode(&[0]).is_err());
        assert!(KeyAnswer::decode(&[]).is_err());
        assert!(KeyAnswer::decode(&[TAG_NO_DEVICE, 0]).is_err());
        // Too many items.
        let mut b = vec![TAG_ASSERTION_REQUEST, 0, 0, 0, 32];
        b.extend_from_slice(&[0; 32]);
        b.push(MAX_ITEMS as u8 + 1);
        assert_eq!(
            AssertionRequest::decode(&b),
            Err(KeyWireError("too many items"))
        );
    }

    #[test]
    fn the_pin_is_not_in_debug_output() {
        let h = HelperInput {
            request: vec![1],
            pin: Zeroizing::new("271828".into()),
        };
        assert!(!format!("{h:?}").contains("271828"));
    }

    #[test]
    fn only_the_pin_answer_asks_for_a_pin() {
        assert!(KeyAnswer::asks_for_pin(&KeyAnswer::PinRequired.encode()));
        assert!(!KeyAnswer::asks_for_pin(&KeyAnswer::PinInvalid.encode()));
        assert!(!KeyAnswer::asks_for_pin(&[TAG_PIN_REQUIRED, 0]));
        assert!(KeyAnswer::is_ready(&KeyAnswer::Ready.encode()));
        assert!(!KeyAnswer::is_ready(&KeyAnswer::NoDevice.encode()));
    }

    #[test]
    fn hex_round_trips_and_refuses_other_text() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&b)), Some(b));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("AB"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
