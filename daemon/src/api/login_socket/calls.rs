//! The calls of `org.twofactor.Login1` as they arrive on the login socket,
//! read with the wire format the module writes them in
//! ([`twofactor_proto::wire`]), handed to the one [`Logins`], and their
//! replies written the same way. On the bus zbus does this part; here a
//! zbus connection per login cost more than the rest of the login's work
//! (docs/performance.md), and four calls with fixed signatures need no
//! more than this.
//!
//! Served: `Begin`, `Answer`, `Cancel`, `Commit` at the daemon's object
//! path, and `org.freedesktop.DBus.Peer.Ping` (the floor `bench/run`
//! measures). Anything else gets the error a D-Bus library would give
//! (`UnknownMethod`, `UnknownObject`, `InvalidArgs`); `Account1` and
//! `Admin1` are on the system bus only.

use std::sync::Arc;

use twofactor_proto::error::Error;
use twofactor_proto::names::{login, LOGIN_INTERFACE, OBJECT_PATH};
use twofactor_proto::signature::{self, login as sig};
use twofactor_proto::wire::{self, Message, WireError, Writer};
use zbus::DBusError;
use zeroize::Zeroizing;

use crate::api::login::LoginSteps;
use crate::origin::Origin;
use crate::services::Caller;

const PEER_INTERFACE: &str = "org.freedesktop.DBus.Peer";
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";

/// A call read from the socket.
#[derive(Debug)]
pub enum Call {
    Begin(Origin),
    Answer {
        session: String,
        answer: Zeroizing<Vec<u8>>,
    },
    Cancel(String),
    Commit(String),
    Ping,
}

/// An error reply: its D-Bus name and its text.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub name: String,
    pub text: String,
}

impl Refusal {
    fn new(name: &str, text: impl Into<String>) -> Self {
        Refusal {
            name: name.to_string(),
            text: text.into(),
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal {
            name: e.name().to_string(),
            text: e.text(),
        }
    }
}

fn invalid(e: WireError) -> Refusal {
    Refusal::new(INVALID_ARGS, e.0)
}

/// Reads a method call: which one, and its arguments.
pub fn read(msg: &Message) -> Result<Call, Refusal> {
    let member = msg.member.as_deref().unwrap_or_default();
    let interface = msg.interface.as_deref();
    if interface == Some(PEER_INTERFACE) {
        return match member {
            "Ping" => {
                msg.body("").map_err(invalid)?.finish().map_err(invalid)?;
                Ok(Call::Ping)
            }
            _ => Err(Refusal::new(UNKNOWN_METHOD, format!("no method {member}"))),
        };
    }
    if msg.path.as_deref() != Some(OBJECT_PATH) {
        return Err(Refusal::new(
            UNKNOWN_OBJECT,
            "only /org/twofactor/Daemon1 is served here",
        ));
    }
    if interface.is_some_and(|i| i != LOGIN_INTERFACE) {
        return Err(Refusal::new(
            UNKNOWN_METHOD,
            "only org.twofactor.Login1 is served on the login socket",
        ));
    }
    let call = match member {
        login::BEGIN => {
            let mut r = msg.body(sig::BEGIN_IN).map_err(invalid)?;
            let details = r
                .array(8, |r| {
                    r.align(8)?;
                    let key = r.string()?;
                    let value_sig = r.signature()?;
                    let value = if value_sig == signature::DETAIL_VALUE {
                        Some(r.string()?)
                    } else {
                        r.skip(&value_sig)?;
                        None
                    };
                    Ok((key, value))
                })
                .map_err(invalid)?;
            r.finish().map_err(invalid)?;
            // The last of a key given twice, as a map keeps it.
            let lookup = |key: &str| {
                details
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            Call::Begin(Origin::from_details(lookup)?)
        }
        login::ANSWER => {
            let mut r = msg.body(sig::ANSWER_IN).map_err(invalid)?;
            let session = r.string().map_err(invalid)?;
            let answer = Zeroizing::new(r.bytes().map_err(invalid)?);
            r.finish().map_err(invalid)?;
            Call::Answer { session, answer }
        }
        login::CANCEL | login::COMMIT => {
            let mut r = msg.body(sig::CANCEL_IN).map_err(invalid)?;
            let session = r.string().map_err(invalid)?;
            r.finish().map_err(invalid)?;
            if member == login::CANCEL {
                Call::Cancel(session)
            } else {
                Call::Commit(session)
            }
        }
        _ => {
            return Err(Refusal::new(
                UNKNOWN_METHOD,
                format!("no method {member:?} in {LOGIN_INTERFACE}"),
            ))
        }
    };
    Ok(call)
}

/// A reply's signature and body.
pub struct Reply {
    pub signature: &'static str,
    pub body: Vec<u8>,
}

/// Does what `call` asks, for `caller`, through the one [`Logins`].
pub async fn run(
    call: Call,
    caller: &Caller,
    logins: &Arc<dyn LoginSteps>,
) -> Result<Reply, Refusal> {
    let mut body = Writer::new();
    let signature = match call {
        Call::Begin(origin) => {
            let known = caller.clone();
            let (id, step) = logins
                .begin_with(Box::pin(async { Ok(known) }), origin)
                .await?;
            body.string(&id);
            wire::write_step(&mut body, &step.to_wire());
            sig::BEGIN_OUT
        }
        Call::Answer {
            session,
            mut answer,
        } => {
            // Moved out, not copied: `answer` wipes what it is given.
            let step = logins
                .answer(caller, &session, std::mem::take(&mut *answer))
                .await?;
            wire::write_step(&mut body, &step.to_wire());
            sig::ANSWER_OUT
        }
        Call::Cancel(session) => {
            logins.cancel(caller, &session).await?;
            sig::CANCEL_OUT
        }
        Call::Commit(session) => {
            let step = logins.commit(caller, &session).await?;
            wire::write_step(&mut body, &step.to_wire());
            sig::COMMIT_OUT
        }
        Call::Ping => "",
    };
    Ok(Reply {
        signature,
        body: body.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofactor_proto::wire::Call as Outgoing;

    fn call(interface: &str, member: &str, signature: &str, body: Writer) -> Message {
        let bytes = Outgoing {
            destination: "org.twofactor.Daemon1",
            path: OBJECT_PATH,
            interface,
            member,
            signature,
        }
        .encode(3, &body.into_bytes());
        Message::parse(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    fn details(pairs: &[(&str, &str, &str)]) -> Writer {
        let mut w = Writer::new();
        w.array(8, |w| {
            for (key, value_sig, value) in pairs {
                w.structure(|w| {
                    w.string(key);
                    w.signature(value_sig);
                    match *value_sig {
                        "s" => w.string(value),
                        _ => w.u32(7),
                    }
                });
            }
        });
        w
    }

    #[test]
    fn begin_reads_the_details_as_the_bus_does() {
        let msg = call(
            LOGIN_INTERFACE,
            login::BEGIN,
            sig::BEGIN_IN,
            details(&[
                ("user", "s", "alice"),
                ("rhost", "s", "10.0.0.1"),
                ("newer", "u", ""),
            ]),
        );
        match read(&msg) {
            Ok(Call::Begin(o)) => {
                assert_eq!((o.user.as_str(), o.rhost.as_str()), ("alice", "10.0.0.1"));
                assert_eq!(o.service, "");
            }
            other => panic!("{other:?}"),
        }
        // A known key that is not a string, and no user: refused as the
        // bus refuses them.
        let msg = call(
            LOGIN_INTERFACE,
            login::BEGIN,
            sig::BEGIN_IN,
            details(&[("user", "s", "alice"), ("tty", "u", "")]),
        );
        let e = read(&msg).map(|_| ()).unwrap_err();
        assert_eq!(e.name, "org.twofactor.Error.InvalidInput");
        assert!(e.text.contains("\"tty\""), "{}", e.text);
        let msg = call(
            LOGIN_INTERFACE,
            login::BEGIN,
            sig::BEGIN_IN,
            details(&[("service", "s", "sshd")]),
        );
        assert_eq!(
            read(&msg).map(|_| ()).unwrap_err().name,
            "org.twofactor.Error.InvalidInput"
        );
    }

    #[test]
    fn answer_cancel_and_commit_take_their_arguments() {
        let mut w = Writer::new();
        w.string("s1");
        w.bytes(b"123456");
        match read(&call(LOGIN_INTERFACE, login::ANSWER, sig::ANSWER_IN, w)) {
            Ok(Call::Answer { session, answer }) => {
                assert_eq!(
                    (session.as_str(), answer.as_slice()),
                    ("s1", &b"123456"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        for (member, cancel) in [(login::CANCEL, true), (login::COMMIT, false)] {
            let mut w = Writer::new();
            w.string("s2");
            match (read(&call(LOGIN_INTERFACE, member, "s", w)), cancel) {
                (Ok(Call::Cancel(s)), true) | (Ok(Call::Commit(s)), false) => assert_eq!(s, "s2"),
                (other, _) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn anything_else_is_refused_by_its_standard_name() {
        let mut w = Writer::new();
        w.string("s1");
        let wrong_sig = read(&call(LOGIN_INTERFACE, login::ANSWER, "s", w));
        assert_eq!(wrong_sig.map(|_| ()).unwrap_err().name, INVALID_ARGS);
        let other = read(&call("org.twofactor.Account1", "Status", "", Writer::new()));
        assert_eq!(other.map(|_| ()).unwrap_err().name, UNKNOWN_METHOD);
        let other = read(&call(LOGIN_INTERFACE, "Status", "", Writer::new()));
        assert_eq!(other.map(|_| ()).unwrap_err().name, UNKNOWN_METHOD);
        let mut w = Writer::new();
        w.string("s1");
        w.string("extra");
        let trailing = read(&call(LOGIN_INTERFACE, login::COMMIT, "s", w));
        assert!(trailing.is_err(), "an argument too many");
        assert!(matches!(
            read(&call(PEER_INTERFACE, "Ping", "", Writer::new())),
            Ok(Call::Ping)
        ));
    }
}
