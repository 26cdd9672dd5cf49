//! A verifier's HTTPS face: the hosts of the fleet call it over HTTP/2
//! with mutual TLS. A request is taken only from a host whose certificate
//! (signed by the fleet's CA, checked by rustls) is registered
//! (`rules::fleet_hosts`, read at every request: a revocation takes effect
//! at once). Then it is one `Login1` call, handed to the one login state
//! machine with the host's report of the user; the reply is the step the
//! module shows.
//!
//! The rule for what a host may ask: logins of any user, each charged and
//! audited with the host (`on_host=` on every login line, the account's
//! last host), under the same per-account and per-source lockouts as every
//! login of the fleet. A host cannot reach another host's logins in
//! progress: their connections are named with their host.

use super::messages::{self, Began, Begin, Call, Closed, Failure, Stepped, MAX_BODY};
use crate::adapters::fleet_tls;
use crate::adapters::syslog::{Audit, Event};
use crate::api::login::Logins;
use crate::origin::Forwarded;
use crate::rules::fleet_hosts;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
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
    pub store: Store,
    pub audit: Arc<Audit>,
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
            _ => reply(StatusCode::NOT_FOUND, Vec::new()),
        }
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
