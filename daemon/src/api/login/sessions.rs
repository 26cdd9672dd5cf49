//! Logins in progress: the table of sessions, bound to the bus connection
//! that began them, with the quotas that keep one caller from filling it.

use std::collections::HashMap;
use std::sync::Mutex;

use twofactor_proto::error::Error;

use super::Phase;
use crate::origin::Origin;
use crate::services::Caller;

/// Logins in progress, in all.
pub(super) const MAX_SESSIONS: usize = 4096;
/// Logins in progress for one bus connection.
pub(super) const MAX_SESSIONS_PER_CONNECTION: usize = 64;
/// Logins in progress started by one non-root uid (a screen locker checks
/// one user: itself), across all its connections.
pub(super) const MAX_SESSIONS_PER_USER: usize = 16;
/// Logins in progress started by all non-root uids together: root's logins
/// (sshd, login, su, sudo) always keep the other half of the table.
pub(super) const MAX_SESSIONS_NON_ROOT: usize = MAX_SESSIONS / 2;

/// One login in progress.
pub(super) struct Session {
    pub(super) owner: Caller,
    pub(super) origin: Origin,
    /// Whether the name is a user of this system (an unknown name is
    /// answered alike, and nothing of its login is ever stored).
    pub(super) known: bool,
    /// The device the login presents, if any (see `trust`).
    pub(super) device: Option<crate::rules::trusted_devices::Presented>,
    pub(super) phase: Phase,
    pub(super) expires: i64,
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
        let (mut same_connection, mut same_uid, mut non_root) = (0, 0, 0);
        for s in sessions.values() {
            same_connection += usize::from(s.owner.bus_name == owner.bus_name);
            same_uid += usize::from(s.owner.uid == owner.uid);
            non_root += usize::from(s.owner.uid != 0);
        }
        let full = sessions.len() >= MAX_SESSIONS
            || same_connection >= MAX_SESSIONS_PER_CONNECTION
            || (owner.uid != 0
                && (same_uid >= MAX_SESSIONS_PER_USER || non_root >= MAX_SESSIONS_NON_ROOT));
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

    /// Removes and returns every session of a bus connection.
    pub(super) fn drain_connection(&self, bus_name: &str) -> Vec<Session> {
        self.take_where(|s| s.owner.bus_name == bus_name)
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
