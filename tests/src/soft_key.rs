//! A software FIDO2 security key: a CTAP 2.0 authenticator that the real
//! libfido2 talks to through `fido_dev_set_io_functions`, over a Unix
//! stream socket instead of a hidraw device. Tests of the security-key
//! login drive the real libfido2 code (CTAPHID framing, strict CBOR
//! parsing, signature checks) through it, and switch it at run time to
//! misbehave in the ways a broken or hostile key can ([`Behaviour`]).
//!
//! The wire is what libfido2's own HID layer (`src/io.c`) reads and
//! writes: each output report arrives as 65 bytes (a report-ID byte 0x00
//! and the 64-byte report), each input report is sent as exactly 64 bytes.
//! On top of that, CTAPHID (CTAP 2.0 §8.1) and the CTAP2 commands
//! authenticatorGetInfo, authenticatorMakeCredential and
//! authenticatorGetAssertion, with non-resident ES256 or EdDSA
//! credentials kept in memory, packed self attestation, and one signature
//! counter for the whole key.
//!
//! One background thread serves connections one after another (libfido2
//! opens the device, talks, closes); dropping the [`SoftKey`] stops it and
//! removes the socket.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ciborium::Value;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// COSE algorithm identifier of ECDSA P-256 with SHA-256.
pub const COSE_ES256: i32 = -7;
/// COSE algorithm identifier of EdDSA (Ed25519 here).
pub const COSE_EDDSA: i32 = -8;

/// A CTAPHID report without the report-ID byte (full-speed HID).
pub const REPORT_LEN: usize = 64;
/// What libfido2 writes per output report: report ID 0x00, then the report.
pub const OUTPUT_REPORT_LEN: usize = REPORT_LEN + 1;
/// Payload bytes in an initialisation packet (cid 4, cmd 1, length 2).
const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Payload bytes in a continuation packet (cid 4, seq 1).
const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// The longest CTAPHID message: one initialisation and 128 continuation
/// packets.
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + 128 * CONT_DATA_LEN;
/// The channel CTAPHID_INIT is sent on before a channel is allocated.
pub const BROADCAST_CID: [u8; 4] = [0xff; 4];

/// The maxMsgSize authenticatorGetInfo announces.
const MAX_MSG_SIZE: u64 = 1200;
/// How often a waiting key says "user presence needed".
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the serving loops block before looking at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// CTAPHID's transaction timeout between packets of one message.
const MESSAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// CTAPHID commands (without the 0x80 initialisation-packet bit).
mod hid {
    pub const PING: u8 = 0x01;
    pub const INIT: u8 = 0x06;
    pub const CBOR: u8 = 0x10;
    pub const CANCEL: u8 = 0x11;
    pub const KEEPALIVE: u8 = 0x3b;
    pub const ERROR: u8 = 0x3f;

    /// CTAPHID_ERROR codes.
    pub const ERR_INVALID_CMD: u8 = 0x01;
    pub const ERR_INVALID_LEN: u8 = 0x03;
    pub const ERR_INVALID_SEQ: u8 = 0x04;
    pub const ERR_MSG_TIMEOUT: u8 = 0x05;
    pub const ERR_CHANNEL_BUSY: u8 = 0x06;
    pub const ERR_INVALID_CHANNEL: u8 = 0x0b;

    /// CTAPHID_KEEPALIVE status: waiting for the user's touch.
    pub const STATUS_UPNEEDED: u8 = 2;

    /// CTAPHID_INIT capability flags.
    pub const CAPABILITY_CBOR: u8 = 0x04;
    pub const CAPABILITY_NMSG: u8 = 0x08;
}

/// CTAP2 command bytes and status codes.
mod ctap {
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    pub const GET_ASSERTION: u8 = 0x02;
    pub const GET_INFO: u8 = 0x04;

    pub const OK: u8 = 0x00;
    pub const ERR_INVALID_COMMAND: u8 = 0x01;
    pub const ERR_CBOR_UNEXPECTED_TYPE: u8 = 0x11;
    pub const ERR_INVALID_CBOR: u8 = 0x12;
    pub const ERR_MISSING_PARAMETER: u8 = 0x14;
    pub const ERR_CREDENTIAL_EXCLUDED: u8 = 0x19;
    pub const ERR_UNSUPPORTED_ALGORITHM: u8 = 0x26;
    pub const ERR_UNSUPPORTED_OPTION: u8 = 0x2b;
    pub const ERR_INVALID_OPTION: u8 = 0x2c;
    pub const ERR_KEEPALIVE_CANCEL: u8 = 0x2d;
    pub const ERR_NO_CREDENTIALS: u8 = 0x2e;
    pub const ERR_PIN_AUTH_INVALID: u8 = 0x33;
    pub const ERR_OTHER: u8 = 0x7f;
}

/// authenticatorData flags.
pub mod flags {
    /// User present (touched).
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Attested credential data follows.
    pub const AT: u8 = 0x40;
}

/// How the key behaves from now on; tests switch it with
/// [`SoftKey::set_behaviour`], also while a request waits for presence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// A well-behaved key whose user touches it at once (one UPNEEDED
    /// keepalive, then the answer).
    #[default]
    Normal,
    /// Nobody touches it: requests that need presence keep sending
    /// UPNEEDED keepalives until the client cancels (answered with
    /// CTAP2_ERR_KEEPALIVE_CANCEL), hangs up, or the behaviour changes.
    /// libfido2 does not cancel when its timeout passes: until the client
    /// closes the device, the key serves no other connection.
    NeverTouched,
    /// Assertions carry a signature with one bit flipped.
    WrongSignature,
    /// Assertions name a random credential id that is not the one used.
    OtherCredentialId,
    /// Each assertion's signCount is 5 below the previous one sent
    /// (saturating at 0); the key's own counter still goes up.
    CounterBack,
    /// Assertions come back at once with the UP flag clear.
    NoPresence,
    /// makeCredential and getAssertion answer status 0x00 followed by
    /// bytes that are not CBOR (getInfo stays intact, so that the device
    /// still opens).
    GarbledCbor,
}

/// What kind of key it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftKeyOptions {
    /// The key has built-in user verification (getInfo option "uv": true);
    /// without it, a request for uv is refused with
    /// CTAP2_ERR_UNSUPPORTED_OPTION.
    pub builtin_uv: bool,
    /// Make every credential with this algorithm ([`COSE_ES256`] or
    /// [`COSE_EDDSA`]); `None`: the first of the two the client offers.
    pub alg: Option<i32>,
}

/// A running software security key. See the module documentation.
pub struct SoftKey {
    shared: Arc<Shared>,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl SoftKey {
    /// The key's AAGUID (in getInfo and in every attested credential).
    pub const AAGUID: [u8; 16] = [
        0x74, 0x77, 0x6f, 0x66, 0x61, 0x63, 0x74, 0x6f, // "twofacto"
        0x72, 0x2d, 0x73, 0x6f, 0x66, 0x74, 0x6b, 0x01, // "r-softk" 1
    ];

    /// Listens on a new Unix stream socket at `path` and serves it in a
    /// background thread until dropped.
    pub fn start(path: &Path, options: SoftKeyOptions) -> io::Result<SoftKey> {
        if let Some(alg) = options.alg {
            if alg != COSE_ES256 && alg != COSE_EDDSA {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("soft key: algorithm {alg} is neither ES256 (-7) nor EdDSA (-8)"),
                ));
            }
        }
        let listener = UnixListener::bind(path)?;
        let shared = Arc::new(Shared {
            options,
            stop: AtomicBool::new(false),
            behaviour: Mutex::new(Behaviour::Normal),
            state: Mutex::new(State::default()),
        });
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("soft-key".into())
            .spawn(move || serve(listener, &serving));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        Ok(SoftKey {
            shared,
            path: path.to_path_buf(),
            thread: Some(thread),
        })
    }

    /// The socket libfido2's io functions connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> SoftKeyOptions {
        self.shared.options
    }

    /// Switches the behaviour; a request waiting for presence sees the
    /// change within a keepalive interval.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    pub fn behaviour(&self) -> Behaviour {
        *lock(&self.shared.behaviour)
    }

    /// The credentials made so far: (credential id, rp id), oldest first.
    pub fn credentials(&self) -> Vec<(Vec<u8>, String)> {
        lock(&self.shared.state)
            .credentials
            .iter()
            .map(|c| (c.id.clone(), c.rp_id.clone()))
            .collect()
    }

    /// A credential's algorithm and raw public key (x‖y for ES256, the 32
    /// key bytes for EdDSA), as libfido2's `fido_cred_pubkey_ptr` gives it.
    pub fn public_key(&self, credential_id: &[u8]) -> Option<(i32, Vec<u8>)> {
        lock(&self.shared.state)
            .credentials
            .iter()
            .find(|c| c.id == credential_id)
            .map(|c| (c.key.alg(), c.key.raw_public_key()))
    }

    /// How many assertions the key has answered with (whatever the
    /// behaviour did to them; not refusals, cancellations or garbage).
    pub fn assertions_made(&self) -> u32 {
        lock(&self.shared.state).assertions_made
    }

    /// The key's signature counter: the signCount of the last signature
    /// made under [`Behaviour::Normal`].
    pub fn counter(&self) -> u32 {
        lock(&self.shared.state).counter
    }

    /// Sets the signature counter; the next signature reports `n + 1`.
    pub fn set_counter(&self, n: u32) {
        let mut state = lock(&self.shared.state);
        state.counter = n;
        state.last_sent = n;
    }
}

impl Drop for SoftKey {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Every loop of the thread looks at the flag at least once a
            // TICK (writes time out after a second), so this is bounded.
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the test's handle and the serving thread share.
struct Shared {
    options: SoftKeyOptions,
    stop: AtomicBool,
    behaviour: Mutex<Behaviour>,
    state: Mutex<State>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn behaviour(&self) -> Behaviour {
        *lock(&self.behaviour)
    }
}

#[derive(Default)]
struct State {
    credentials: Vec<Credential>,
    /// The key's signature counter (one for all credentials).
    counter: u32,
    /// The signCount of the last authenticator data sent.
    last_sent: u32,
    assertions_made: u32,
}

impl State {
    /// The counter for the next signature: the key's own goes up by one;
    /// under [`Behaviour::CounterBack`] the one reported goes down.
    fn next_count(&mut self, behaviour: Behaviour) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        let sent = if behaviour == Behaviour::CounterBack {
            self.last_sent.saturating_sub(5)
        } else {
            self.counter
        };
        self.last_sent = sent;
        sent
    }

    fn own(&self, rp_id: &str, id: &[u8]) -> Option<&Credential> {
        self.credentials
            .iter()
            .find(|c| c.rp_id == rp_id && c.id == id)
    }
}

/// A poisoned lock only means a test panicked elsewhere; the data is
/// still what the key needs to go on answering (and to shut down).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Credential {
    id: Vec<u8>,
    rp_id: String,
    key: KeyPair,
}

enum KeyPair {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

impl KeyPair {
    fn generate(alg: i32) -> KeyPair {
        if alg == COSE_EDDSA {
            KeyPair::EdDsa(ed25519_dalek::SigningKey::generate(&mut OsRng))
        } else {
            KeyPair::Es256(p256::ecdsa::SigningKey::random(&mut OsRng))
        }
    }

    fn alg(&self) -> i32 {
        match self {
            KeyPair::Es256(_) => COSE_ES256,
            KeyPair::EdDsa(_) => COSE_EDDSA,
        }
    }

    fn raw_public_key(&self) -> Vec<u8> {
        match self {
            KeyPair::Es256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                // An uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                point.as_bytes()[1..].to_vec()
            }
            KeyPair::EdDsa(k) => k.verifying_key().to_bytes().to_vec(),
        }
    }

    /// The public key as a COSE_Key, its entries in CTAP2 canonical order
    /// (unsigned keys ascending, then negative ones: 1, 3, -1, -2, -3).
    fn cose_public_key(&self) -> Value {
        let raw = self.raw_public_key();
        match self {
            KeyPair::Es256(_) => {
                let (x, y) = raw.split_at(32);
                Value::Map(vec![
                    (int(1), int(2)),  // kty: EC2
                    (int(3), int(-7)), // alg: ES256
                    (int(-1), int(1)), // crv: P-256
                    (int(-2), Value::Bytes(x.to_vec())),
                    (int(-3), Value::Bytes(y.to_vec())),
                ])
            }
            KeyPair::EdDsa(_) => Value::Map(vec![
                (int(1), int(1)),  // kty: OKP
                (int(3), int(-8)), // alg: EdDSA
                (int(-1), int(6)), // crv: Ed25519
                (int(-2), Value::Bytes(raw)),
            ]),
        }
    }

    /// ES256: a DER ECDSA signature over SHA-256(msg); EdDSA: the 64-byte
    /// Ed25519 signature of msg.
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        // ed25519-dalek's Signer is the `signature` crate's, as p256's.
        use ed25519_dalek::Signer as _;
        match self {
            KeyPair::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
            KeyPair::EdDsa(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// authenticatorData: SHA-256(rp id) ‖ flags ‖ signCount (BE) and, for a
/// new credential, the attested credential data: AAGUID ‖ id length (BE)
/// ‖ id ‖ COSE public key (already encoded).
pub fn auth_data(
    rp_id: &str,
    flags: u8,
    sign_count: u32,
    attested: Option<(&[u8], &[u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(37 + attested.map_or(0, |(id, k)| 18 + id.len() + k.len()));
    out.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
    out.push(flags);
    out.extend_from_slice(&sign_count.to_be_bytes());
    if let Some((id, cose_key)) = attested {
        out.extend_from_slice(&SoftKey::AAGUID);
        // Credential ids are 32 bytes here, far below u16::MAX.
        out.extend_from_slice(&(id.len() as u16).to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(cose_key);
    }
    out
}

/// Encodes `v` as CBOR. Maps come out in the order they were built, so
/// every map here is built in CTAP2 canonical order.
pub fn to_cbor(v: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| format!("encode CBOR: {e}"))?;
    Ok(out)
}

// ---------------------------------------------------------------------
// CTAPHID framing

/// A complete CTAPHID message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub cid: [u8; 4],
    /// The command without the 0x80 bit.
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// Splits a message into 64-byte reports: an initialisation packet (cid,
/// cmd | 0x80, length BE, 57 bytes) and continuation packets (cid, seq,
/// 59 bytes), zero-padded. `data` must not exceed [`MAX_MESSAGE_LEN`]
/// (longer data is cut there).
pub fn frame(cid: [u8; 4], cmd: u8, data: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let data = &data[..data.len().min(MAX_MESSAGE_LEN)];
    let mut reports = Vec::new();
    let mut init = [0u8; REPORT_LEN];
    init[..4].copy_from_slice(&cid);
    init[4] = 0x80 | cmd;
    init[5..7].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let first = data.len().min(INIT_DATA_LEN);
    init[7..7 + first].copy_from_slice(&data[..first]);
    reports.push(init);
    for (seq, chunk) in data[first..].chunks(CONT_DATA_LEN).enumerate() {
        let mut cont = [0u8; REPORT_LEN];
        cont[..4].copy_from_slice(&cid);
        // At most 128 continuation packets fit MAX_MESSAGE_LEN: seq < 0x80.
        cont[4] = seq as u8;
        cont[5..5 + chunk.len()].copy_from_slice(chunk);
        reports.push(cont);
    }
    reports
}

/// What one report did to the message being reassembled.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    Complete(Message),
    Incomplete,
    /// A stray continuation packet (CTAPHID says: ignore it).
    Ignored,
    /// Answer CTAPHID_ERROR `code` on channel `cid`.
    Error {
        cid: [u8; 4],
        code: u8,
    },
}

struct Partial {
    cid: [u8; 4],
    cmd: u8,
    len: usize,
    data: Vec<u8>,
    next_seq: u8,
}

/// Reassembles messages from reports, one message at a time (CTAPHID
/// devices serve one transaction at a time).
#[derive(Default)]
pub struct Reassembler {
    partial: Option<Partial>,
}

impl Reassembler {
    pub fn feed(&mut self, report: &[u8; REPORT_LEN]) -> Fed {
        let mut cid = [0u8; 4];
        cid.copy_from_slice(&report[..4]);
        let kind = report[4];
        if kind & 0x80 != 0 {
            let cmd = kind & 0x7f;
            if let Some(p) = &self.partial {
                if p.cid != cid {
                    return Fed::Error {
                        cid,
                        code: hid::ERR_CHANNEL_BUSY,
                    };
                }
                // A new message on the same channel: INIT resynchronises,
                // anything else is out of sequence.
                self.partial = None;
                if cmd != hid::INIT {
                    return Fed::Error {
                        cid,
                        code: hid::ERR_INVALID_SEQ,
                    };
                }
            }
            let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
            if len > MAX_MESSAGE_LEN {
                return Fed::Error {
                    cid,
                    code: hid::ERR_INVALID_LEN,
                };
            }
            let first = len.min(INIT_DATA_LEN);
            let data = report[7..7 + first].to_vec();
            if data.len() == len {
                return Fed::Complete(Message { cid, cmd, data });
            }
            self.partial = Some(Partial {
                cid,
                cmd,
                len,
                data,
                next_seq: 0,
            });
            return Fed::Incomplete;
        }
        let seq = kind;
        let Some(p) = &mut self.partial else {
            return Fed::Ignored;
        };
        if p.cid != cid {
            return Fed::Ignored;
        }
        if seq != p.next_seq {
            self.partial = None;
            return Fed::Error {
                cid,
                code: hid::ERR_INVALID_SEQ,
            };
        }
        let take = (p.len - p.data.len()).min(CONT_DATA_LEN);
        p.data.extend_from_slice(&report[5..5 + take]);
        p.next_seq = p.next_seq.wrapping_add(1);
        if p.data.len() < p.len {
            return Fed::Incomplete;
        }
        match self.partial.take() {
            Some(p) => Fed::Complete(Message {
                cid: p.cid,
                cmd: p.cmd,
                data: p.data,
            }),
            None => Fed::Ignored,
        }
    }

    /// The channel of a message begun but not finished.
    pub fn pending(&self) -> Option<[u8; 4]> {
        self.partial.as_ref().map(|p| p.cid)
    }

    pub fn reset(&mut self) {
        self.partial = None;
    }
}

// ---------------------------------------------------------------------
// Serving

fn serve(listener: UnixListener, shared: &Shared) {
    while !shared.stopping() {
        match wait_readable(&listener, TICK) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                eprintln!("soft key: poll the listening socket: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("soft key: accept: {e}");
                continue;
            }
        };
        let mut conn = Connection {
            stream,
            inbuf: Vec::new(),
            shared,
            channels: Vec::new(),
        };
        match conn.run() {
            Ok(()) => {}
            // The client hung up, possibly in the middle of a keepalive
            // (libfido2 closes the device when it gives up waiting).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => eprintln!("soft key: connection: {e}"),
        }
    }
}

/// Whether the listener has a connection to accept within `timeout`: a
/// bounded wait, so that the accept loop sees the stop flag.
fn wait_readable(listener: &UnixListener, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, on a descriptor the listener keeps open
    // for the whole call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(n > 0)
}

/// Why a CTAP2 command stopped early.
enum Failure {
    /// Answer this CTAP2 status byte.
    Status(u8),
    /// The connection broke (or the key is stopping).
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

type CtapResult<T> = Result<T, Failure>;

enum Presence {
    Given,
    Cancelled,
}

struct Connection<'a> {
    stream: UnixStream,
    /// Bytes read but not yet taken as a whole output report.
    inbuf: Vec<u8>,
    shared: &'a Shared,
    /// Channels allocated by CTAPHID_INIT on this connection.
    channels: Vec<[u8; 4]>,
}

impl Connection<'_> {
    fn run(&mut self) -> io::Result<()> {
        self.stream.set_nonblocking(false)?;
        // A client that stops reading must not hold the thread forever.
        self.stream
            .set_write_timeout(Some(Duration::from_secs(1)))?;
        let mut reassembler = Reassembler::default();
        let mut last_packet = Instant::now();
        loop {
            let Some(report) = self.read_report(TICK)? else {
                if let Some(cid) = reassembler.pending() {
                    if last_packet.elapsed() > MESSAGE_TIMEOUT {
                        reassembler.reset();
                        self.send_error(cid, hid::ERR_MSG_TIMEOUT)?;
                    }
                }
                continue;
            };
            last_packet = Instant::now();
            match reassembler.feed(&report) {
                Fed::Complete(msg) => self.handle(msg)?,
                Fed::Incomplete | Fed::Ignored => {}
                Fed::Error { cid, code } => self.send_error(cid, code)?,
            }
        }
    }

    /// The next output report, without its report-ID byte; `None` when
    /// `wait` passed without one. Fails when the client hung up or the key
    /// is stopping.
    fn read_report(&mut self, wait: Duration) -> io::Result<Option<[u8; REPORT_LEN]>> {
        let deadline = Instant::now() + wait;
        while self.inbuf.len() < OUTPUT_REPORT_LEN {
            if self.shared.stopping() {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "soft key stopping",
                ));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(remaining))?;
            let mut buf = [0u8; 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client hung up",
                    ))
                }
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut report = [0u8; REPORT_LEN];
        // Byte 0 is the report ID (0x00) that libfido2 puts before each
        // output report.
        report.copy_from_slice(&self.inbuf[1..OUTPUT_REPORT_LEN]);
        self.inbuf.drain(..OUTPUT_REPORT_LEN);
        Ok(Some(report))
    }

    fn send(&mut self, cid: [u8; 4], cmd: u8, data: &[u8]) -> io::Result<()> {
        for report in frame(cid, cmd, data) {
            self.stream.write_all(&report)?;
        }
        Ok(())
    }

    fn send_error(&mut self, cid: [u8; 4], code: u8) -> io::Result<()> {
        self.send(cid, hid::ERROR, &[code])
    }

    fn handle(&mut self, msg: Message) -> io::Result<()> {
        if msg.cmd == hid::INIT {
            return self.init(&msg);
        }
        if msg.cid == BROADCAST_CID || !self.channels.contains(&msg.cid) {
            return self.send_error(msg.cid, hid::ERR_INVALID_CHANNEL);
        }
        match msg.cmd {
            hid::PING => self.send(msg.cid, hid::PING, &msg.data),
            hid::CBOR => {
                if msg.data.is_empty() {
                    return self.send_error(msg.cid, hid::ERR_INVALID_LEN);
                }
                let reply = match self.ctap2(msg.cid, &msg.data) {
                    Ok(reply) => reply,
                    Err(Failure::Status(status)) => vec![status],
                    Err(Failure::Io(e)) => return Err(e),
                };
                self.send(msg.cid, hid::CBOR, &reply)
            }
            // No reply: there is nothing pending outside a presence wait.
            hid::CANCEL => Ok(()),
            // MSG (0x03, U2F) is not supported (capability NMSG), nor WINK,
            // LOCK or anything else.
            _ => self.send_error(msg.cid, hid::ERR_INVALID_CMD),
        }
    }

    /// CTAPHID_INIT: on the broadcast channel allocates a channel, on an
    /// allocated one resynchronises it. The answer is the client's nonce ‖
    /// channel ‖ protocol version 2 ‖ device version 0.1.0 ‖ capabilities.
    fn init(&mut self, msg: &Message) -> io::Result<()> {
        if msg.data.len() != 8 {
            return self.send_error(msg.cid, hid::ERR_INVALID_LEN);
        }
        let cid = if msg.cid == BROADCAST_CID {
            let cid = self.new_channel();
            self.channels.push(cid);
            cid
        } else if self.channels.contains(&msg.cid) {
            msg.cid
        } else {
            return self.send_error(msg.cid, hid::ERR_INVALID_CHANNEL);
        };
        let mut reply = msg.data.clone();
        reply.extend_from_slice(&cid);
        reply.push(2);
        reply.extend_from_slice(&[0, 1, 0]);
        reply.push(hid::CAPABILITY_CBOR | hid::CAPABILITY_NMSG);
        self.send(msg.cid, hid::INIT, &reply)
    }

    fn new_channel(&self) -> [u8; 4] {
        loop {
            let mut cid = [0u8; 4];
            OsRng.fill_bytes(&mut cid);
            if cid != BROADCAST_CID && cid != [0; 4] && !self.channels.contains(&cid) {
                return cid;
            }
        }
    }

    /// Waits for the user's touch as the behaviour says, sending UPNEEDED
    /// keepalives meanwhile and watching for CTAPHID_CANCEL.
    fn await_presence(&mut self, cid: [u8; 4]) -> io::Result<Presence> {
        loop {
            self.send(cid, hid::KEEPALIVE, &[hid::STATUS_UPNEEDED])?;
            if self.shared.behaviour() != Behaviour::NeverTouched {
                return Ok(Presence::Given);
            }
            let next = Instant::now() + KEEPALIVE_INTERVAL;
            loop {
                let wait = next.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                let Some(report) = self.read_report(wait)? else {
                    break;
                };
                if report[4] & 0x80 == 0 {
                    // A continuation packet: not part of anything here.
                    continue;
                }
                let from = [report[0], report[1], report[2], report[3]];
                if from == cid && report[4] & 0x7f == hid::CANCEL {
                    return Ok(Presence::Cancelled);
                }
                self.send_error(from, hid::ERR_CHANNEL_BUSY)?;
            }
        }
    }

    /// Presence for a request that needs it; a cancelled wait answers
    /// CTAP2_ERR_KEEPALIVE_CANCEL.
    fn require_presence(&mut self, cid: [u8; 4]) -> CtapResult<()> {
        match self.await_presence(cid)? {
            Presence::Given => Ok(()),
            Presence::Cancelled => Err(Failure::Status(ctap::ERR_KEEPALIVE_CANCEL)),
        }
    }

    /// One CTAP2 request (command byte ‖ CBOR parameters) to its reply
    /// (status byte ‖ CBOR).
    fn ctap2(&mut self, cid: [u8; 4], request: &[u8]) -> CtapResult<Vec<u8>> {
        let Some((&command, params)) = request.split_first() else {
            return Err(Failure::Status(ctap::ERR_INVALID_COMMAND));
        };
        let reply = match command {
            ctap::GET_INFO => self.get_info(),
            ctap::MAKE_CREDENTIAL => self.make_credential(cid, params)?,
            ctap::GET_ASSERTION => self.get_assertion(cid, params)?,
            _ => return Err(Failure::Status(ctap::ERR_INVALID_COMMAND)),
        };
        let mut out = vec![ctap::OK];
        match reply {
            Reply::Cbor(v) => out.extend(to_cbor(&v).map_err(|e| {
                eprintln!("soft key: {e}");
                Failure::Status(ctap::ERR_OTHER)
            })?),
            Reply::Garbage => out.extend_from_slice(GARBAGE),
        }
        Ok(out)
    }

    fn get_info(&self) -> Reply {
        // Option names in canonical order: by length, then bytewise.
        let mut options = vec![
            (text("rk"), Value::Bool(false)),
            (text("up"), Value::Bool(true)),
        ];
        if self.shared.options.builtin_uv {
            options.push((text("uv"), Value::Bool(true)));
        }
        options.push((text("plat"), Value::Bool(false)));
        Reply::Cbor(Value::Map(vec![
            (int(1), Value::Array(vec![text("FIDO_2_0")])),
            (int(3), Value::Bytes(SoftKey::AAGUID.to_vec())),
            (int(4), Value::Map(options)),
            (int(5), Value::Integer(MAX_MSG_SIZE.into())),
        ]))
    }

    fn make_credential(&mut self, cid: [u8; 4], params: &[u8]) -> CtapResult<Reply> {
        let req = parse_map(params)?;
        let cdh = bytes(required(&req, 1)?)?.to_vec();
        let rp = map(required(&req, 2)?)?;
        let rp_id = text_of(required_named(rp, "id")?)?.to_string();
        let user = map(required(&req, 3)?)?;
        bytes(required_named(user, "id")?)?;
        let alg = self.choose_alg(array(required(&req, 4)?)?)?;
        let exclude = match entry(&req, 5) {
            Some(v) => credential_ids(array(v)?)?,
            None => Vec::new(),
        };
        let mut uv = false;
        if let Some(options) = entry(&req, 7) {
            for (name, value) in map(options)? {
                let value = boolean(value)?;
                match name.as_text() {
                    Some("rk") if value => {
                        return Err(Failure::Status(ctap::ERR_UNSUPPORTED_OPTION))
                    }
                    Some("uv") if value && !self.shared.options.builtin_uv => {
                        return Err(Failure::Status(ctap::ERR_UNSUPPORTED_OPTION))
                    }
                    Some("uv") => uv = value,
                    Some("up") if !value => return Err(Failure::Status(ctap::ERR_INVALID_OPTION)),
                    _ => {}
                }
            }
        }
        if entry(&req, 8).is_some() {
            // pinAuth, and the key has no clientPin.
            return Err(Failure::Status(ctap::ERR_PIN_AUTH_INVALID));
        }

        let excluded = {
            let state = lock(&self.shared.state);
            exclude.iter().any(|id| state.own(&rp_id, id).is_some())
        };
        self.require_presence(cid)?;
        if excluded {
            return Err(Failure::Status(ctap::ERR_CREDENTIAL_EXCLUDED));
        }
        let behaviour = self.shared.behaviour();
        if behaviour == Behaviour::GarbledCbor {
            return Ok(Reply::Garbage);
        }

        let key = KeyPair::generate(alg);
        let id = random_bytes(32);
        let cose_key = to_cbor(&key.cose_public_key()).map_err(|e| {
            eprintln!("soft key: {e}");
            Failure::Status(ctap::ERR_OTHER)
        })?;
        let mut flags = flags::UP | flags::AT;
        if uv {
            flags |= flags::UV;
        }
        let mut state = lock(&self.shared.state);
        let count = state.next_count(Behaviour::Normal);
        let auth_data = auth_data(&rp_id, flags, count, Some((&id, &cose_key)));
        let sig = key.sign(&[auth_data.as_slice(), &cdh].concat());
        state.credentials.push(Credential { id, rp_id, key });
        drop(state);
        Ok(Reply::Cbor(Value::Map(vec![
            (int(1), text("packed")),
            (int(2), Value::Bytes(auth_data)),
            (
                int(3),
                Value::Map(vec![
                    (text("alg"), int(i64::from(alg))),
                    (text("sig"), Value::Bytes(sig)),
                ]),
            ),
        ])))
    }

    /// The first of ES256 and EdDSA among the client's pubKeyCredParams
    /// (only the forced one, if the options force one).
    fn choose_alg(&self, params: &[Value]) -> CtapResult<i32> {
        for p in params {
            let p = map(p)?;
            let alg = integer(required_named(p, "alg")?)?;
            let kind = text_of(required_named(p, "type")?)?;
            if kind != "public-key" {
                continue;
            }
            let supported = match self.shared.options.alg {
                Some(forced) => i64::from(forced) == alg,
                None => alg == i64::from(COSE_ES256) || alg == i64::from(COSE_EDDSA),
            };
            if supported {
                // One of -7, -8.
                return Ok(alg as i32);
            }
        }
        Err(Failure::Status(ctap::ERR_UNSUPPORTED_ALGORITHM))
    }

    fn get_assertion(&mut self, cid: [u8; 4], params: &[u8]) -> CtapResult<Reply> {
        let req = parse_map(params)?;
        let rp_id = text_of(required(&req, 1)?)?.to_string();
        let cdh = bytes(required(&req, 2)?)?.to_vec();
        let allow = match entry(&req, 3) {
            Some(v) => credential_ids(array(v)?)?,
            None => Vec::new(),
        };
        let (mut up, mut uv) = (true, false);
        if let Some(options) = entry(&req, 5) {
            for (name, value) in map(options)? {
                let value = boolean(value)?;
                match name.as_text() {
                    Some("up") => up = value,
                    Some("uv") if value && !self.shared.options.builtin_uv => {
                        return Err(Failure::Status(ctap::ERR_UNSUPPORTED_OPTION))
                    }
                    Some("uv") => uv = value,
                    Some("rk") => return Err(Failure::Status(ctap::ERR_INVALID_OPTION)),
                    _ => {}
                }
            }
        }
        if entry(&req, 6).is_some() {
            return Err(Failure::Status(ctap::ERR_PIN_AUTH_INVALID));
        }

        let found = {
            let state = lock(&self.shared.state);
            allow
                .iter()
                .find(|id| state.own(&rp_id, id).is_some())
                .cloned()
        };
        // Like many real keys, it asks for the touch before saying it has
        // no such credential, so that the answer cannot be probed silently.
        let behaviour = self.shared.behaviour();
        if up && behaviour != Behaviour::NoPresence {
            self.require_presence(cid)?;
        }
        let Some(id) = found else {
            return Err(Failure::Status(ctap::ERR_NO_CREDENTIALS));
        };
        // The wait may have lasted while the test switched behaviours.
        let behaviour = self.shared.behaviour();
        if behaviour == Behaviour::GarbledCbor {
            return Ok(Reply::Garbage);
        }

        let mut flags = 0;
        if up && behaviour != Behaviour::NoPresence {
            flags |= flags::UP;
        }
        if uv {
            flags |= flags::UV;
        }
        let mut state = lock(&self.shared.state);
        let count = state.next_count(behaviour);
        let auth_data = auth_data(&rp_id, flags, count, None);
        let Some(credential) = state.own(&rp_id, &id) else {
            return Err(Failure::Status(ctap::ERR_NO_CREDENTIALS));
        };
        let mut sig = credential.key.sign(&[auth_data.as_slice(), &cdh].concat());
        if behaviour == Behaviour::WrongSignature {
            // The last byte: the DER (or Ed25519) structure stays valid,
            // only the value is wrong.
            if let Some(last) = sig.last_mut() {
                *last ^= 0x01;
            }
        }
        state.assertions_made += 1;
        drop(state);
        let reported_id = if behaviour == Behaviour::OtherCredentialId {
            random_bytes(32)
        } else {
            id
        };
        Ok(Reply::Cbor(Value::Map(vec![
            (
                int(1),
                Value::Map(vec![
                    (text("id"), Value::Bytes(reported_id)),
                    (text("type"), text("public-key")),
                ]),
            ),
            (int(2), Value::Bytes(auth_data)),
            (int(3), Value::Bytes(sig)),
        ])))
    }
}

enum Reply {
    Cbor(Value),
    /// What [`Behaviour::GarbledCbor`] sends after the status byte.
    Garbage,
}

/// Not CBOR: 0xff is a "break" with nothing to break, and an indefinite
/// map header (0xbf) would need one.
const GARBAGE: &[u8] = &[0xff, 0xbf, 0x1c, 0x00];

// ---------------------------------------------------------------------
// Request parsing: CTAP2 status codes for what a client got wrong.

fn parse_map(params: &[u8]) -> CtapResult<Vec<(Value, Value)>> {
    if params.is_empty() {
        return Err(Failure::Status(ctap::ERR_MISSING_PARAMETER));
    }
    let value: Value =
        ciborium::from_reader(params).map_err(|_| Failure::Status(ctap::ERR_INVALID_CBOR))?;
    match value {
        Value::Map(m) => Ok(m),
        _ => Err(Failure::Status(ctap::ERR_CBOR_UNEXPECTED_TYPE)),
    }
}

fn entry(m: &[(Value, Value)], key: i64) -> Option<&Value> {
    m.iter()
        .find(|(k, _)| {
            k.as_integer()
                .is_some_and(|i| i128::from(i) == i128::from(key))
        })
        .map(|(_, v)| v)
}

fn required(m: &[(Value, Value)], key: i64) -> CtapResult<&Value> {
    entry(m, key).ok_or(Failure::Status(ctap::ERR_MISSING_PARAMETER))
}

fn required_named<'a>(m: &'a [(Value, Value)], name: &str) -> CtapResult<&'a Value> {
    m.iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
        .ok_or(Failure::Status(ctap::ERR_MISSING_PARAMETER))
}

fn unexpected() -> Failure {
    Failure::Status(ctap::ERR_CBOR_UNEXPECTED_TYPE)
}

fn bytes(v: &Value) -> CtapResult<&[u8]> {
    v.as_bytes().map(Vec::as_slice).ok_or_else(unexpected)
}

fn text_of(v: &Value) -> CtapResult<&str> {
    v.as_text().ok_or_else(unexpected)
}

fn map(v: &Value) -> CtapResult<&[(Value, Value)]> {
    v.as_map().map(Vec::as_slice).ok_or_else(unexpected)
}

fn array(v: &Value) -> CtapResult<&[Value]> {
    v.as_array().map(Vec::as_slice).ok_or_else(unexpected)
}

fn boolean(v: &Value) -> CtapResult<bool> {
    v.as_bool().ok_or_else(unexpected)
}

fn integer(v: &Value) -> CtapResult<i64> {
    v.as_integer()
        .and_then(|i| i64::try_from(i128::from(i)).ok())
        .ok_or_else(unexpected)
}

/// The ids of a list of PublicKeyCredentialDescriptors.
fn credential_ids(list: &[Value]) -> CtapResult<Vec<Vec<u8>>> {
    list.iter()
        .map(|d| Ok(bytes(required_named(map(d)?, "id")?)?.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_split_and_reassembled() {
        let cid = [1, 2, 3, 4];
        let data: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let reports = frame(cid, hid::CBOR, &data);
        // 57 + 4 × 59 = 293 < 300 ≤ 57 + 5 × 59.
        assert_eq!(reports.len(), 6);
        assert_eq!(&reports[0][..4], &cid);
        assert_eq!(reports[0][4], 0x90);
        assert_eq!(&reports[0][5..7], &300u16.to_be_bytes());
        assert_eq!(&reports[0][7..], &data[..57]);
        for (seq, report) in reports[1..].iter().enumerate() {
            assert_eq!(&report[..4], &cid);
            assert_eq!(usize::from(report[4]), seq);
        }
        // The last packet is zero-padded.
        let tail = 300 - 57 - 4 * 59;
        assert_eq!(&reports[5][5..5 + tail], &data[300 - tail..]);
        assert!(reports[5][5 + tail..].iter().all(|&b| b == 0));

        let mut r = Reassembler::default();
        for report in &reports[..5] {
            assert_eq!(r.feed(report), Fed::Incomplete);
        }
        assert_eq!(r.pending(), Some(cid));
        assert_eq!(
            r.feed(&reports[5]),
            Fed::Complete(Message {
                cid,
                cmd: hid::CBOR,
                data: data.clone(),
            })
        );
        assert_eq!(r.pending(), None);
    }

    #[test]
    fn short_and_empty_messages_take_one_packet() {
        let reports = frame(BROADCAST_CID, hid::INIT, &[9; 8]);
        assert_eq!(reports.len(), 1);
        let mut r = Reassembler::default();
        assert_eq!(
            r.feed(&reports[0]),
            Fed::Complete(Message {
                cid: BROADCAST_CID,
                cmd: hid::INIT,
                data: vec![9; 8],
            })
        );
        let reports = frame([5; 4], hid::CANCEL, &[]);
        assert_eq!(reports.len(), 1);
        assert!(matches!(r.feed(&reports[0]), Fed::Complete(m) if m.data.is_empty()));
        // Exactly one initialisation packet's worth.
        assert_eq!(frame([5; 4], hid::PING, &[7; 57]).len(), 1);
        assert_eq!(frame([5; 4], hid::PING, &[7; 58]).len(), 2);
    }

    #[test]
    fn framing_errors_are_reported() {
        let cid = [1, 1, 1, 1];
        let reports = frame(cid, hid::PING, &[0xaa; 200]);
        let mut r = Reassembler::default();
        assert_eq!(r.feed(&reports[0]), Fed::Incomplete);
        // Another channel while this one is busy.
        let other = frame([2, 2, 2, 2], hid::PING, &[1]);
        assert_eq!(
            r.feed(&other[0]),
            Fed::Error {
                cid: [2, 2, 2, 2],
                code: hid::ERR_CHANNEL_BUSY
            }
        );
        // A skipped sequence number.
        assert_eq!(
            r.feed(&reports[2]),
            Fed::Error {
                cid,
                code: hid::ERR_INVALID_SEQ
            }
        );
        // A continuation with nothing begun is ignored.
        assert_eq!(r.feed(&reports[1]), Fed::Ignored);
        // Longer than CTAPHID allows.
        let mut too_long = [0u8; REPORT_LEN];
        too_long[..4].copy_from_slice(&cid);
        too_long[4] = 0x80 | hid::PING;
        too_long[5..7].copy_from_slice(&(MAX_MESSAGE_LEN as u16 + 1).to_be_bytes());
        assert_eq!(
            r.feed(&too_long),
            Fed::Error {
                cid,
                code: hid::ERR_INVALID_LEN
            }
        );
    }

    #[test]
    fn the_longest_message_round_trips() {
        let data = vec![0x5a; MAX_MESSAGE_LEN];
        let reports = frame([3; 4], hid::PING, &data);
        assert_eq!(reports.len(), 129);
        assert_eq!(reports[128][4], 127);
        let mut r = Reassembler::default();
        let mut done = None;
        for report in &reports {
            if let Fed::Complete(m) = r.feed(report) {
                done = Some(m);
            }
        }
        assert_eq!(done.map(|m| m.data), Some(data));
    }

    #[test]
    fn auth_data_layout() {
        let rp_hash = Sha256::digest(b"example.org");
        let plain = auth_data("example.org", flags::UP, 0x0102_0304, None);
        assert_eq!(plain.len(), 37);
        assert_eq!(&plain[..32], rp_hash.as_slice());
        assert_eq!(plain[32], flags::UP);
        assert_eq!(&plain[33..37], &[1, 2, 3, 4]);

        let key = KeyPair::generate(COSE_ES256);
        let cose = to_cbor(&key.cose_public_key()).expect("encode a COSE key");
        let id = [0x11u8; 32];
        let attested = auth_data("example.org", flags::UP | flags::AT, 7, Some((&id, &cose)));
        assert_eq!(&attested[..32], rp_hash.as_slice());
        assert_eq!(attested[32], 0x41);
        assert_eq!(&attested[33..37], &[0, 0, 0, 7]);
        assert_eq!(&attested[37..53], &SoftKey::AAGUID);
        assert_eq!(&attested[53..55], &[0, 32]);
        assert_eq!(&attested[55..87], &id);
        assert_eq!(&attested[87..], cose.as_slice());
    }

    /// libfido2 rejects maps whose keys are not in CTAP2 canonical order
    /// or not minimally encoded; ciborium writes maps as built.
    #[test]
    fn cose_keys_are_canonical_cbor() {
        let es256 = KeyPair::generate(COSE_ES256);
        let raw = es256.raw_public_key();
        let cbor = to_cbor(&es256.cose_public_key()).expect("encode");
        let mut want = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        want.extend_from_slice(&raw[..32]);
        want.extend_from_slice(&[0x22, 0x58, 0x20]);
        want.extend_from_slice(&raw[32..]);
        assert_eq!(cbor, want);

        let eddsa = KeyPair::generate(COSE_EDDSA);
        let raw = eddsa.raw_public_key();
        let cbor = to_cbor(&eddsa.cose_public_key()).expect("encode");
        let mut want = vec![0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20];
        want.extend_from_slice(&raw);
        assert_eq!(cbor, want);
    }

    #[test]
    fn signatures_verify() {
        use ed25519_dalek::Verifier as _;
        let msg = b"authenticator data and client data hash";
        let es256 = KeyPair::generate(COSE_ES256);
        let sig = es256.sign(msg);
        let KeyPair::Es256(k) = &es256 else {
            unreachable!()
        };
        let sig = p256::ecdsa::Signature::from_der(&sig).expect("DER signature");
        k.verifying_key().verify(msg, &sig).expect("ES256 verifies");

        let eddsa = KeyPair::generate(COSE_EDDSA);
        let sig = eddsa.sign(msg);
        let KeyPair::EdDsa(k) = &eddsa else {
            unreachable!()
        };
        let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
        k.verifying_key().verify(msg, &sig).expect("EdDSA verifies");
    }

    #[test]
    fn counter_back_reports_lower_counts() {
        let mut s = State::default();
        assert_eq!(s.next_count(Behaviour::Normal), 1);
        s.counter = 20;
        s.last_sent = 20;
        assert_eq!(s.next_count(Behaviour::CounterBack), 15);
        assert_eq!(s.next_count(Behaviour::CounterBack), 10);
        assert_eq!(s.next_count(Behaviour::Normal), 23);
        s.last_sent = 3;
        assert_eq!(s.next_count(Behaviour::CounterBack), 0);
    }
}
