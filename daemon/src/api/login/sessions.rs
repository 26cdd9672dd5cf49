//! Logins in progress: the table of sessions, bound to the connection
//! that began them, with the quotas that keep one caller from filling it.
//!
//! A login in progress is charged to whoever started it ([`Charge`]), not
//! to the process that asks: `su`, `sudo`, `login` and sshd all run as
//! root. One user who leaves hundreds of `su` at the code prompt fills
//! their own quota, and one address that opens hundreds of ssh
//! connections fills its own; neither refuses anyone else's login.
//!
//! The quotas of a charge count logins still to pass: a login whose second
//! factor passed and that only waits for its account phase (`Commit`) got
//! there with the account's factor, which no flood has, and holds nothing
//! of its charge. It still counts in the whole table and for its
//! connection. (After `AcceptReport` the module goes on before the daemon
//! has read its `Commit`: the next login from the same address may begin
//! while the last one is still here.)

use std::collections::HashMap;
use std::sync::Mutex;

use twofactor_proto::error::Error;

use super::{Change, Phase};
use crate::origin::Origin;
use crate::services::Caller;

/// Logins in progress, in all.
pub(super) const MAX_SESSIONS: usize = 4096;
/// Logins in progress for one bus connection.
pub(super) const MAX_SESSIONS_PER_CONNECTION: usize = 64;
/// Logins in progress charged to one user (their screen locker, their
/// `su` and `sudo`), across all connections.
pub(super) const MAX_SESSIONS_PER_USER: usize = 16;
/// Logins in progress a fleet's host forwarded (at a verifier): one host
/// never holds more than a quarter of the table, so a host that floods
/// its verifiers leaves the other hosts' logins room.
pub(super) const MAX_SESSIONS_PER_HOST: usize = MAX_SESSIONS / 4;
/// Logins in progress charged to users, all together: logins that act for
/// no local user (sshd, the console's `login`) always keep the other half
/// of the table.
pub(super) const MAX_SESSIONS_NON_ROOT: usize = MAX_SESSIONS / 2;
/// Logins in progress charged to one remote address (sshd's logins carry
/// it as `PAM_RHOST`; sshd itself keeps at most 100 connections that have
/// not logged in, `MaxStartups`).
pub(super) const MAX_SESSIONS_PER_ADDRESS: usize = 64;
/// Logins in progress charged to remote addresses, all together: the
/// console keeps a quarter of the table.
pub(super) const MAX_SESSIONS_REMOTE: usize = MAX_SESSIONS * 3 / 4;

/// Whom a login in progress counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Charge {
    /// A local user: the caller's own uid, or the user a root caller
    /// (`su`, `sudo`) was started by.
    User(u32),
    /// Root acting for no local user, for a remote host (sshd): its
    /// address as the login gives it.
    Address(String),
    /// Root acting for no one else (the console's `login`).
    Root,
}

impl Charge {
    /// The charge of a login `caller` starts for `rhost`. `rhost` comes
    /// from the message, so it counts only for root callers (sshd), whose
    /// word it is; a user's process is charged to its user whatever it
    /// says.
    pub(super) fn of(caller: &Caller, rhost: &str) -> Charge {
        match caller.charged_user() {
            Some(uid) => Charge::User(uid),
            None if rhost.is_empty() => Charge::Root,
            None => Charge::Address(rhost.to_string()),
        }
    }
}

/// One login in progress.
pub(super) struct Session {
    pub(super) owner: Caller,
    /// Whom it counts against (see [`Charge`]).
    pub(super) charge: Charge,
    pub(super) origin: Origin,
    /// Whether the name is a user of this system (an unknown name is
    /// answered alike, and nothing of its login is ever stored).
    pub(super) known: bool,
    /// The device the login presents, if any (see `trust`).
    pub(super) device: Option<crate::rules::trusted_devices::Presented>,
    pub(super) phase: Phase,
    pub(super) expires: i64,
}

/// Whether a session counts against its charge's quotas: not once its
/// second factor passed and it only waits to be committed (see the module
/// comment).
fn held_by_charge(session: &Session) -> bool {
    !matches!(session.phase, Phase::Commit(Change::Login(_)))
}

/// The fleet's host a session came from (at a verifier), if any.
fn host_of(session: &Session) -> Option<&str> {
    session.origin.forwarded.as_ref().map(|f| f.host.as_str())
}

/// The table of logins in progress, by session id.
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<String, Session>>);

fn unavailable() -> Error {
    Error::Internal("session table unavailable".into())
}

impl Sessions {
    /// Adds a session, unless its caller is over a quota (then
    /// `RateLimited`). Expired sessions make room first.
    pub(super) fn insert(&self, id: String, session: Session, now: i64) -> Result<(), Error> {
        let mut sessions = self.0.lock().map_err(|_| unavailable())?;
        if sessions.len() >= MAX_SESSIONS / 2 {
            sessions.retain(|_, v| v.expires > now);
        }
        let owner = &session.owner;
        let charge = &session.charge;
        // At a verifier, a charge is a host's: uid 1000 or an address on
        // one host is not the same on another.
        let host = host_of(&session);
        let (mut same_connection, mut same_charge, mut users, mut remote) = (0, 0, 0, 0);
        let mut same_host = 0;
        for s in sessions.values() {
            let other_host = host_of(s);
            same_connection += usize::from(s.owner.connection == owner.connection);
            same_host += usize::from(host.is_some() && other_host == host);
            if held_by_charge(s) {
                same_charge += usize::from(s.charge == *charge && other_host == host);
                users += usize::from(matches!(s.charge, Charge::User(_)));
                remote += usize::from(matches!(s.charge, Charge::Address(_)));
            }
        }
        let full = sessions.len() >= MAX_SESSIONS
            || same_host >= MAX_SESSIONS_PER_HOST
            || same_connection >= MAX_SESSIONS_PER_CONNECTION
            || held_by_charge(&session)
                && match charge {
                    Charge::User(_) => {
                        same_charge >= MAX_SESSIONS_PER_USER || users >= MAX_SESSIONS_NON_ROOT
                    }
                    Charge::Address(_) => {
                        same_charge >= MAX_SESSIONS_PER_ADDRESS || remote >= MAX_SESSIONS_REMOTE
                    }
                    Charge::Root => false,
                };
        if full {
            return Err(Error::RateLimited(
                "too many logins in progress; try again later".into(),
            ));
        }
        sessions.insert(id, session);
        Ok(())
    }

    /// Removes and returns a live session of this caller. Another caller's
    /// session is "not found", as is an expired one.
    pub(super) fn take(&self, caller: &Caller, id: &str, now: i64) -> Result<Session, Error> {
        let mut sessions = self.0.lock().map_err(|_| unavailable())?;
        let owned = sessions
            .get(id)
            .map(|s| s.owner == *caller && s.expires > now)
            .unwrap_or(false);
        if !owned {
            return Err(Error::NotFound("no such login in progress".into()));
        }
        sessions
            .remove(id)
            .ok_or_else(|| Error::NotFound("no such login in progress".into()))
    }

    /// Removes and returns every session of a connection.
    pub(super) fn drain_connection(&self, connection: &str) -> Vec<Session> {
        self.take_where(|s| s.owner.connection == connection)
    }

    /// Removes and returns the sessions past their time.
    pub(super) fn expire(&self, now: i64) -> Vec<Session> {
        self.take_where(|s| s.expires <= now)
    }

    /// Removes and returns every session `which` picks.
    fn take_where(&self, which: impl Fn(&Session) -> bool) -> Vec<Session> {
        let Ok(mut sessions) = self.0.lock() else {
            return Vec::new();
        };
        let ids: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| which(s))
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| sessions.remove(id)).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
}
