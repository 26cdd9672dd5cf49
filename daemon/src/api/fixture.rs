//! The daemon's one test world: every part (logins, accounts, admin) over
//! one set of handles on an in-memory store, a manual clock, fake users and fake
//! passwords, the audit lines captured. Unit tests of any part build it
//! with the config they need.

use std::sync::Arc;

use crate::adapters::nss::testing::FakeUsers;
use crate::adapters::syslog::Audit;

use crate::api::account::Accounts;
use crate::api::admin::Admin;
use crate::api::login::Logins;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::origin::Origin;
use crate::services::{Caller, Handles};

/// 2026-01-01 12:00 UTC.
pub const T0: i64 = 1_767_268_800;

/// The fake passwd: root and a same-uid alias; alice and bob; two members
/// of "staff" (FakeUsers puts names starting with "staff" there); a user
/// whose groups the name service cannot give; a member of "sudo" (names
/// starting with "sudo").
pub const USERS: &[(&str, u32)] = &[
    ("root", 0),
    ("toor", 0),
    ("alice", 1000),
    ("bob", 1001),
    ("staffer", 1002),
    ("staffmate", 1003),
    ("ldapdown", 1004),
    ("sudoer", 1005),
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
    /// The fake name service (a test changes a user's shadow entry here).
    pub users: Arc<FakeUsers>,
}

impl World {
    /// A world at [`T0`] with `config`.
    pub fn new(config: Config) -> World {
        World::at(config, T0)
    }

    pub fn at(config: Config, t0: i64) -> World {
        let clock = ManualClock::at(t0);
        let mail = Arc::new(crate::adapters::smtp::testing::Captured::default());
        let users = Arc::new(FakeUsers::new(USERS));
        let handles = crate::services::testing::handles_over(
            config,
            &clock,
            users.clone(),
            PASSWORDS,
            mail.clone(),
        );
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
            users,
        }
    }

    /// Everything audited so far, one line each.
    /// `user`'s status as the store has it now.
    pub fn status_of(&self, user: &str) -> twofactor_proto::AccountStatus {
        let user = user.to_string();
        self.rt
            .block_on(
                self.handles
                    .store
                    .run(move |c| crate::rules::account_view::status(c, &user, 0)),
            )
            .unwrap()
    }

    pub fn audit_lines(&self) -> String {
        self.audit
            .captured
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }
}

impl World {
    /// What an account may have before a method is added: an open
    /// recovery code and a trusted device.
    pub fn leave_leftovers(&self, user: &str) {
        let (u, now) = (user.to_string(), self.clock.now());
        self.rt
            .block_on(self.handles.store.run(move |c| {
                crate::rules::bookkeeping::ensure(c, &u, now)?;
                crate::rules::recovery_codes::replace(c, &u, "hash", now, "root")?;
                let device = crate::rules::trusted_devices::Presented::for_tests(&u);
                crate::rules::trusted_devices::trust(
                    c,
                    &u,
                    "00112233aabbccdd",
                    &device,
                    b"",
                    now,
                    now + 3600,
                )
            }))
            .expect("leftovers stored");
        assert_eq!(self.leftovers(user), (true, 1), "leftovers of {user}");
    }

    /// (an open recovery code, trusted devices) of `user`.
    pub fn leftovers(&self, user: &str) -> (bool, u32) {
        let (u, now) = (user.to_string(), self.clock.now());
        self.rt
            .block_on(self.handles.store.run(move |c| {
                Ok((
                    crate::rules::recovery_codes::pending(c, &u, now)?.is_some(),
                    crate::rules::trusted_devices::count(c, &u, now)?,
                ))
            }))
            .expect("leftovers read")
    }

    /// The state every way of adding a method leaves (methods::activate):
    /// `method` active, backup codes present, the recovery code gone, no
    /// trusted device, and the caller's audit line (`audited`) written.
    pub fn assert_method_added(&self, user: &str, method: &str, audited: &str) {
        let u = user.to_string();
        let status = self
            .rt
            .block_on(
                self.handles
                    .store
                    .run(move |c| crate::rules::account_view::status(c, &u, 0)),
            )
            .expect("status read");
        assert!(status.methods.iter().any(|m| m == method), "{status:?}");
        assert!(status.backup_codes_left > 0, "backup codes: {status:?}");
        assert_eq!(
            self.leftovers(user),
            (false, 0),
            "recovery code and devices"
        );
        let lines = self.audit_lines();
        assert!(
            lines
                .lines()
                .any(|l| l.split_whitespace().next() == Some(audited)
                    && l.contains(&format!("user={user}"))),
            "no {audited} line for {user} in:\n{lines}"
        );
    }
}

/// root on its own bus connection.
pub fn root() -> Caller {
    Caller {
        uid: 0,
        connection: ":1.1".into(),
        invoker: None,
        on_host: None,
    }
}

/// Any uid, on a connection of its own.
pub fn as_uid(uid: u32) -> Caller {
    Caller {
        uid,
        connection: format!(":1.{uid}"),
        invoker: None,
        on_host: None,
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
        security_keys: false,
        commit_report: false,
        forwarded: None,
    }
}
