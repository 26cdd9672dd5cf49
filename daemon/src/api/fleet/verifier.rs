//! A verifier's HTTPS face: the hosts of the fleet call it over HTTP/2
//! with mutual TLS. A request is taken only from a host whose certificate
//! (signed by the fleet's CA, checked by rustls) is registered
//! (`rules::fleet_hosts`, read at every request: a revocation takes effect
//! at once). Then it is one `Login1` call, handed to the one login state
//! machine with the host's report of the user (the reply is the step the
//! module shows); or one `Account1` or `Admin1` call of a caller on the
//! host, handed to this verifier's own `Accounts` and `Admin` with the
//! caller's host and name (`Caller::on_host`); or a password attempt
//! the host's PAM checks, counted here (a turn, then its settling).
//!
//! The rule for what a host may ask: logins and account calls of any
//! user, each charged and audited with the host (`on_host=` on every login
//! line, the account's last host, `fleet-request` for an account call),
//! under the same per-account and per-source lockouts as every login of
//! the fleet; a change to an account only with its second factor;
//! administration only from the hosts of `[fleet] admin_hosts`. A host
//! cannot reach another host's logins in progress: their connections are
//! named with their host.

use super::messages::{
    self, AccountRequest, AdminRequest, Began, Begin, Call, CallerWire, Closed, Failure,
    PasswordSettle, PasswordTurn, Stepped, Turned, MAX_BODY,
};
use crate::adapters::fleet_tls;
use crate::adapters::syslog::{Audit, Event};
use crate::api::login::Logins;
use crate::api::requests::{AccountRequests, AdminRequests, Reply};
use crate::clock::Clock;
use crate::origin::Forwarded;
use crate::random::Random;
use crate::rules::fleet_hosts;
use crate::services::passwords::{Tally, Turn};
use crate::services::Handles;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// The time a client has to finish the TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections at once (hosts keep one each; a few more while they
/// reconnect).
const MAX_CONNECTIONS: usize = 1024;
/// Requests at once on one connection (a host's logins in progress).
const MAX_STREAMS: u32 = 512;

/// What the face hands its calls to.
pub struct Verifier {
    pub logins: Arc<Logins>,
    pub accounts: Arc<dyn AccountRequests>,
    pub admin: Arc<dyn AdminRequests>,
    /// Where password attempts are counted (this verifier's store).
    pub tally: Arc<dyn Tally>,
    pub rng: Arc<dyn Random>,
    pub clock: Arc<dyn Clock>,
    pub store: Store,
    pub audit: Arc<Audit>,
    /// Password turns given and not yet settled, by ticket.
    pub turns: Mutex<HashMap<String, Given>>,
}

/// A password turn a host was given: only that host settles it, once.
pub struct Given {
    host: String,
    user: String,
    turn: Turn,
    at: i64,
}

/// Turns kept at most; a turn not settled within [`TURN_SECONDS`] stays
/// counted (as a wrong password).
const MAX_TURNS: usize = 4096;
/// Turns one host holds at most, so that a host taking turns and never
/// settling them leaves the other hosts' password checks room.
const MAX_TURNS_PER_HOST: usize = MAX_TURNS / 16;
const TURN_SECONDS: i64 = 300;

impl Verifier {
    /// The face over this verifier's own logins, accounts and
    /// administration (the ones its bus serves).
    pub fn new(
        handles: &Handles,
        logins: Arc<Logins>,
        accounts: Arc<dyn AccountRequests>,
        admin: Arc<dyn AdminRequests>,
    ) -> Self {
        Verifier {
            logins,
            accounts,
            admin,
            tally: handles.passwords.tally().clone(),
            rng: handles.rng.clone(),
            clock: handles.clock.clone(),
            store: handles.store.clone(),
            audit: handles.audit.clone(),
            turns: Mutex::new(HashMap::new()),
        }
    }
}

/// Serves the fleet's hosts on `listener` until the task is aborted.
pub fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    verifier: Arc<Verifier>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let cannot = |e: std::io::Error| format!("cannot serve the fleet's hosts: {e}");
    listener.set_nonblocking(true).map_err(cannot)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(cannot)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, verifier) = (acceptor.clone(), verifier.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let tls = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        verifier.audit.log(Event::Error {
                            context: "fleet",
                            error: &format!("TLS with {peer} failed: {e}"),
                        });
                        return;
                    }
                    Err(_) => return,
                };
                // rustls let in only a certificate of the fleet's CA.
                let Some(fingerprint) = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| fleet_tls::fingerprint(c.as_ref()))
                else {
                    return;
                };
                let peer = peer.to_string();
                let service = hyper::service::service_fn(move |request| {
                    let (verifier, fingerprint, peer) =
                        (verifier.clone(), fingerprint.clone(), peer.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            verifier.handle(&fingerprint, &peer, request).await,
                        )
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(MAX_STREAMS)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    }))
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, body),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
    }
}

fn refusal(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &Failure {
            error: "PermissionDenied".into(),
            message: message.into(),
        },
    )
}

impl Verifier {
    async fn handle(
        &self,
        fingerprint: &str,
        peer: &str,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        // Who, first: nothing is read for a host that is not registered.
        let fp = fingerprint.to_string();
        let host = match self.store.read(move |c| fleet_hosts::host_of(c, &fp)).await {
            Ok(Some(host)) => host,
            Ok(None) => {
                self.audit.log(Event::Error {
                    context: "fleet",
                    error: &format!(
                        "refused {peer}: its certificate (sha256 {fingerprint}) is not a \
                         registered host (twofactord --add-host)"
                    ),
                });
                return refusal(StatusCode::FORBIDDEN, "this host is not registered");
            }
            Err(e) => {
                self.audit.log(Event::Error {
                    context: "fleet",
                    error: &e.to_string(),
                });
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &Failure::of(&twofactor_proto::error::Error::Internal(
                        "the verifier cannot read its database".into(),
                    )),
                );
            }
        };
        if request.method() != Method::POST {
            return reply(StatusCode::METHOD_NOT_ALLOWED, Vec::new());
        }
        let path = request.uri().path().to_string();
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(b) => zeroize::Zeroizing::new(b.to_bytes().to_vec()),
            Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, Vec::new()),
        };
        let bad = |e: serde_json::Error| {
            json(
                StatusCode::BAD_REQUEST,
                &Failure {
                    error: "InvalidInput".into(),
                    message: format!("not a {path} request: {e}"),
                },
            )
        };
        let failed = |e: twofactor_proto::error::Error| json(StatusCode::OK, &Failure::of(&e));
        match path.as_str() {
            messages::BEGIN => {
                let begin: Begin = match serde_json::from_slice(&body) {
                    Ok(b) => b,
                    Err(e) => return bad(e),
                };
                if let Err(why) = plausible(&begin) {
                    return failed(twofactor_proto::error::Error::InvalidInput(why));
                }
                let caller = begin.caller.at(&host);
                let origin = begin.origin.into_origin(Forwarded {
                    host,
                    facts: begin.facts,
                });
                match self
                    .logins
                    .begin_with(Box::pin(async { Ok(caller) }), origin)
                    .await
                {
                    Ok((session, step)) => json(
                        StatusCode::OK,
                        &Began {
                            session,
                            step: step.to_wire(),
                        },
                    ),
                    Err(e) => failed(e),
                }
            }
            messages::ANSWER | messages::COMMIT | messages::CANCEL => {
                let Call {
                    caller,
                    session,
                    mut answer,
                } = match serde_json::from_slice(&body) {
                    Ok(c) => c,
                    Err(e) => return bad(e),
                };
                let caller = caller.at(&host);
                let step = match path.as_str() {
                    // Moved out, not copied: `answer` wipes what it is given.
                    messages::ANSWER => {
                        let answer = std::mem::take(&mut *answer);
                        self.logins.answer(&caller, &session, answer).await
                    }
                    messages::COMMIT => self.logins.commit(&caller, &session).await,
                    _ => match self.logins.cancel(&caller, &session).await {
                        Ok(()) => return json(StatusCode::OK, &serde_json::json!({})),
                        Err(e) => Err(e),
                    },
                };
                match step {
                    Ok(step) => json(
                        StatusCode::OK,
                        &Stepped {
                            step: step.to_wire(),
                        },
                    ),
                    Err(e) => failed(e),
                }
            }
            messages::CLOSED => {
                let closed: Closed = match serde_json::from_slice(&body) {
                    Ok(c) => c,
                    Err(e) => return bad(e),
                };
                self.logins
                    .connection_closed(&messages::connection_at(&host, &closed.connection))
                    .await;
                json(StatusCode::OK, &serde_json::json!({}))
            }
            messages::ACCOUNT => {
                let request: AccountRequest = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => return bad(e),
                };
                let caller = match self.caller(&host, &path, &request.caller) {
                    Ok(c) => c,
                    Err(e) => return failed(e),
                };
                answered(self.accounts.account(&caller, request.call).await)
            }
            messages::ADMIN => {
                let request: AdminRequest = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => return bad(e),
                };
                let caller = match self.caller(&host, &path, &request.caller) {
                    Ok(c) => c,
                    Err(e) => return failed(e),
                };
                answered(self.admin.admin(&caller, request.call).await)
            }
            messages::PASSWORD_TURN => {
                let turn: PasswordTurn = match serde_json::from_slice(&body) {
                    Ok(t) => t,
                    Err(e) => return bad(e),
                };
                match self.turn(&host, turn).await {
                    Ok(turned) => json(StatusCode::OK, &turned),
                    Err(e) => failed(e),
                }
            }
            messages::PASSWORD_SETTLE => {
                let settle: PasswordSettle = match serde_json::from_slice(&body) {
                    Ok(s) => s,
                    Err(e) => return bad(e),
                };
                match self.settle(&host, settle).await {
                    Ok(()) => json(StatusCode::OK, &serde_json::json!({})),
                    Err(e) => failed(e),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, Vec::new()),
        }
    }

    /// The caller of an `Account1` or `Admin1` call from `host`, audited
    /// with the host.
    fn caller(
        &self,
        host: &str,
        path: &str,
        wire: &CallerWire,
    ) -> Result<crate::services::Caller, twofactor_proto::error::Error> {
        let plausible = wire
            .name
            .as_deref()
            .is_none_or(crate::adapters::nss::plausible_name);
        if !plausible || wire.connection.len() > 64 {
            return Err(twofactor_proto::error::Error::InvalidInput(
                "the reported caller is not a user".into(),
            ));
        }
        self.audit.log(Event::FleetRequest {
            host,
            path,
            uid: wire.uid,
            user: wire.name.as_deref().unwrap_or(""),
        });
        Ok(wire.at(host))
    }

    /// Counts a password attempt that `host`'s PAM is about to check.
    async fn turn(
        &self,
        host: &str,
        turn: PasswordTurn,
    ) -> Result<Turned, twofactor_proto::error::Error> {
        use twofactor_proto::error::Error;
        if !crate::adapters::nss::plausible_name(&turn.user) || turn.action.len() > 64 {
            return Err(Error::InvalidInput("not a password turn".into()));
        }
        let mut token = [0u8; 16];
        self.rng
            .fill(&mut token)
            .map_err(|e| self.audit.internal("password-turn", &e.to_string()))?;
        let ticket: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let counted = self.tally.turn(&turn.user, &turn.action).await?;
        let now = self.clock.now();
        let mut turns = self
            .turns
            .lock()
            .map_err(|_| Error::Internal("the turns are unusable".into()))?;
        turns.retain(|_, g| now - g.at < TURN_SECONDS);
        let held = turns.values().filter(|g| g.host == host).count();
        if turns.len() >= MAX_TURNS || held >= MAX_TURNS_PER_HOST {
            // The attempt stays counted: as a wrong password.
            return Err(Error::RateLimited(
                "too many password checks in progress; try again".into(),
            ));
        }
        turns.insert(
            ticket.clone(),
            Given {
                host: host.to_string(),
                user: turn.user,
                turn: counted.clone(),
                at: now,
            },
        );
        Ok(Turned {
            lock: counted.lock,
            ticket,
        })
    }

    /// Settles a turn this verifier gave `host`: a right password gives
    /// the attempt back, once.
    async fn settle(
        &self,
        host: &str,
        settle: PasswordSettle,
    ) -> Result<(), twofactor_proto::error::Error> {
        use twofactor_proto::error::Error;
        let given = self
            .turns
            .lock()
            .map_err(|_| Error::Internal("the turns are unusable".into()))?
            .remove(&settle.ticket);
        let fresh = |g: &Given| self.clock.now() - g.at < TURN_SECONDS;
        match given {
            Some(g) if g.host == host && g.user == settle.user && fresh(&g) => {
                self.tally
                    .settle(&g.user, &settle.action, settle.right, g.turn)
                    .await
            }
            _ => Err(Error::NotFound("no such password turn".into())),
        }
    }
}

/// An `Account1` or `Admin1` answer, or its error by name.
fn answered(r: Result<Reply, twofactor_proto::error::Error>) -> Response<Full<Bytes>> {
    match r {
        Ok(reply) => json(StatusCode::OK, &reply),
        Err(e) => json(StatusCode::OK, &Failure::of(&e)),
    }
}

/// What a host reports must look like what a name service says: a
/// plausible account name, a bounded list of groups.
fn plausible(begin: &Begin) -> Result<(), String> {
    if let Some((name, _)) = &begin.facts.account {
        if !crate::adapters::nss::plausible_name(name) {
            return Err("the reported account name is not a user name".into());
        }
    }
    if let Ok(groups) = &begin.facts.groups {
        if groups.len() > 4096 || groups.iter().any(|g| g.len() > 256) {
            return Err("too many or too long groups reported".into());
        }
    }
    if begin.caller.connection.len() > 64 {
        return Err("the connection name is too long".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixture::World;
    use crate::config::Config;
    use twofactor_proto::error::Error;

    fn verifier(w: &World) -> Verifier {
        Verifier::new(
            &w.handles,
            Arc::new(Logins::new(&w.handles)),
            Arc::new(crate::api::account::Accounts::new(&w.handles)),
            Arc::new(crate::api::admin::Admin::new(&w.handles)),
        )
    }

    fn turn(user: &str) -> PasswordTurn {
        PasswordTurn {
            user: user.into(),
            action: "disable".into(),
        }
    }

    fn settle(ticket: &str, right: bool) -> PasswordSettle {
        PasswordSettle {
            user: "alice".into(),
            action: "disable".into(),
            ticket: ticket.into(),
            right,
        }
    }

    /// A right password gives back only the turn it was counted by, to the
    /// host that took it, once: no host undoes failures it did not count.
    #[test]
    fn a_password_turn_is_settled_once_by_its_own_host() {
        let w = World::new(Config::default());
        let v = verifier(&w);
        let failures = || w.status_of("alice").failures;
        let t1 = w.rt.block_on(v.turn("web1", turn("alice"))).unwrap();
        assert_eq!(failures(), 1, "counted before PAM is asked");
        // Another host, or another user, cannot settle it (and it is gone).
        for (host, settle) in [
            ("web2", settle(&t1.ticket, true)),
            ("web1", settle("00", true)),
        ] {
            let r = w.rt.block_on(v.settle(host, settle));
            assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
        }
        assert_eq!(failures(), 1);
        // Right, by its host: given back, once.
        let t2 = w.rt.block_on(v.turn("web1", turn("alice"))).unwrap();
        assert_eq!(failures(), 2);
        w.rt.block_on(v.settle("web1", settle(&t2.ticket, true)))
            .unwrap();
        assert_eq!(failures(), 1);
        let again = w.rt.block_on(v.settle("web1", settle(&t2.ticket, true)));
        assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
        assert_eq!(failures(), 1);
        // Wrong: stays counted and is audited here.
        let t3 = w.rt.block_on(v.turn("web1", turn("alice"))).unwrap();
        w.rt.block_on(v.settle("web1", settle(&t3.ticket, false)))
            .unwrap();
        assert_eq!(failures(), 2);
        assert!(w.audit_lines().contains("reauth-failure user=alice"));
        // A host that takes turns and never settles them holds at most
        // its share; another host still gets one.
        for n in 0..MAX_TURNS_PER_HOST {
            w.rt.block_on(v.turn("web9", turn(&format!("user{n}"))))
                .unwrap();
        }
        let r = w.rt.block_on(v.turn("web9", turn("alice")));
        assert!(matches!(r, Err(Error::RateLimited(_))), "{r:?}");
        w.rt.block_on(v.turn("web1", turn("bob"))).unwrap();
        // A name that is not a user's is not counted at all.
        let r = w.rt.block_on(v.turn("web1", turn("../alice")));
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    }
}
