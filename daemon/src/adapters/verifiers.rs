//! A fleet host's connections to its verifiers (`[fleet] verifiers`):
//! HTTP/2 over TLS with this host's certificate (`adapters::fleet_tls`),
//! one connection per verifier, opened when first needed and again after
//! it broke, carrying many calls at once.
//!
//! Every call runs under `[fleet] timeout_seconds`, its connection
//! included: a slow verifier holds a login no longer than that. A call
//! that may go to any verifier (the start of a login) goes to the one
//! that answered last, and to the next while the first cannot be reached
//! at all (refused, reset, unknown name) and time is left; one that did
//! not answer in time is passed over by the next call.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The largest reply read: `twofactorctl admin users` of a large fleet
/// (about 200 bytes per user: 100 000 users in 20 MiB).
const MAX_REPLY: usize = 32 * 1024 * 1024;

/// Why a call got no answer to use.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No verifier answered: not reachable, no answer in time, or its
    /// connection broke.
    #[error("no verifier answered: {0}")]
    Unreachable(String),
    /// A verifier answered with a refusal of the request itself (this
    /// host is not registered, a malformed request).
    #[error("the verifier at {url} refused the request ({status}): {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
}

struct Target {
    url: String,
    authority: String,
    address: (String, u16),
    server_name: ServerName<'static>,
    connection: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

pub struct Verifiers {
    targets: Vec<Target>,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    /// The verifier a call that may go anywhere tries first.
    preferred: AtomicUsize,
}

impl Verifiers {
    /// The verifiers at `urls` (checked by the configuration:
    /// `config::verifier_url`).
    pub fn new(
        urls: &[String],
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Verifiers, String> {
        let mut targets = Vec::new();
        for url in urls {
            let (name, port) = crate::config::verifier_url(url)?;
            let server_name =
                ServerName::try_from(name.clone()).map_err(|e| format!("{url}: {e}"))?;
            let authority = if name.contains(':') {
                format!("[{name}]:{port}")
            } else {
                format!("{name}:{port}")
            };
            targets.push(Target {
                url: url.clone(),
                authority,
                address: (name, port),
                server_name,
                connection: tokio::sync::Mutex::new(None),
            });
        }
        if targets.is_empty() {
            return Err("no verifier".into());
        }
        Ok(Verifiers {
            targets,
            tls: tokio_rustls::TlsConnector::from(tls),
            timeout,
            preferred: AtomicUsize::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// `path` with `body` at any verifier: the index of the one that
    /// answered, and its answer.
    pub async fn call_any(&self, path: &str, body: &[u8]) -> Result<(usize, Vec<u8>), CallError> {
        let deadline = Instant::now() + self.timeout;
        let first = self.preferred.load(Ordering::Relaxed) % self.targets.len();
        let mut why = Vec::new();
        for step in 0..self.targets.len() {
            let index = (first + step) % self.targets.len();
            match tokio::time::timeout_at(deadline, self.call_one(index, path, body)).await {
                Ok(Ok(answer)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((index, answer));
                }
                Ok(Err(CallError::Unreachable(e))) => {
                    why.push(format!("{}: {e}", self.targets[index].url));
                    self.preferred
                        .store((index + 1) % self.targets.len(), Ordering::Relaxed);
                }
                Ok(Err(refused)) => return Err(refused),
                Err(_) => {
                    // This one is slow: the next call starts elsewhere.
                    self.preferred
                        .store((index + 1) % self.targets.len(), Ordering::Relaxed);
                    why.push(format!(
                        "{}: no answer within {} s",
                        self.targets[index].url,
                        self.timeout.as_secs()
                    ));
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(CallError::Unreachable(why.join("; ")))
    }

    /// `path` with `body` at verifier `index` (the one that holds the
    /// login), under the deadline.
    pub async fn call(&self, index: usize, path: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let Some(target) = self.targets.get(index) else {
            return Err(CallError::Unreachable(format!("no verifier {index}")));
        };
        match tokio::time::timeout(self.timeout, self.call_one(index, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Unreachable(format!(
                "{}: no answer within {} s",
                target.url,
                self.timeout.as_secs()
            ))),
        }
    }

    async fn call_one(&self, index: usize, path: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let target = &self.targets[index];
        let unreachable = |e: String| CallError::Unreachable(format!("{}: {e}", target.url));
        let mut sender = self.sender(target).await.map_err(unreachable)?;
        let request = Request::post(format!("https://{}{path}", target.authority))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                // The connection is of no more use: the next call opens
                // another.
                *target.connection.lock().await = None;
                return Err(unreachable(e.to_string()));
            }
        };
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes()
            .to_vec();
        match status {
            StatusCode::OK => Ok(answer),
            // The verifier is there but cannot decide now (its database):
            // another may.
            StatusCode::SERVICE_UNAVAILABLE => {
                Err(unreachable("the verifier cannot reach its database".into()))
            }
            status => Err(CallError::Refused {
                url: target.url.clone(),
                status,
                message: serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| {
                        v.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_default(),
            }),
        }
    }

    /// The open connection to `target`, or a new one.
    async fn sender(&self, target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut connection = target.connection.lock().await;
        if let Some(sender) = connection.as_ref() {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        *connection = None;
        let (name, port) = &target.address;
        let tcp = tokio::net::TcpStream::connect((name.as_str(), *port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, driver) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = driver.await;
        });
        *connection = Some(sender.clone());
        Ok(sender)
    }
}
