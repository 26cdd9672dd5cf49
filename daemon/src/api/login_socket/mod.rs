//! The login socket: `org.twofactor.Login1`, and only it, served peer to
//! peer on a Unix socket of the daemon's own (`/run/twofactor/login`), as
//! systemd serves `systemctl` on `/run/systemd/private`. The same
//! interface, the same messages as on the system bus, without dbus-daemon
//! forwarding each one: the module connects here first and uses the bus
//! only when this socket is missing.
//!
//! What dbus-daemon enforced for the bus, this layer enforces itself:
//! - who the caller is comes from the kernel (`SO_PEERCRED` at accept),
//!   and for a root caller the user it acts for from `/proc`
//!   ([`procfs::invoker_of`]);
//! - connections are limited in all, per user charged and for users
//!   together ([`admission`]);
//! - the authentication must end within [`AUTH_DEADLINE`] and a budget of
//!   bytes ([`handshake`]);
//! - no message over [`framing::MAX_MESSAGE_BYTES`], no file descriptors;
//! - one call at a time per connection: the next message is not read
//!   before the reply to the last is written (what a client sends ahead
//!   waits in its own socket buffer).
//!
//! Each connection is one task that reads a call, has the one [`Logins`]
//! do it for the connection's caller, and writes the reply ([`calls`]:
//! the module's own wire format, no zbus connection per login). When it
//! closes, its logins in progress are dropped
//! ([`Logins::connection_closed`], as a departure from the bus is).

pub mod admission;
pub mod calls;
pub mod framing;
mod handshake;

use std::sync::Arc;
use std::time::Duration;

use admission::Admission;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use twofactor_proto::wire::{self, Message};

use crate::adapters::procfs;
use crate::adapters::syslog::{Audit, Event};
use crate::api::login::LoginSteps;
use crate::services::Caller;

/// The time a connection has to authenticate (dbus-daemon's system bus
/// allows 5 s too).
pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
/// The most bytes one read takes from a connection.
const READ_BYTES: usize = 8 * 1024;
/// After the process ran out of descriptors, the wait before accepting
/// again (the connections that end meanwhile free some).
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// Serves `Login1` on `listener` until the task is aborted.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    logins: Arc<dyn LoginSteps>,
    audit: Arc<Audit>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let cannot = |e: std::io::Error| format!("cannot serve the login socket: {e}");
    listener.set_nonblocking(true).map_err(cannot)?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(cannot)?;
    let guid = zbus::Guid::generate();
    let admission = Arc::new(Admission::default());
    Ok(tokio::spawn(async move {
        let mut count: u64 = 0;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        audit.log(Event::Error {
                            context: "login-socket",
                            error: &format!("cannot accept a connection: {e}"),
                        });
                        tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
                    }
                    continue;
                }
            };
            count += 1;
            let Ok(cred) = stream.peer_cred() else {
                continue;
            };
            let uid = cred.uid();
            let invoker = match (uid, cred.pid()) {
                (0, Some(pid)) => u32::try_from(pid).ok().and_then(procfs::invoker_of),
                _ => None,
            };
            let caller = Caller {
                uid,
                connection: format!("@{count}"),
                invoker,
                on_host: None,
            };
            let slot = match admission.admit(caller.charged_user()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    audit.log(Event::ConnectionRefused {
                        uid,
                        user: caller.charged_user(),
                        why: refusal.reason(),
                    });
                    continue;
                }
            };
            let logins = logins.clone();
            let guid = guid.clone();
            tokio::spawn(async move {
                connection(stream, &caller, &logins, guid).await;
                logins.connection_closed(&caller.connection).await;
                drop(slot);
            });
        }
    }))
}

/// One connection, from the handshake to its end: a call read, done and
/// answered at a time, until the peer closes or sends what is not D-Bus.
async fn connection(
    mut stream: UnixStream,
    caller: &Caller,
    logins: &Arc<dyn LoginSteps>,
    guid: zbus::Guid<'static>,
) {
    let handshake = tokio::time::timeout(
        AUTH_DEADLINE,
        handshake::handshake(&mut stream, caller.uid, guid.as_str()),
    );
    let Ok(Ok(leftover)) = handshake.await else {
        return;
    };
    let mut messages = framing::Messages::new(leftover);
    let mut serial: u32 = 0;
    let mut chunk = vec![0u8; READ_BYTES];
    loop {
        let bytes = match messages.next_message() {
            Ok(Some(bytes)) => zeroize::Zeroizing::new(bytes),
            Ok(None) => match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    messages.extend(chunk.get(..n).unwrap_or_default());
                    continue;
                }
            },
            Err(_) => return,
        };
        // Not D-Bus past the header: the stream cannot be followed.
        let Ok(msg) = Message::parse(&bytes) else {
            return;
        };
        drop(bytes);
        if msg.kind != wire::METHOD_CALL {
            continue;
        }
        let outcome = match calls::read(&msg) {
            Ok(call) => calls::run(call, caller, logins).await,
            Err(refusal) => Err(refusal),
        };
        if msg.flags & wire::NO_REPLY_EXPECTED != 0 {
            continue;
        }
        serial = serial.checked_add(1).unwrap_or(1);
        let reply = match outcome {
            Ok(reply) => wire::method_return(serial, msg.serial, reply.signature, &reply.body),
            Err(refusal) => wire::error(serial, msg.serial, &refusal.name, &refusal.text),
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}
