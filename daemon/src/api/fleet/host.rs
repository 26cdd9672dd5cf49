//! A fleet host's logins: the calls of the module (over the bus or the
//! login socket, exactly as on a machine that decides alone) go to a
//! verifier, with what this host's own system says of the user
//! ([`HostFacts`]: the account a name stands for, its groups, a digest of
//! its shadow entry, whether sshd requires a touch). This host holds no
//! key file and no database: nothing here can check a code.
//!
//! A login stays with the verifier that began it: the session id the
//! module sees is the verifier's, prefixed with its index (`1.…`). A
//! verifier that cannot be reached refuses the login with the message the
//! module shows when no daemon answers: fail closed, whatever the
//! module's `failmode` (the daemon is there and says no).

use super::messages::{self, Began, Begin, Call, CallerWire, Closed, Failure, OriginWire, Stepped};
use crate::adapters::nss::{shadow_digest, Users};
use crate::adapters::syslog::{Audit, Event};
use crate::adapters::verifiers::{CallError, Verifiers};
use crate::api::login::{CallerFuture, LoginSteps};
use crate::config::Config;
use crate::origin::{HostFacts, Origin};
use crate::rules::ssh_keys;
use crate::services::Caller;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use twofactor_proto::error::Error;
use twofactor_proto::{Action, Step};

/// What the module shows when no verifier answers (the words it uses
/// when no daemon answers).
pub const UNAVAILABLE: &str = "Two-factor authentication is unavailable; login refused.";

/// Longest user name taken from the module (the contract's limit).
const MAX_USER_LEN: usize = twofactor_proto::names::detail::MAX_VALUE_BYTES;

/// A reply: the verifier's error, or what was asked for.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Reply<T> {
    Failed(Failure),
    Done(T),
}

pub struct Forwarder {
    verifiers: Arc<Verifiers>,
    users: Arc<dyn Users>,
    config: Arc<Config>,
    audit: Arc<Audit>,
    /// Per connection of a caller: the verifiers holding its logins, and
    /// how many of them are not over; told when the connection closes.
    open: Mutex<HashMap<String, (u64, u32)>>,
}

impl Forwarder {
    pub fn new(
        verifiers: Arc<Verifiers>,
        users: Arc<dyn Users>,
        config: Arc<Config>,
        audit: Arc<Audit>,
    ) -> Self {
        Forwarder {
            verifiers,
            users,
            config,
            audit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A refusal because no verifier answered, logged with why.
    fn unavailable(&self, e: &CallError) -> Step {
        self.audit.log(Event::Error {
            context: "verifier",
            error: &format!("{e}; the login is refused"),
        });
        Step::new(Action::Deny).error(UNAVAILABLE)
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, answer: &[u8]) -> Result<T, Error> {
        decode(&self.audit, answer)
    }

    /// Notes that `connection` has a login at verifier `index` (one more
    /// open when `opened`), or one fewer open.
    fn note(&self, connection: &str, index: Option<usize>, opened: bool) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        match (index, opened) {
            (Some(i), true) => {
                let entry = open.entry(connection.to_string()).or_insert((0, 0));
                entry.0 |= 1 << (i % 64);
                entry.1 += 1;
            }
            _ => {
                if let Some(entry) = open.get_mut(connection) {
                    entry.1 = entry.1.saturating_sub(1);
                    if entry.1 == 0 {
                        open.remove(connection);
                    }
                }
            }
        }
    }

    /// The verifier and its session id of a session id the module gave.
    fn session(id: &str) -> Result<(usize, &str), Error> {
        id.split_once('.')
            .and_then(|(i, s)| Some((i.parse().ok()?, s)))
            .ok_or_else(|| Error::NotFound("no such login in progress".into()))
    }

    /// The verifier holding the session `id`, and the body of a call on
    /// it (the answer, if any, wiped with the body).
    fn call(
        caller: &Caller,
        id: &str,
        answer: Vec<u8>,
    ) -> Result<(usize, zeroize::Zeroizing<Vec<u8>>), Error> {
        let (index, session) = Self::session(id)?;
        let call = Call {
            caller: CallerWire::of(caller),
            session: session.to_string(),
            answer: zeroize::Zeroizing::new(answer),
        };
        let body = serde_json::to_vec(&call).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((index, zeroize::Zeroizing::new(body)))
    }

    async fn step(
        &self,
        path: &str,
        caller: &Caller,
        id: &str,
        answer: Vec<u8>,
    ) -> Result<Step, Error> {
        let (index, body) = Self::call(caller, id, answer)?;
        let step = match self.verifiers.call(index, path, &body).await {
            Ok(answer) => Step::from_wire(self.decode::<Stepped>(&answer)?.step),
            Err(e) => self.unavailable(&e),
        };
        if step.is_final() {
            self.note(&caller.connection, None, false);
        }
        Ok(step)
    }
}

/// A verifier's answer: what was asked for, or the error it names.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    audit: &Audit,
    answer: &[u8],
) -> Result<T, Error> {
    match serde_json::from_slice::<Reply<T>>(answer) {
        Ok(Reply::Done(t)) => Ok(t),
        Ok(Reply::Failed(f)) => Err(f.into_error()),
        Err(e) => {
            audit.log(Event::Error {
                context: "verifier",
                error: &format!("an answer this host cannot read: {e}"),
            });
            Err(Error::Internal(
                "the verifier's answer was not understood".into(),
            ))
        }
    }
}

/// What this host's system says of `origin`'s user (on a blocking thread:
/// the name service and sshd may be slow).
fn facts(users: &dyn Users, config: &Config, origin: &Origin) -> HostFacts {
    let account = users.canonical(&origin.user);
    let (groups, shadow) = match &account {
        Some((name, _)) => (
            users.groups_of(name).map_err(|e| e.0),
            users
                .shadow_of(name)
                .map(|entry| entry.as_ref().map(shadow_digest))
                .map_err(|e| e.0),
        ),
        None => (Ok(Vec::new()), Ok(None)),
    };
    let touch_required = match &account {
        Some((name, _)) if ssh_keys::presented(config, origin).is_some() => Some(
            crate::adapters::sshd::touch_required(
                &config.keys.sshd,
                &config.keys.sshd_config,
                name,
                &origin.rhost,
            )
            .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    HostFacts {
        account,
        groups,
        shadow,
        touch_required,
    }
}

#[async_trait::async_trait]
impl LoginSteps for Forwarder {
    async fn begin_with(
        &self,
        caller: CallerFuture<'_>,
        origin: Origin,
    ) -> Result<(String, Step), Error> {
        if origin.user.is_empty() {
            return Err(Error::InvalidInput("user name is empty".into()));
        }
        if origin.user.len() > MAX_USER_LEN {
            return Err(Error::InvalidInput("user name is too long".into()));
        }
        let looking = {
            let (users, config, origin) = (self.users.clone(), self.config.clone(), origin.clone());
            tokio::task::spawn_blocking(move || facts(users.as_ref(), &config, &origin))
        };
        let (caller, facts) = tokio::join!(caller, looking);
        let caller = caller?;
        let facts = facts.map_err(|e| Error::Internal(e.to_string()))?;
        let begin = Begin {
            caller: CallerWire::of(&caller),
            origin: OriginWire::of(&origin),
            facts,
        };
        let body = serde_json::to_vec(&begin).map_err(|e| Error::Internal(e.to_string()))?;
        match self.verifiers.call_any(messages::BEGIN, &body).await {
            Ok((index, answer)) => {
                let began: Began = self.decode(&answer)?;
                let step = Step::from_wire(began.step);
                if began.session.is_empty() {
                    return Ok((String::new(), step));
                }
                self.note(&caller.connection, Some(index), true);
                Ok((format!("{index}.{}", began.session), step))
            }
            Err(e) => Ok((String::new(), self.unavailable(&e))),
        }
    }

    async fn answer(&self, caller: &Caller, id: &str, answer: Vec<u8>) -> Result<Step, Error> {
        self.step(messages::ANSWER, caller, id, answer).await
    }

    async fn commit(&self, caller: &Caller, id: &str) -> Result<Step, Error> {
        self.step(messages::COMMIT, caller, id, Vec::new()).await
    }

    async fn cancel(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let (index, body) = Self::call(caller, id, Vec::new())?;
        self.note(&caller.connection, None, false);
        match self.verifiers.call(index, messages::CANCEL, &body).await {
            Ok(answer) => self.decode::<serde_json::Value>(&answer).map(drop),
            // The verifier drops the login when its time is up.
            Err(_) => Ok(()),
        }
    }

    async fn connection_closed(&self, connection: &str) {
        let held = match self.open.lock() {
            Ok(mut open) => open.remove(connection),
            Err(_) => None,
        };
        let Some((mask, _)) = held else {
            return;
        };
        let Ok(body) = serde_json::to_vec(&Closed {
            connection: connection.to_string(),
        }) else {
            return;
        };
        for index in 0..self.verifiers.len().min(64) {
            if mask & (1 << index) != 0 {
                // Best effort: a verifier that is not told drops the
                // logins when their time is up.
                let _ = self.verifiers.call(index, messages::CLOSED, &body).await;
            }
        }
    }

    async fn expire(&self) {
        // The verifiers keep the logins and their time.
    }
}
