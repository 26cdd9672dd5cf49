//! A scripted `Admin1` for unit tests of the admin commands: canned answers
//! and a record of the calls (passwords included, to check them).

use std::cell::RefCell;
use std::collections::VecDeque;

use twofactor_proto::types::{Device, ImportReport, Policy, Recovery, SshKey, UserReport};

use super::Me;
use crate::client::Admin;
use crate::error::{Failure, Reason};

type Queue<T> = RefCell<VecDeque<Result<T, Failure>>>;

#[derive(Default)]
pub struct FakeAdmin {
    pub policies: Queue<Policy>,
    pub set_policies: Queue<()>,
    pub user_lists: Queue<Vec<UserReport>>,
    pub users: Queue<UserReport>,
    pub resets: Queue<Recovery>,
    pub unlocks: Queue<()>,
    pub device_lists: Queue<Vec<Device>>,
    /// Unscripted: no keys (and no call recorded).
    pub key_lists: Queue<Vec<(String, SshKey)>>,
    pub device_removals: Queue<u32>,
    pub imports: Queue<ImportReport>,
    pub import_alls: Queue<Vec<ImportReport>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeAdmin {
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
    fn call(&self, text: String) {
        self.calls.borrow_mut().push(text);
    }
}

pub fn root() -> Me {
    Me {
        root: true,
        name: "root".into(),
    }
}

pub fn carol() -> Me {
    Me {
        root: false,
        name: "carol".into(),
    }
}

pub fn denied() -> Failure {
    Failure::new(
        Reason::PermissionDenied,
        "administrators only: root, or members of the configured admin_group",
    )
}

/// A report of a known user with nothing stored.
pub fn report(user: &str, uid: u32) -> UserReport {
    UserReport {
        user: user.into(),
        uid,
        known_to_system: true,
        ..UserReport::default()
    }
}

fn next<T>(queue: &Queue<T>) -> Result<T, Failure> {
    queue
        .borrow_mut()
        .pop_front()
        .unwrap_or_else(|| Err(Failure::new(Reason::Unexpected, "unscripted call")))
}

fn pw(password: &[u8]) -> String {
    String::from_utf8_lossy(password).into_owned()
}

impl Admin for FakeAdmin {
    fn get_policy(&self) -> Result<Policy, Failure> {
        self.call("GetPolicy".into());
        next(&self.policies)
    }
    fn set_policy(
        &self,
        mandatory: bool,
        groups: &[String],
        from: &str,
        password: &[u8],
    ) -> Result<(), Failure> {
        self.call(format!(
            "SetPolicy({mandatory},[{}],{from},{})",
            groups.join(","),
            pw(password)
        ));
        next(&self.set_policies)
    }
    fn list_users(&self) -> Result<Vec<UserReport>, Failure> {
        self.call("ListUsers".into());
        next(&self.user_lists)
    }
    fn get_user(&self, user: &str) -> Result<UserReport, Failure> {
        self.call(format!("GetUser({user})"));
        next(&self.users)
    }
    fn reset(&self, user: &str, password: &[u8]) -> Result<Recovery, Failure> {
        self.call(format!("Reset({user},{})", pw(password)));
        next(&self.resets)
    }
    fn unlock(&self, user: &str, password: &[u8]) -> Result<(), Failure> {
        self.call(format!("Unlock({user},{})", pw(password)));
        next(&self.unlocks)
    }
    fn list_devices(&self, user: &str) -> Result<Vec<Device>, Failure> {
        self.call(format!("ListDevices({user})"));
        next(&self.device_lists)
    }
    fn list_keys(&self, _user: &str) -> Result<Vec<(String, SshKey)>, Failure> {
        self.key_lists
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Ok(Vec::new()))
    }
    fn remove_devices(&self, user: &str, id: &str, password: &[u8]) -> Result<u32, Failure> {
        self.call(format!("RemoveDevices({user},{id},{})", pw(password)));
        next(&self.device_removals)
    }
    fn import_google_authenticator(
        &self,
        user: &str,
        path: &str,
        password: &[u8],
    ) -> Result<ImportReport, Failure> {
        self.call(format!(
            "ImportGoogleAuthenticator({user},{path},{})",
            pw(password)
        ));
        next(&self.imports)
    }
    fn import_google_authenticator_all(
        &self,
        password: &[u8],
    ) -> Result<Vec<ImportReport>, Failure> {
        self.call(format!("ImportGoogleAuthenticatorAll({})", pw(password)));
        next(&self.import_alls)
    }
}
