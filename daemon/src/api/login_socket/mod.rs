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
//! - at most a few calls queued ([`MAX_QUEUED`]) and in progress
//!   ([`crate::api::bus::MAX_CALLS_PER_CONNECTION`]) per connection.
//!
//! Each connection gets its own zbus connection and its own interface
//! value, which holds the caller. When it closes, its logins in progress
//! are dropped ([`Logins::connection_closed`], as a departure from the bus
//! is).

pub mod admission;
pub mod framing;
mod handshake;

use std::sync::Arc;
use std::time::Duration;

use admission::Admission;
use tokio::net::UnixStream;
use twofactor_proto::names::OBJECT_PATH;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};

use crate::adapters::procfs;
use crate::adapters::syslog::{Audit, Event};
use crate::api::bus::{CallerSource, LoginInterface};
use crate::api::login::Logins;
use crate::services::Caller;

/// The time a connection has to authenticate (dbus-daemon's system bus
/// allows 5 s too).
pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
/// Messages zbus reads ahead of the calls in progress on one connection;
/// past it, the connection is not read until room is made.
pub const MAX_QUEUED: usize = 8;
/// After the process ran out of descriptors, the wait before accepting
/// again (the connections that end meanwhile free some).
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// Serves `Login1` on `listener` until the task is aborted.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    logins: Arc<Logins>,
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

/// One connection, from the handshake to its end.
async fn connection(
    mut stream: UnixStream,
    caller: &Caller,
    logins: &Arc<Logins>,
    guid: zbus::Guid<'static>,
) {
    let handshake = tokio::time::timeout(
        AUTH_DEADLINE,
        handshake::handshake(&mut stream, caller.uid, guid.as_str()),
    );
    let Ok(Ok(leftover)) = handshake.await else {
        return;
    };
    let (read, write) = stream.into_split();
    let split: BoxedSplit = Split::new(
        Box::new(framing::FramedRead::new(read, leftover)) as Box<dyn ReadHalf>,
        Box::new(framing::FramedWrite(write)) as Box<dyn WriteHalf>,
    );
    let built = async {
        zbus::connection::Builder::authenticated_socket(split, guid)?
            .p2p()
            .max_queued(MAX_QUEUED)
            .serve_at(
                OBJECT_PATH,
                LoginInterface {
                    logins: logins.clone(),
                    from: CallerSource::socket(caller.clone()),
                },
            )?
            .build()
            .await
    };
    if let Ok(conn) = built.await {
        conn.closed().await;
        let _ = conn.close().await;
    }
}
