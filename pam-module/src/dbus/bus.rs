//! [`Daemon`] over a private D-Bus connection of the module's own: a Unix
//! socket, the SASL `EXTERNAL` handshake, then the `org.twofactor.Login1`
//! calls, synchronously, with the marshalling of [`super::wire`].
//!
//! Two paths, the same messages:
//! - the daemon's own login socket (`/run/twofactor/login`, `socket=`),
//!   peer to peer: no bus, no `Hello`. Before anything is sent, the
//!   kernel's credentials of the process serving it (`SO_PEERCRED`) must
//!   be root's (or those of the process the module runs in, which could do
//!   anything the module does): anyone else could be a fake daemon;
//! - the system bus (`bus=`), when the socket is missing (no file, or no
//!   one listening: a daemon that is not running, which the bus can
//!   start). A socket that is there but refuses the handshake or does not
//!   answer is not skipped: that is [`DaemonError::Unavailable`], as a
//!   silent bus is.
//!
//! No thread, no async runtime, and no shared library
//! beyond libc and libpam in the host process (sshd, su, sudo, a screen
//! locker). docs/performance.md says why libdbus went: loading it, with
//! libsystemd and its compression and crypto libraries, cost more per
//! login than everything else the module did.
//!
//! The handshake is pipelined, as sd-bus does: the authentication lines,
//! `BEGIN`, `Hello` and the first call go out in one write, and the bus
//! answers them in order, so a login waits for the bus once per call.
//!
//! The address is the `bus=` argument or the fixed system bus socket. It is
//! never taken from the environment (`DBUS_SYSTEM_BUS_ADDRESS`): `su` and
//! `sudo` run the module with the user's environment, and a user who could
//! choose the bus could run a fake daemon that says "accept". The bus
//! authenticates the connection by the socket's peer credentials (an empty
//! `EXTERNAL` response): the module claims no identity of its own.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use twofactor_proto::names::{detail, login, BUS_NAME, LOGIN_INTERFACE, OBJECT_PATH};
use twofactor_proto::signature::login as sig;
use twofactor_proto::Step;
use zeroize::Zeroize;

use super::wire::{self, Call, Message, Reader, WireError, Writer};
use super::{classify, Daemon, DaemonError, LoginRequest};

/// What the module writes before its first message: the credentials byte,
/// `EXTERNAL` with an empty response (the bus reads the peer credentials
/// of the socket), then `BEGIN`.
const AUTH: &[u8] = b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n";

/// The longest line the bus may send during authentication.
const MAX_AUTH_LINE: usize = 512;

/// Serial of `Hello`, the first message.
const HELLO_SERIAL: u32 = 1;

/// `org.twofactor.Login1` of `twofactord`, on its login socket or on one
/// bus.
pub struct BusDaemon {
    /// The login socket, tried first; None: the bus only.
    socket: Option<PathBuf>,
    address: String,
    timeout: Duration,
    connection: Option<Connection>,
}

impl BusDaemon {
    /// Does not connect yet; the first call does: to the login socket at
    /// `socket` if there is one, else to the bus at `address`.
    pub fn new(socket: Option<&Path>, address: &str, timeout: Duration) -> Self {
        BusDaemon {
            socket: socket.map(Path::to_path_buf),
            address: address.to_string(),
            timeout,
            connection: None,
        }
    }

    /// Over a stream that is already connected to something playing the
    /// bus (one end of a socket pair): the handshake and `Hello` are
    /// written at once, as after a connect. For tests and fuzzing: after
    /// a failed call the next one finds no bus (there is no address to
    /// connect to again).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn over(stream: UnixStream, timeout: Duration) -> Result<Self, DaemonError> {
        let connection = Connection::start(stream, Route::Bus);
        Ok(BusDaemon {
            socket: None,
            address: "unix:path=/nonexistent/twofactor-stream".into(),
            timeout,
            connection: Some(connection),
        })
    }

    /// Sends `member(body)` and waits for its reply, connecting first if
    /// this is the first call; the whole within the timeout.
    fn call(
        &mut self,
        member: &str,
        signature: &str,
        body: &mut Writer,
    ) -> Result<Message, DaemonError> {
        let deadline = Instant::now() + self.timeout;
        if self.connection.is_none() {
            self.connection = Some(Connection::open(
                self.socket.as_deref(),
                &self.address,
                deadline,
            )?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(DaemonError::Unavailable("no connection".into()));
        };
        let result = connection.call(&login_call(member, signature), body, deadline);
        body.wipe();
        if result.is_err() {
            // A connection that failed a call (timed out, half-read) is not
            // used again.
            self.connection = None;
        }
        let reply = result?;
        if reply.kind == wire::ERROR {
            return Err(classify(
                reply.error_name.as_deref(),
                reply.error_message().as_deref(),
            ));
        }
        Ok(reply)
    }
}

impl Daemon for BusDaemon {
    fn begin(&mut self, r: &LoginRequest) -> Result<(String, Step), DaemonError> {
        let details = [
            (detail::USER, &r.user),
            (detail::SERVICE, &r.service),
            (detail::RHOST, &r.rhost),
            (detail::TTY, &r.tty),
            (detail::SSH_AUTH_INFO, &r.ssh_auth_info),
        ];
        for (key, value) in details {
            no_nul(value)?;
            let limit = if key == detail::SSH_AUTH_INFO {
                detail::MAX_SSH_AUTH_INFO_BYTES
            } else {
                detail::MAX_VALUE_BYTES
            };
            if value.len() > limit {
                // The daemon refuses it too: not worth a call.
                return Err(DaemonError::Failed(format!(
                    "{key} is longer than the {limit} bytes the daemon accepts"
                )));
            }
        }
        let keys = r.security_keys.then_some((detail::SECURITY_KEYS, "1"));
        let report = Some((detail::COMMIT_REPORT, "1"));
        let mut body = Writer::new();
        body.array(8, |w| {
            let details = details.iter().map(|(k, v)| (*k, v.as_str()));
            for (key, value) in details.chain(keys).chain(report) {
                w.structure(|w| {
                    w.string(key);
                    w.string_variant(value);
                });
            }
        });
        let reply = self.call(login::BEGIN, sig::BEGIN_IN, &mut body)?;
        read_begin_reply(&reply)
    }

    fn answer(&mut self, session: &str, answer: &[u8]) -> Result<Step, DaemonError> {
        no_nul(session)?;
        // The body holds the answer: `call` wipes it once sent; it is
        // allocated once, at its final size.
        let mut body = Writer::with_capacity(session.len() + answer.len() + 16);
        body.string(session);
        body.bytes(answer);
        let reply = self.call(login::ANSWER, sig::ANSWER_IN, &mut body)?;
        read_answer_reply(&reply)
    }

    fn cancel(&mut self, session: &str) -> Result<(), DaemonError> {
        no_nul(session)?;
        let mut body = Writer::new();
        body.string(session);
        self.call(login::CANCEL, sig::CANCEL_IN, &mut body)
            .map(|_| ())
    }

    fn commit(&mut self, session: &str) -> Result<Step, DaemonError> {
        no_nul(session)?;
        let mut body = Writer::new();
        body.string(session);
        let reply = self.call(login::COMMIT, sig::COMMIT_IN, &mut body)?;
        read_commit_reply(&reply)
    }

    /// On the login socket, `Commit` goes out with `NO_REPLY_EXPECTED` and
    /// nothing is read: the daemon does it before it reads the end of the
    /// connection (one call at a time, in order). On a bus the reply is
    /// still waited for (and not read): the bus tells the daemon that the
    /// connection ended by a signal of its own, which could overtake the
    /// call.
    fn report(&mut self, session: &str) -> Result<(), DaemonError> {
        no_nul(session)?;
        let mut body = Writer::new();
        body.string(session);
        let on_socket = self
            .connection
            .as_ref()
            .is_some_and(|c| c.route == Route::Socket);
        if !on_socket {
            return self
                .call(login::COMMIT, sig::COMMIT_IN, &mut body)
                .map(|_| ());
        }
        let call = login_call(login::COMMIT, sig::COMMIT_IN);
        let deadline = Instant::now() + self.timeout;
        let sent = match self.connection.as_mut() {
            Some(c) => c.send_unanswered(&call, &body, deadline),
            None => Err(DaemonError::Unavailable("no connection".into())),
        };
        if sent.is_err() {
            self.connection = None;
        }
        sent
    }
}

/// A call of `org.twofactor.Login1` on the daemon's object.
fn login_call<'a>(member: &'a str, signature: &'a str) -> Call<'a> {
    Call {
        destination: BUS_NAME,
        path: OBJECT_PATH,
        interface: LOGIN_INTERFACE,
        member,
        signature,
    }
}

/// The session and first step of a method return to `Begin`.
pub fn read_begin_reply(reply: &Message) -> Result<(String, Step), DaemonError> {
    read_reply(reply, sig::BEGIN_OUT, login::BEGIN, |r| {
        let session = r.string()?;
        Ok((session, read_step(r)?))
    })
}

/// The step of a method return to `Answer`.
pub fn read_answer_reply(reply: &Message) -> Result<Step, DaemonError> {
    read_reply(reply, sig::ANSWER_OUT, login::ANSWER, read_step)
}

/// The step of a method return to `Commit`.
pub fn read_commit_reply(reply: &Message) -> Result<Step, DaemonError> {
    read_reply(reply, sig::COMMIT_OUT, login::COMMIT, read_step)
}

/// What the path to the daemon itself costs a login, for the benchmark's
/// floor (`bus-floor`, docs/performance.md): a new connection's first call
/// (handshake, on a bus `Hello`, and the call, as a login's `Begin`) and a
/// later call on it (as `Answer`), each `org.freedesktop.DBus.Peer.Ping`
/// to twofactord, which its D-Bus library answers without any login rule.
/// On the login socket at `socket` when given and there, else on the bus
/// at `address`, as a login connects. Returns the two times.
pub fn ping_twice(
    socket: Option<&Path>,
    address: &str,
    timeout: Duration,
) -> Result<(Duration, Duration), DaemonError> {
    let ping = Call {
        destination: BUS_NAME,
        path: OBJECT_PATH,
        interface: "org.freedesktop.DBus.Peer",
        member: "Ping",
        signature: "",
    };
    let start = Instant::now();
    let deadline = start + timeout;
    let mut connection = Connection::open(socket, address, deadline)?;
    let ping_once =
        |connection: &mut Connection| match connection.call(&ping, &Writer::new(), deadline)? {
            reply if reply.kind == wire::ERROR => Err(classify(
                reply.error_name.as_deref(),
                reply.error_message().as_deref(),
            )),
            _ => Ok(()),
        };
    ping_once(&mut connection)?;
    let first = start.elapsed();
    let again = Instant::now();
    ping_once(&mut connection)?;
    Ok((first, again.elapsed()))
}

/// Reads a reply body of `signature` with `read`, to its end.
fn read_reply<T>(
    reply: &Message,
    signature: &str,
    member: &str,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, WireError>,
) -> Result<T, DaemonError> {
    let unexpected =
        |e: WireError| DaemonError::Failed(format!("unexpected reply to {member}: {e}"));
    let mut r = reply.body(signature).map_err(unexpected)?;
    let value = read(&mut r).map_err(unexpected)?;
    r.finish().map_err(unexpected)?;
    Ok(value)
}

/// A step, `(a(us)us)`.
fn read_step(r: &mut Reader<'_>) -> Result<Step, WireError> {
    wire::read_step(r).map(Step::from_wire)
}

/// D-Bus strings cannot carry NUL.
fn no_nul(value: &str) -> Result<(), DaemonError> {
    if value.contains('\0') {
        Err(DaemonError::Failed(
            "a value for the daemon contains NUL".into(),
        ))
    } else {
        Ok(())
    }
}

/// The socket path of a `unix:path=…` address (the only kind the system
/// bus uses); other keys (`guid=`) are ignored, values are %-unescaped.
fn socket_path(address: &str) -> Result<PathBuf, DaemonError> {
    let unsupported = || {
        DaemonError::Failed(format!(
            "unsupported bus address {address:?} (use unix:path=…)"
        ))
    };
    // Several addresses separated by ';': the first is used.
    let first = address.split(';').next().unwrap_or_default();
    let rest = first.strip_prefix("unix:").ok_or_else(unsupported)?;
    for pair in rest.split(',') {
        if let Some(value) = pair.strip_prefix("path=") {
            return unescape(value).map(PathBuf::from).ok_or_else(unsupported);
        }
    }
    Err(unsupported())
}

/// D-Bus address values: bytes outside a safe set are `%XX`.
fn unescape(value: &str) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    if out.is_empty() || out.contains(&0) {
        return None;
    }
    Some(std::ffi::OsString::from_vec(out))
}

/// Which way a connection reaches the daemon.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    /// The daemon's login socket, peer to peer: no `Hello`.
    Socket,
    /// A bus: `Hello` first, then calls to the daemon's bus name.
    Bus,
}

/// One connection to the daemon, on its socket or through a bus.
struct Connection {
    stream: UnixStream,
    route: Route,
    /// What goes out in front of the first call, in the same write: the
    /// handshake (and on a bus, `Hello`).
    prefix: Vec<u8>,
    /// Bytes read and not yet used.
    buffer: Vec<u8>,
    /// The server's authentication answer has been read.
    authenticated: bool,
    /// `Hello` has been answered (a socket has none to answer).
    registered: bool,
    /// Bytes still to read past (an oversized signal).
    skip: usize,
    next_serial: u32,
}

/// Connects to the Unix socket at `path` within the deadline.
fn connect(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    let addr = SockAddr::unix(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // connect(2) on a Unix socket waits for room in the listener's
    // backlog for at most the send timeout (at least 1 ms: a zero
    // timeval would mean no limit).
    let wait = left(deadline)?.max(Duration::from_millis(1));
    socket.set_write_timeout(Some(wait))?;
    socket.connect(&addr)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

/// Whether a connect error means nothing is there: no socket file, or no
/// one listening on it.
fn nothing_there(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// The uid of the process serving `stream` (`SO_PEERCRED`, taken by the
/// kernel when it accepted the connection).
fn server_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` holds the
    // size of `cred`, as SO_PEERCRED requires; the descriptor is open
    // (borrowed from `stream` for this call only).
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The uids a login socket's server may run as: root, or the user the
/// module's process runs as (a server of that user's could do nothing
/// the process itself cannot: a test, a user's own screen locker).
fn trusted_server(uid: u32) -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

impl Connection {
    /// Connects to the daemon: on the login socket `socket` when it is
    /// there, else on the bus at `address`. Nothing is written yet: the
    /// handshake goes out with the first call, whose reply is read with
    /// the server's answers. Nothing at either is
    /// [`DaemonError::Absent`]; a socket served by another user is
    /// [`DaemonError::Failed`]; a server whose backlog is full until the
    /// deadline is [`DaemonError::Unavailable`].
    fn open(
        socket: Option<&Path>,
        address: &str,
        deadline: Instant,
    ) -> Result<Connection, DaemonError> {
        if let Some(path) = socket {
            match connect(path, deadline) {
                Ok(stream) => {
                    let uid = server_uid(&stream).map_err(|e| {
                        DaemonError::Unavailable(format!(
                            "cannot read who serves {}: {e}",
                            path.display()
                        ))
                    })?;
                    if !trusted_server(uid) {
                        return Err(DaemonError::Failed(format!(
                            "{} is served by uid {uid}, not by root: not asked",
                            path.display()
                        )));
                    }
                    return Ok(Connection::start(stream, Route::Socket));
                }
                Err(e) if nothing_there(&e) => {}
                Err(e) => {
                    return Err(DaemonError::Unavailable(format!(
                        "cannot connect to {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        let path = socket_path(address)?;
        let stream = connect(&path, deadline).map_err(|e| {
            let why = format!("cannot connect to {address}: {e}");
            if nothing_there(&e) {
                DaemonError::Absent(why)
            } else {
                DaemonError::Unavailable(why)
            }
        })?;
        Ok(Connection::start(stream, Route::Bus))
    }

    /// A connection on a connected stream, its handshake (and on a bus,
    /// `Hello`) ready to go out with the first call.
    fn start(stream: UnixStream, route: Route) -> Connection {
        let mut prefix = AUTH.to_vec();
        if route == Route::Bus {
            prefix.extend(
                Call {
                    destination: "org.freedesktop.DBus",
                    path: "/org/freedesktop/DBus",
                    interface: "org.freedesktop.DBus",
                    member: "Hello",
                    signature: "",
                }
                .encode(HELLO_SERIAL, &[]),
            );
        }
        Connection {
            stream,
            route,
            prefix,
            buffer: Vec::new(),
            authenticated: false,
            registered: route == Route::Socket,
            skip: 0,
            next_serial: HELLO_SERIAL + 1,
        }
    }

    fn call(
        &mut self,
        call: &Call<'_>,
        body: &Writer,
        deadline: Instant,
    ) -> Result<Message, DaemonError> {
        let serial = self.take_serial();
        let mut message = call.encode(serial, body.as_bytes());
        if !self.prefix.is_empty() {
            let mut first = std::mem::take(&mut self.prefix);
            first.extend_from_slice(&message);
            message.zeroize();
            message = first;
        }
        let written = self.write(&message, deadline);
        message.zeroize();
        written?;
        if !self.authenticated {
            self.read_auth(deadline)?;
        }
        loop {
            let reply = self.read_message(deadline)?;
            if !reply.is_reply() {
                // A signal (NameAcquired, or one any user sent this
                // connection, REPLY_SERIAL field or not): never an answer.
                continue;
            }
            match reply.reply_serial {
                Some(HELLO_SERIAL) if !self.registered => {
                    if reply.kind == wire::ERROR {
                        return Err(DaemonError::Unavailable(format!(
                            "the bus refused Hello: {}",
                            reply.error_name.as_deref().unwrap_or("(no error name)")
                        )));
                    }
                    self.registered = true;
                }
                Some(s) if s == serial => return Ok(reply),
                // A reply to nothing we are waiting for.
                _ => {}
            }
        }
    }

    /// The serial of the next message (never 0, never `Hello`'s).
    fn take_serial(&mut self) -> u32 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(HELLO_SERIAL + 1);
        serial
    }

    /// Sends `call` with `NO_REPLY_EXPECTED`, on a connection whose
    /// handshake is done: nothing is read back (the daemon sends nothing).
    fn send_unanswered(
        &mut self,
        call: &Call<'_>,
        body: &Writer,
        deadline: Instant,
    ) -> Result<(), DaemonError> {
        if !self.prefix.is_empty() || !self.authenticated {
            return Err(DaemonError::Unavailable(
                "no call answered on this connection yet".into(),
            ));
        }
        let serial = self.take_serial();
        let mut message = call.encode_with(wire::NO_REPLY_EXPECTED, serial, body.as_bytes());
        let written = self.write(&message, deadline);
        message.zeroize();
        written
    }

    fn write(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), DaemonError> {
        let lost = |e: io::Error| DaemonError::Unavailable(format!("cannot write to the bus: {e}"));
        self.stream
            .set_write_timeout(Some(left(deadline).map_err(lost)?))
            .map_err(lost)?;
        self.stream.write_all(bytes).map_err(lost)
    }

    /// Reads more bytes into the buffer, waiting until the deadline.
    fn fill(&mut self, deadline: Instant) -> Result<(), DaemonError> {
        let unavailable = |why: String| DaemonError::Unavailable(why);
        let wait =
            left(deadline).map_err(|_| unavailable("no answer from the bus in time".into()))?;
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| unavailable(format!("cannot read from the bus: {e}")))?;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(unavailable("the bus closed the connection".into())),
                Ok(n) => {
                    self.buffer
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(unavailable("no answer from the bus in time".into()))
                }
                Err(e) => return Err(unavailable(format!("cannot read from the bus: {e}"))),
            }
        }
    }

    /// Reads the bus's answers to the authentication lines: `DATA` (the
    /// empty challenge of `EXTERNAL`), then `OK <guid>`. Anything else
    /// (`REJECTED`, `ERROR`) means the bus did not accept the connection.
    fn read_auth(&mut self, deadline: Instant) -> Result<(), DaemonError> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                if line == b"DATA" {
                    continue;
                }
                if line.starts_with(b"OK ") {
                    self.authenticated = true;
                    return Ok(());
                }
                let shown = String::from_utf8_lossy(&line)
                    .chars()
                    .take(80)
                    .collect::<String>();
                return Err(DaemonError::Unavailable(format!(
                    "the bus refused the connection: {shown}"
                )));
            }
            if self.buffer.len() > MAX_AUTH_LINE {
                return Err(DaemonError::Unavailable(
                    "the bus sent an overlong authentication line".into(),
                ));
            }
            self.fill(deadline)?;
        }
    }

    /// Reads one whole message. A signal over [`wire::MAX_MESSAGE_BYTES`]
    /// (any user may send one to this connection) is read past without
    /// being kept; any other message that large is an error.
    fn read_message(&mut self, deadline: Instant) -> Result<Message, DaemonError> {
        let malformed = |e: WireError| DaemonError::Unavailable(e.0);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buffer.len());
                self.buffer.drain(..n);
                self.skip -= n;
            }
            if self.skip == 0 {
                if let Some(frame) = wire::frame(&self.buffer).map_err(malformed)? {
                    if frame.total > wire::MAX_MESSAGE_BYTES {
                        if frame.kind != wire::SIGNAL {
                            return Err(DaemonError::Unavailable(
                                "a message from the bus is too large".into(),
                            ));
                        }
                        self.skip = frame.total;
                        continue;
                    }
                    if self.buffer.len() >= frame.total {
                        let bytes: Vec<u8> = self.buffer.drain(..frame.total).collect();
                        return Message::parse(&bytes).map_err(malformed);
                    }
                }
            }
            self.fill(deadline)?;
        }
    }
}

/// Time left until `deadline`; none left is a timeout.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "no time left"))
    } else {
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LoginRequest {
        LoginRequest {
            user: "alice".into(),
            service: "test".into(),
            rhost: String::new(),
            tty: String::new(),
            ssh_auth_info: String::new(),
            security_keys: false,
        }
    }

    #[test]
    fn no_bus_is_absent() {
        let mut d = BusDaemon::new(
            None,
            "unix:path=/nonexistent/twofactor-test",
            Duration::from_secs(1),
        );
        assert!(matches!(d.begin(&request()), Err(DaemonError::Absent(_))));
    }

    #[test]
    fn silent_bus_times_out_within_the_timeout() {
        // A socket that accepts connections (into its backlog) but never
        // answers: the call gives up after the timeout.
        let dir = std::env::temp_dir().join(format!("pam-twofactor-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(std::fs::create_dir(&dir).is_ok());
        let sock = dir.join("bus");
        let listener = std::os::unix::net::UnixListener::bind(&sock);
        assert!(listener.is_ok());
        let mut d = BusDaemon::new(
            None,
            &format!("unix:path={}", sock.display()),
            Duration::from_secs(1),
        );
        let started = std::time::Instant::now();
        let result = d.begin(&request());
        let took = started.elapsed();
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(result, Err(DaemonError::Unavailable(_))),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn a_bus_that_rejects_authentication_is_unavailable() {
        let result = begin_against("rejects", b"REJECTED EXTERNAL\r\n".to_vec());
        assert!(
            matches!(&result, Err(DaemonError::Unavailable(why)) if why.contains("REJECTED")),
            "{result:?}"
        );
    }

    /// What a bus that accepts the handshake says: `DATA`, `OK`, the reply
    /// to Hello, then `messages`.
    fn handshake_then(messages: Vec<Vec<u8>>) -> Vec<u8> {
        let mut hello = Writer::new();
        hello.string(":1.7");
        let mut out = b"DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n".to_vec();
        out.extend(wire::encode_reply(
            wire::METHOD_RETURN,
            1,
            &[],
            "s",
            &hello.into_bytes(),
        ));
        for m in messages {
            out.extend(m);
        }
        out
    }

    /// `Begin` against a bus played by the test: it reads what the module
    /// sends first, then writes `bytes`.
    fn begin_against(name: &str, bytes: Vec<u8>) -> Result<(String, Step), DaemonError> {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("pam-twofactor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(std::fs::create_dir(&dir).is_ok());
        let sock_path = dir.join("bus");
        let Ok(listener) = std::os::unix::net::UnixListener::bind(&sock_path) else {
            panic!("bind");
        };
        let server = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut sink = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut sink);
                let _ = s.write_all(&bytes);
                let _ = std::io::Read::read(&mut s, &mut sink);
            }
        });
        let mut d = BusDaemon::new(
            None,
            &format!("unix:path={}", sock_path.display()),
            Duration::from_secs(5),
        );
        let result = d.begin(&request());
        drop(d);
        let _ = server.join();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn accept_step_body() -> Vec<u8> {
        let mut b = Writer::new();
        b.string("session");
        b.structure(|w| {
            w.array(8, |_| {});
            w.u32(Step::new(twofactor_proto::Action::Accept).to_wire().action);
            w.string("");
        });
        b.into_bytes()
    }

    #[test]
    fn a_signal_posing_as_the_reply_is_not_the_answer() {
        // Any user may send this connection a signal, with a REPLY_SERIAL
        // field naming the module's call (serial 2: Begin) and the body of
        // an accepting step. Only the bus's real reply counts: here an
        // error.
        let forged = wire::encode_reply(wire::SIGNAL, 2, &[], sig::BEGIN_OUT, &accept_step_body());
        let mut message = Writer::new();
        message.string("the daemon failed");
        let real = wire::encode_reply(
            wire::ERROR,
            2,
            &[(4, "s", "org.twofactor.Error.Internal")],
            "s",
            &message.into_bytes(),
        );
        let result = begin_against("forged", handshake_then(vec![forged, real]));
        assert!(
            matches!(&result, Err(DaemonError::Failed(why)) if why.contains("Internal")),
            "{result:?}"
        );
    }

    #[test]
    fn an_oversized_signal_is_read_past() {
        // 2 MiB of signal (over the 1 MiB the module keeps), then the reply.
        let mut big = Writer::new();
        big.bytes(&vec![0x5a; 2 << 20]);
        let signal = wire::encode_reply(wire::SIGNAL, 0, &[], "ay", &big.into_bytes());
        let real = wire::encode_reply(
            wire::METHOD_RETURN,
            2,
            &[],
            sig::BEGIN_OUT,
            &accept_step_body(),
        );
        let result = begin_against("oversized", handshake_then(vec![signal, real]));
        assert!(
            matches!(&result, Ok((_, step)) if step.action == twofactor_proto::Action::Accept),
            "{result:?}"
        );
    }

    #[test]
    fn a_signal_longer_than_any_bus_sends_ends_the_call_at_once() {
        // Regression: a signal whose header claimed more than the
        // specification's 128 MiB was read past, so a call waited for
        // the whole timeout on a stream that could never be read in step
        // again. Now the stream is refused when the header is read.
        let mut signal = wire::encode_reply(wire::SIGNAL, 0, &[], "s", &[1, 0, 0, 0, b'x', 0]);
        signal[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let (ours, mut theirs) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        assert!(theirs.write_all(&handshake_then(vec![signal])).is_ok());
        // The other end stays open: only the refusal ends the call early.
        let mut d = BusDaemon::over(ours, Duration::from_secs(3)).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let result = d.begin(&request());
        assert!(
            matches!(&result, Err(DaemonError::Unavailable(why)) if why.contains("specification")),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(theirs);
    }

    #[test]
    fn the_real_reply_is_read() {
        // The same bus, answering with the accepting step as a method
        // return: the module reads it (so the test above fails for the
        // right reason).
        let real = wire::encode_reply(
            wire::METHOD_RETURN,
            2,
            &[],
            sig::BEGIN_OUT,
            &accept_step_body(),
        );
        let result = begin_against("real", handshake_then(vec![real]));
        assert!(
            matches!(&result, Ok((session, step)) if session == "session"
                && step.action == twofactor_proto::Action::Accept),
            "{result:?}"
        );
    }

    #[test]
    fn details_over_the_contracts_limits_are_refused_before_connecting() {
        // No bus at this address: a refusal that tried to connect would be
        // Absent, not Failed.
        let mut d = BusDaemon::new(
            None,
            "unix:path=/nonexistent/twofactor-test",
            Duration::from_secs(1),
        );
        let long = |n: usize| "x".repeat(n);
        for (r, what) in [
            (
                LoginRequest {
                    user: long(detail::MAX_VALUE_BYTES + 1),
                    ..request()
                },
                detail::USER,
            ),
            (
                LoginRequest {
                    rhost: long(detail::MAX_VALUE_BYTES + 1),
                    ..request()
                },
                detail::RHOST,
            ),
            (
                LoginRequest {
                    ssh_auth_info: long(detail::MAX_SSH_AUTH_INFO_BYTES + 1),
                    ..request()
                },
                detail::SSH_AUTH_INFO,
            ),
        ] {
            let result = d.begin(&r);
            assert!(
                matches!(&result, Err(DaemonError::Failed(why)) if why.starts_with(what)),
                "{what}: {result:?}"
            );
        }
        // At the limits the call is made (and finds no bus).
        let at_limits = LoginRequest {
            user: long(detail::MAX_VALUE_BYTES),
            service: long(detail::MAX_VALUE_BYTES),
            rhost: long(detail::MAX_VALUE_BYTES),
            tty: long(detail::MAX_VALUE_BYTES),
            ssh_auth_info: long(detail::MAX_SSH_AUTH_INFO_BYTES),
            security_keys: true,
        };
        assert!(matches!(d.begin(&at_limits), Err(DaemonError::Absent(_))));
    }

    #[test]
    fn nul_is_refused_before_sending() {
        assert!(matches!(no_nul("a\0b"), Err(DaemonError::Failed(_))));
        assert_eq!(no_nul("ab"), Ok(()));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            socket_path("unix:path=/run/dbus/system_bus_socket"),
            Ok(PathBuf::from("/run/dbus/system_bus_socket"))
        );
        assert_eq!(
            socket_path("unix:path=/tmp/a%20b,guid=0123;unix:path=/x"),
            Ok(PathBuf::from("/tmp/a b"))
        );
        for bad in [
            "tcp:host=localhost,port=1",
            "unix:abstract=/x",
            "unix:path=",
            "unix:path=/a%2",
            "unix:path=/a%00b",
        ] {
            assert!(
                matches!(socket_path(bad), Err(DaemonError::Failed(_))),
                "{bad}"
            );
        }
    }
}
