//! Which connections to the login socket are kept: the limits that stop
//! one local user from taking the socket from everyone else (dbus-daemon
//! enforced such limits for the system bus: 256 connections per uid).
//!
//! A connection counts against the user it acts for: the caller's uid, or
//! for a root caller (`su`, `sudo`) the user who started it
//! ([`Caller::charged_user`]). Root acting for no user (sshd, the console's
//! `login`) counts only against the total; sshd limits its unauthenticated
//! connections itself (`MaxStartups`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections open at once, in all. The unit raises the descriptor limit
/// to fit (`LimitNOFILE=8192` in twofactord.service).
pub const MAX_CONNECTIONS: usize = 2048;
/// Connections charged to users, all together: root's logins (sshd,
/// login) keep the other half.
pub const MAX_USER_CONNECTIONS: usize = MAX_CONNECTIONS / 2;
/// Connections charged to one user: a screen locker needs one, each `su`
/// or `sudo` waiting at the prompt one.
pub const MAX_CONNECTIONS_PER_USER: usize = 32;

/// Why a connection was not kept (the audit's `why=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerUser,
    Users,
    Total,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PerUser => "per-user-limit",
            Refusal::Users => "users-limit",
            Refusal::Total => "connection-limit",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    users: usize,
    per_user: HashMap<u32, usize>,
}

/// The connections open, by whom they count against.
#[derive(Debug, Default)]
pub struct Admission(Mutex<Counts>);

/// A kept connection's place: given back when dropped (the connection
/// ended).
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    user: Option<u32>,
}

impl Admission {
    /// A place for a connection charged to `user`, unless a limit is
    /// reached.
    pub fn admit(self: &Arc<Self>, user: Option<u32>) -> Result<Slot, Refusal> {
        let mut c = self.0.lock().map_err(|_| Refusal::Total)?;
        if c.total >= MAX_CONNECTIONS {
            return Err(Refusal::Total);
        }
        if let Some(uid) = user {
            if c.per_user.get(&uid).copied().unwrap_or(0) >= MAX_CONNECTIONS_PER_USER {
                return Err(Refusal::PerUser);
            }
            if c.users >= MAX_USER_CONNECTIONS {
                return Err(Refusal::Users);
            }
            *c.per_user.entry(uid).or_insert(0) += 1;
            c.users += 1;
        }
        c.total += 1;
        Ok(Slot {
            admission: self.clone(),
            user,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.lock().map(|c| c.total).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut c) = self.admission.0.lock() else {
            return;
        };
        c.total = c.total.saturating_sub(1);
        if let Some(uid) = self.user {
            c.users = c.users.saturating_sub(1);
            if let Some(n) = c.per_user.get_mut(&uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_user.remove(&uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_at_their_limit_leaves_room_for_others_and_root() {
        let a = Arc::new(Admission::default());
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS_PER_USER {
            held.push(a.admit(Some(1000)));
        }
        assert!(held.iter().all(|s| s.is_ok()));
        assert_eq!(a.admit(Some(1000)).err(), Some(Refusal::PerUser));
        assert!(a.admit(Some(1001)).is_ok());
        assert!(a.admit(None).is_ok());
        // A slot given back is a place again.
        held.pop();
        assert!(a.admit(Some(1000)).is_ok());
    }

    #[test]
    fn users_together_leave_root_its_half() {
        let a = Arc::new(Admission::default());
        let mut held = Vec::new();
        for uid in 0..(MAX_USER_CONNECTIONS / MAX_CONNECTIONS_PER_USER) as u32 {
            for _ in 0..MAX_CONNECTIONS_PER_USER {
                held.push(a.admit(Some(2000 + uid)));
            }
        }
        assert!(held.iter().all(|s| s.is_ok()));
        assert_eq!(a.admit(Some(9999)).err(), Some(Refusal::Users));
        for _ in 0..(MAX_CONNECTIONS - MAX_USER_CONNECTIONS) {
            held.push(a.admit(None));
        }
        assert!(held.iter().all(|s| s.is_ok()));
        assert_eq!(a.open(), MAX_CONNECTIONS);
        assert_eq!(a.admit(None).err(), Some(Refusal::Total));
        held.clear();
        assert_eq!(a.open(), 0);
    }
}
