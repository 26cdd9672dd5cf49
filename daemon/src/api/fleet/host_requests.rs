//! A fleet host's `Account1` and `Admin1` calls: `twofactorctl` on a host
//! works as on a machine that decides alone, and every call goes to a
//! verifier, with the caller's uid and its user name here.
//!
//! A password is checked here, by this host's PAM (`twofactor-reauth`),
//! and never leaves it: the call sent on has none (`api::requests`). The
//! attempt is counted at a verifier before PAM is asked, and settled there
//! after ([`VerifierTally`]), so the fleet's failure limits hold whichever
//! host a guess comes from. Whatever else a change needs (the account's
//! second factor; being an administrator, from a host the verifiers take
//! administration from) is decided at the verifier.

use super::host::decode;
use super::messages::{
    self, AccountRequest, AdminRequest, CallerWire, PasswordSettle, PasswordTurn, Turned,
};
use crate::adapters::nss::Users;
use crate::adapters::syslog::{Audit, Event};
use crate::adapters::verifiers::{CallError, Verifiers};
use crate::api::requests::{AccountCall, AccountRequests, AdminCall, AdminRequests, Reply};
use crate::services::passwords::{Passwords, Tally, Turn};
use crate::services::Caller;
use std::sync::Arc;
use twofactor_proto::error::Error;
use zeroize::Zeroizing;

/// What `twofactorctl` shows when no verifier answers. (A verifier that
/// answered too late may have made the change: `status` tells.)
pub const UNREACHABLE: &str =
    "the fleet's verifiers did not answer this host in time; see `twofactorctl status`, \
     then try again";

/// Forwards `Account1` and `Admin1` calls to the verifiers.
pub struct Requests {
    verifiers: Arc<Verifiers>,
    users: Arc<dyn Users>,
    passwords: Arc<Passwords>,
    audit: Arc<Audit>,
}

impl Requests {
    pub fn new(
        verifiers: Arc<Verifiers>,
        users: Arc<dyn Users>,
        passwords: Arc<Passwords>,
        audit: Arc<Audit>,
    ) -> Self {
        Requests {
            verifiers,
            users,
            passwords,
            audit,
        }
    }

    /// The caller as the verifier is told: with its user name here.
    async fn wire(&self, caller: &Caller) -> Result<CallerWire, Error> {
        let (users, uid) = (self.users.clone(), caller.uid);
        let name = tokio::task::spawn_blocking(move || users.name_of(uid))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut wire = CallerWire::of(caller);
        wire.name = name;
        Ok(wire)
    }

    /// Checks the caller's password here (`name`: its user name here).
    async fn check(
        &self,
        name: Option<&str>,
        password: Option<(&'static str, &mut crate::api::requests::Password)>,
    ) -> Result<(), Error> {
        let Some((action, password)) = password else {
            return Ok(());
        };
        let name = name.ok_or_else(|| {
            Error::NotFound("the caller's uid has no user name on this system".into())
        })?;
        self.passwords
            .check(name, Zeroizing::new(password.take()), action)
            .await
    }

    async fn send<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<Reply, Error> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Internal(e.to_string()))?;
        match self.verifiers.call_any(path, &body).await {
            Ok((_, answer)) => decode(&self.audit, &answer),
            Err(e) => Err(self.unreachable(&e)),
        }
    }

    fn unreachable(&self, e: &CallError) -> Error {
        self.audit.log(Event::Error {
            context: "verifier",
            error: &e.to_string(),
        });
        Error::Internal(UNREACHABLE.into())
    }
}

#[async_trait::async_trait]
impl AccountRequests for Requests {
    async fn account(&self, caller: &Caller, mut call: AccountCall) -> Result<Reply, Error> {
        let wire = self.wire(caller).await?;
        self.check(wire.name.as_deref(), call.password()).await?;
        let request = AccountRequest { caller: wire, call };
        self.send(messages::ACCOUNT, &request).await
    }
}

#[async_trait::async_trait]
impl AdminRequests for Requests {
    async fn admin(&self, caller: &Caller, mut call: AdminCall) -> Result<Reply, Error> {
        let wire = self.wire(caller).await?;
        // Root gives no password (as on a machine that decides alone).
        if caller.uid != 0 {
            self.check(wire.name.as_deref(), call.password()).await?;
        }
        let request = AdminRequest { caller: wire, call };
        self.send(messages::ADMIN, &request).await
    }
}

/// Password attempts counted at a verifier: the turn and its settling go
/// to the same one (the ticket names it).
pub struct VerifierTally {
    verifiers: Arc<Verifiers>,
    audit: Arc<Audit>,
}

impl VerifierTally {
    pub fn new(verifiers: Arc<Verifiers>, audit: Arc<Audit>) -> Self {
        VerifierTally { verifiers, audit }
    }
}

#[async_trait::async_trait]
impl Tally for VerifierTally {
    async fn turn(&self, user: &str, action: &str) -> Result<Turn, Error> {
        let body = PasswordTurn {
            user: user.to_string(),
            action: action.to_string(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?;
        let (index, answer) = self
            .verifiers
            .call_any(messages::PASSWORD_TURN, &body)
            .await
            .map_err(|e| {
                self.audit.log(Event::Error {
                    context: "verifier",
                    error: &e.to_string(),
                });
                Error::Internal(UNREACHABLE.into())
            })?;
        let turned: Turned = decode(&self.audit, &answer)?;
        Ok(Turn {
            lock: turned.lock,
            ticket: format!("{index}.{}", turned.ticket),
        })
    }

    async fn settle(&self, user: &str, action: &str, right: bool, turn: Turn) -> Result<(), Error> {
        let (index, ticket) = turn
            .ticket
            .split_once('.')
            .and_then(|(i, t)| Some((i.parse::<usize>().ok()?, t)))
            .ok_or_else(|| Error::Internal("a password turn without its verifier".into()))?;
        let body = PasswordSettle {
            user: user.to_string(),
            action: action.to_string(),
            ticket: ticket.to_string(),
            right,
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?;
        match self
            .verifiers
            .call(index, messages::PASSWORD_SETTLE, &body)
            .await
        {
            Ok(answer) => decode::<serde_json::Value>(&self.audit, &answer).map(drop),
            // Not settled: the attempt stays counted there, and a right
            // password is not taken on its own word.
            Err(e) => {
                self.audit.log(Event::Error {
                    context: "verifier",
                    error: &e.to_string(),
                });
                Err(Error::Internal(UNREACHABLE.into()))
            }
        }
    }
}
