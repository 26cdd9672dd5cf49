//! [`Daemon`] over libdbus: a private, synchronous connection to one bus
//! address, opened on the first call and closed when the value is dropped.
//!
//! The address is the `bus=` argument or the fixed system bus socket. It is
//! never taken from the environment (`DBUS_SYSTEM_BUS_ADDRESS`): `su` and
//! `sudo` run the module with the user's environment, and a user who could
//! choose the bus could run a fake daemon that says "accept".

use std::time::{Duration, Instant};

use dbus::channel::Channel;
use dbus::strings::{BusName, Interface, Member, Path};
use dbus::Message;
use std::collections::HashMap;

use dbus::arg::Variant;
use twofactor_proto::names::{detail, login, BUS_NAME, LOGIN_INTERFACE, OBJECT_PATH};
use twofactor_proto::{Step, WireStep};

use super::{classify, Daemon, DaemonError, LoginRequest};

/// The wire form of a step as the dbus crate reads it: `(a(us)us)`.
type RawStep = (Vec<(u32, String)>, u32, String);

/// `org.twofactor.Login1` of `twofactord` on one bus.
pub struct BusDaemon {
    address: String,
    timeout: Duration,
    channel: Option<Channel>,
}

impl BusDaemon {
    /// Does not connect yet; the first call does.
    pub fn new(address: &str, timeout: Duration) -> Self {
        BusDaemon {
            address: address.to_string(),
            timeout,
            channel: None,
        }
    }

    fn channel(&mut self) -> Result<&Channel, DaemonError> {
        if self.channel.is_none() {
            self.channel = Some(connect(&self.address, self.timeout)?);
        }
        self.channel
            .as_ref()
            .ok_or_else(|| DaemonError::Unavailable("no connection".into()))
    }

    fn call(&mut self, msg: Message) -> Result<Message, DaemonError> {
        let timeout = self.timeout;
        let channel = self.channel()?;
        channel
            .send_with_reply_and_block(msg, timeout)
            .map_err(|e| classify(e.name(), e.message()))
    }
}

impl Daemon for BusDaemon {
    fn begin(&mut self, r: &LoginRequest) -> Result<(String, Step), DaemonError> {
        for value in [&r.user, &r.service, &r.rhost, &r.tty, &r.ssh_auth_info] {
            no_nul(value)?;
        }
        let details: HashMap<&str, Variant<&str>> = [
            (detail::USER, r.user.as_str()),
            (detail::SERVICE, r.service.as_str()),
            (detail::RHOST, r.rhost.as_str()),
            (detail::TTY, r.tty.as_str()),
            (detail::SSH_AUTH_INFO, r.ssh_auth_info.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k, Variant(v)))
        .collect();
        let msg = method_call(login::BEGIN)?.append1(details);
        let reply = self.call(msg)?;
        let (session, step): (String, RawStep) = reply
            .read2()
            .map_err(|e| DaemonError::Failed(format!("unexpected reply to Begin: {e}")))?;
        Ok((session, to_step(step)))
    }

    fn answer(&mut self, session: &str, answer: &[u8]) -> Result<Step, DaemonError> {
        no_nul(session)?;
        // Note: libdbus keeps its own copy of the bytes in the message buffer
        // and frees it without wiping; the module's own copies are zeroized.
        let msg = method_call(login::ANSWER)?.append2(session, answer);
        let reply = self.call(msg)?;
        let step: RawStep = reply
            .read1()
            .map_err(|e| DaemonError::Failed(format!("unexpected reply to Answer: {e}")))?;
        Ok(to_step(step))
    }

    fn cancel(&mut self, session: &str) -> Result<(), DaemonError> {
        no_nul(session)?;
        let msg = method_call(login::CANCEL)?.append1(session);
        self.call(msg).map(|_| ())
    }

    fn commit(&mut self, session: &str) -> Result<Step, DaemonError> {
        no_nul(session)?;
        let msg = method_call(login::COMMIT)?.append1(session);
        let reply = self.call(msg)?;
        let step: RawStep = reply
            .read1()
            .map_err(|e| DaemonError::Failed(format!("unexpected reply to Commit: {e}")))?;
        Ok(to_step(step))
    }
}

fn to_step((messages, action, prompt): RawStep) -> Step {
    Step::from_wire(WireStep {
        messages,
        action,
        prompt,
    })
}

/// D-Bus strings cannot carry NUL; libdbus would cut them short silently.
fn no_nul(value: &str) -> Result<(), DaemonError> {
    if value.contains('\0') {
        Err(DaemonError::Failed(
            "a value for the daemon contains NUL".into(),
        ))
    } else {
        Ok(())
    }
}

fn method_call(member: &str) -> Result<Message, DaemonError> {
    let failed = |e: String| DaemonError::Failed(format!("cannot build {member} call: {e}"));
    let dest = BusName::new(BUS_NAME).map_err(failed)?;
    let path = Path::new(OBJECT_PATH).map_err(failed)?;
    let iface = Interface::new(LOGIN_INTERFACE).map_err(failed)?;
    let name = Member::new(member).map_err(failed)?;
    Message::new_method_call(dest, path, iface, name).map_err(failed)
}

/// Opens a private connection to `address` and says Hello to the bus, all
/// within `timeout`. A socket that does not exist or refuses connections is
/// [`DaemonError::Absent`]; a bus that does not finish the handshake in time
/// is [`DaemonError::Unavailable`] (it may be stopped on purpose).
///
/// libdbus' own blocking calls (`dbus_bus_register`, and any blocking call
/// made before authentication has finished) poll without a time limit while
/// the connection authenticates, so a bus that accepts the connection but
/// never answers would hang the login forever. Hello is therefore queued and
/// the connection driven with `read_write`, each poll bounded by the time
/// left.
fn connect(address: &str, timeout: Duration) -> Result<Channel, DaemonError> {
    let unavailable = |e: dbus::Error| match classify(e.name(), e.message()) {
        DaemonError::Absent(why) => {
            DaemonError::Absent(format!("cannot connect to {address}: {why}"))
        }
        DaemonError::Unavailable(why) | DaemonError::Failed(why) => {
            DaemonError::Unavailable(format!("cannot connect to {address}: {why}"))
        }
    };
    let lost = |why: &str| DaemonError::Unavailable(format!("cannot connect to {address}: {why}"));

    let deadline = Instant::now() + timeout;
    let channel = Channel::open_private(address).map_err(unavailable)?;
    let hello =
        hello_call().map_err(|e| DaemonError::Failed(format!("cannot build Hello: {e}")))?;
    let serial = channel
        .send(hello)
        .map_err(|()| lost("cannot queue Hello"))?;
    loop {
        while let Some(mut reply) = channel.pop_message() {
            if reply.get_reply_serial() != Some(serial) {
                continue; // e.g. the NameAcquired signal
            }
            return match reply.as_result() {
                Ok(_) => Ok(channel),
                Err(e) => Err(unavailable(e)),
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(lost("no answer to Hello in time"));
        }
        if !channel.is_connected() {
            return Err(lost("the bus closed the connection"));
        }
        channel
            .read_write(Some(left))
            .map_err(|()| lost("the bus closed the connection"))?;
    }
}

/// `org.freedesktop.DBus.Hello`, the first message on a bus connection.
fn hello_call() -> Result<Message, String> {
    Message::new_method_call(
        BusName::new("org.freedesktop.DBus")?,
        Path::new("/org/freedesktop/DBus")?,
        Interface::new("org.freedesktop.DBus")?,
        Member::new("Hello")?,
    )
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
        }
    }

    #[test]
    fn no_bus_is_unavailable() {
        let mut d = BusDaemon::new(
            "unix:path=/nonexistent/twofactor-test",
            Duration::from_secs(1),
        );
        assert!(matches!(d.begin(&request()), Err(DaemonError::Absent(_))));
    }

    #[test]
    fn silent_bus_times_out_within_the_timeout() {
        // A socket that accepts connections (into its backlog) but never
        // answers: Hello must give up after our timeout, not libdbus' 25 s.
        let dir = std::env::temp_dir().join(format!("pam-twofactor-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(std::fs::create_dir(&dir).is_ok());
        let sock = dir.join("bus");
        let listener = std::os::unix::net::UnixListener::bind(&sock);
        assert!(listener.is_ok());
        let mut d = BusDaemon::new(
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
    fn nul_is_refused_before_sending() {
        assert!(matches!(no_nul("a\0b"), Err(DaemonError::Failed(_))));
        assert_eq!(no_nul("ab"), Ok(()));
    }
}
