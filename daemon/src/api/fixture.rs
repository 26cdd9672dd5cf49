//! The daemon's one test world: every part (logins, accounts, admin) over
//! one set of handles on an in-memory store, a manual clock, fake users and fake
//! passwords, the audit lines captured. Unit tests of any part build it
//! with the config they need.

use std::sync::Arc;

use crate::adapters::syslog::Audit;

use crate::api::account::Accounts;
use crate::api::admin::Admin;
use crate::api::login::Logins;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::origin::Origin;
use crate::services::{Caller, Handles};

/// 2026-01-01 12:00 UTC.
pub const T0: i64 = 1_767_268_800;

/// The fake passwd: root and a same-uid alias; alice and bob; two members
/// of "staff" (FakeUsers puts names starting with "staff" there); a user
/// whose groups the name service cannot give.
pub const USERS: &[(&str, u32)] = &[
    ("root", 0),
    ("toor", 0),
    ("alice", 1000),
    ("bob", 1001),
    ("staffer", 1002),
    ("staffmate", 1003),
    ("ldapdown", 1004),
];

/// Account passwords the fake PAM re-check accepts.
pub const PASSWORDS: &[(&str, &str)] = &[
    ("alice", "pw-a"),
    ("staffer", "pw-s"),
    ("staffmate", "pw-m"),
];

pub struct World {
    pub handles: Handles,
    pub logins: Logins,
    pub accounts: Accounts,
    pub admin: Admin,
    pub clock: ManualClock,
    pub rt: tokio::runtime::Runtime,
    pub audit: Arc<Audit>,
    /// What the daemon mailed.
    pub mail: Arc<crate::adapters::smtp::testing::Captured>,
}

impl World {
    /// A world at [`T0`] with `config`.
    pub fn new(config: Config) -> World {
        World::at(config, T0)
    }

    pub fn at(config: Config, t0: i64) -> World {
        let clock = ManualClock::at(t0);
        let mail = Arc::new(crate::adapters::smtp::testing::Captured::default());
        let handles =
            crate::services::testing::handles(config, &clock, USERS, PASSWORDS, mail.clone());
        let audit = handles.audit.clone();
        World {
            logins: Logins::new(&handles),
            accounts: Accounts::new(&handles),
            admin: Admin::new(&handles),
            handles,
            clock,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a test runtime"),
            audit,
            mail,
        }
    }

    /// Everything audited so far, one line each.
    pub fn audit_lines(&self) -> String {
        self.audit
            .captured
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }
}

/// root on its own bus connection.
pub fn root() -> Caller {
    Caller {
        uid: 0,
        bus_name: ":1.1".into(),
    }
}

/// Any uid, on a connection of its own.
pub fn as_uid(uid: u32) -> Caller {
    Caller {
        uid,
        bus_name: format!(":1.{uid}"),
    }
}

/// An ssh login of `user` from 192.0.2.1.
pub fn origin(user: &str) -> Origin {
    Origin {
        user: user.into(),
        service: "sshd".into(),
        rhost: "192.0.2.1".into(),
        tty: "ssh".into(),
        ssh_auth_info: String::new(),
    }
}
