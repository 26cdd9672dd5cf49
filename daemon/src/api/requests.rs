//! `Account1` and `Admin1` calls as values. The bus face (`bus.rs`) makes
//! one [`AccountCall`] or [`AdminCall`] per method call and hands it, with
//! the caller, to whoever decides: this machine's `Accounts` and `Admin`,
//! or, on a fleet's host, a verifier (`fleet::host`), which hands it to
//! its own. The answer comes back as a [`Reply`], which the bus face turns
//! into the method's out arguments.
//!
//! A password is checked where it was typed and never travels: its field
//! is never serialised, so a call forwarded to a verifier cannot carry it
//! (the host checks it with its own PAM first: `fleet::host`).

use crate::services::Caller;
use serde::{Deserialize, Serialize};
use twofactor_proto::error::Error;
use twofactor_proto::types::{
    AccountStatus, AppEnrolment, Device, ImportReport, Policy, Recovery, SshKey, UserReport,
};
use zeroize::Zeroizing;

/// A password, wiped when dropped and never serialised.
#[derive(Default)]
pub struct Password(pub Zeroizing<Vec<u8>>);

impl Password {
    pub fn new(bytes: Vec<u8>) -> Self {
        Password(Zeroizing::new(bytes))
    }

    /// The bytes, moved out (what is left is empty).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }
}

impl Serialize for Password {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d)?;
        Ok(Password::default())
    }
}

/// What confirms a change to one's own account: the account password and a
/// current second factor (empty for a first method).
#[derive(Serialize, Deserialize)]
pub struct Proof {
    pub password: Password,
    pub code: Zeroizing<Vec<u8>>,
}

impl Proof {
    pub fn new(password: Vec<u8>, code: Vec<u8>) -> Self {
        Proof {
            password: Password::new(password),
            code: Zeroizing::new(code),
        }
    }

    /// (password, code), moved out.
    pub fn take(mut self) -> (Vec<u8>, Vec<u8>) {
        (self.password.take(), std::mem::take(&mut *self.code))
    }
}

/// One `Account1` call, on the caller's own account.
#[derive(Serialize, Deserialize)]
pub enum AccountCall {
    Status,
    EnrollApp(Proof),
    ConfirmApp {
        enrolment: String,
        code: String,
    },
    NewBackupCodes(Proof),
    EnrollEmail {
        address: String,
        proof: Proof,
    },
    SendCode,
    ResendEmail,
    ConfirmEmail {
        code: String,
    },
    SetPreferred {
        method: String,
    },
    ListDevices,
    RemoveDevices {
        id: String,
        proof: Proof,
    },
    EnrollSshKey {
        public_key: String,
        key_handle: Vec<u8>,
        proof: Proof,
    },
    ListSshKeys,
    EnrollKey(Proof),
    ConfirmKey {
        enrolment: String,
        label: String,
        attestation: Vec<u8>,
    },
    ListKeys,
    RemoveKey {
        id: String,
        proof: Proof,
    },
    Disable {
        method: String,
        proof: Proof,
    },
}

impl AccountCall {
    /// The password the call carries, if it needs one, with the name its
    /// check is audited under (the same as `Accounts` uses).
    pub fn password(&mut self) -> Option<(&'static str, &mut Password)> {
        match self {
            AccountCall::EnrollApp(p) => Some(("enroll-app", &mut p.password)),
            AccountCall::NewBackupCodes(p) => Some(("backup-codes", &mut p.password)),
            AccountCall::EnrollEmail { proof, .. } => Some(("enroll-email", &mut proof.password)),
            AccountCall::RemoveDevices { proof, .. } => {
                Some(("devices-remove", &mut proof.password))
            }
            AccountCall::EnrollSshKey { proof, .. } => {
                Some(("enroll-ssh-key", &mut proof.password))
            }
            AccountCall::EnrollKey(p) => Some(("enroll-key", &mut p.password)),
            AccountCall::RemoveKey { proof, .. } => Some(("remove-key", &mut proof.password)),
            AccountCall::Disable { proof, .. } => Some(("disable", &mut proof.password)),
            AccountCall::Status
            | AccountCall::ConfirmApp { .. }
            | AccountCall::SendCode
            | AccountCall::ResendEmail
            | AccountCall::ConfirmEmail { .. }
            | AccountCall::SetPreferred { .. }
            | AccountCall::ListDevices
            | AccountCall::ListSshKeys
            | AccountCall::ConfirmKey { .. }
            | AccountCall::ListKeys => None,
        }
    }
}

/// One `Admin1` call. `password` is the caller's own, for a change by an
/// administrator who is not root.
#[derive(Serialize, Deserialize)]
pub enum AdminCall {
    GetPolicy,
    SetPolicy {
        mandatory: bool,
        groups: Vec<String>,
        from: String,
        password: Password,
    },
    ListUsers,
    GetUser {
        user: String,
    },
    Reset {
        user: String,
        password: Password,
    },
    Unlock {
        user: String,
        password: Password,
    },
    ListDevices {
        user: String,
    },
    ListKeys {
        user: String,
    },
    RemoveDevices {
        user: String,
        id: String,
        password: Password,
    },
    ImportGoogleAuthenticator {
        user: String,
        path: String,
        password: Password,
    },
    ImportGoogleAuthenticatorAll {
        password: Password,
    },
}

impl AdminCall {
    /// The password the call carries, if it is a change, with the name its
    /// check is audited under (the same as `Admin` uses).
    pub fn password(&mut self) -> Option<(&'static str, &mut Password)> {
        match self {
            AdminCall::SetPolicy { password, .. } => Some(("admin-set-policy", password)),
            AdminCall::Reset { password, .. } => Some(("admin-reset", password)),
            AdminCall::Unlock { password, .. } => Some(("admin-unlock", password)),
            AdminCall::RemoveDevices { password, .. } => Some(("admin-devices-remove", password)),
            AdminCall::ImportGoogleAuthenticator { password, .. }
            | AdminCall::ImportGoogleAuthenticatorAll { password } => {
                Some(("admin-import", password))
            }
            AdminCall::GetPolicy
            | AdminCall::ListUsers
            | AdminCall::GetUser { .. }
            | AdminCall::ListDevices { .. }
            | AdminCall::ListKeys { .. } => None,
        }
    }
}

/// The answers, one kind per out-argument type; [`Reply::take`] gives the
/// one a method expects.
macro_rules! replies {
    ($($variant:ident($t:ty)),* $(,)?) => {
        #[derive(Serialize, Deserialize)]
        pub enum Reply {
            $($variant($t)),*
        }
        $(
            impl From<$t> for Reply {
                fn from(v: $t) -> Self {
                    Reply::$variant(v)
                }
            }
            impl TryFrom<Reply> for $t {
                type Error = Error;
                fn try_from(r: Reply) -> Result<Self, Error> {
                    match r {
                        Reply::$variant(v) => Ok(v),
                        _ => Err(Error::Internal("an answer of the wrong kind".into())),
                    }
                }
            }
        )*
    };
}

replies! {
    Done(()),
    Status(AccountStatus),
    Enrolment(AppEnrolment),
    Codes(Vec<String>),
    Text(String),
    Devices(Vec<Device>),
    Count(u32),
    Added((String, Vec<String>)),
    Request((String, Vec<u8>)),
    Keys(Vec<SshKey>),
    Policy(Policy),
    Users(Vec<UserReport>),
    User(UserReport),
    Recovery(Recovery),
    MethodKeys(Vec<(String, SshKey)>),
    Import(ImportReport),
    Imports(Vec<ImportReport>),
}

impl Reply {
    /// The answer as the type the method returns.
    pub fn take<T: TryFrom<Reply, Error = Error>>(self) -> Result<T, Error> {
        T::try_from(self)
    }
}

/// Who answers `Account1` calls.
#[async_trait::async_trait]
pub trait AccountRequests: Send + Sync {
    async fn account(&self, caller: &Caller, call: AccountCall) -> Result<Reply, Error>;
}

/// Who answers `Admin1` calls.
#[async_trait::async_trait]
pub trait AdminRequests: Send + Sync {
    async fn admin(&self, caller: &Caller, call: AdminCall) -> Result<Reply, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_travels() {
        let mut call = AccountCall::Disable {
            method: "app".into(),
            proof: Proof::new(b"hunter2-secret".to_vec(), b"123456".to_vec()),
        };
        let text = serde_json::to_string(&call).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("app"), "{text}");
        let back: AccountCall = serde_json::from_str(&text).unwrap();
        let AccountCall::Disable { proof, .. } = back else {
            panic!("another call came back");
        };
        let (password, code) = proof.take();
        assert!(password.is_empty());
        assert_eq!(code, b"123456");
        assert_eq!(call.password().map(|(a, _)| a), Some("disable"));

        let admin = AdminCall::Reset {
            user: "bob".into(),
            password: Password::new(b"hunter2-secret".to_vec()),
        };
        let text = serde_json::to_string(&admin).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        // A password written into the body by hand is not taken.
        let forged = text.replace("null", "[104,117,110]");
        assert_ne!(forged, text);
        assert!(serde_json::from_str::<AdminCall>(&forged).is_err());
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_an_error() {
        let r: Reply = 3u32.into();
        assert!(matches!(r.take::<String>(), Err(Error::Internal(_))));
        let r: Reply = String::from("a***@example.org").into();
        assert_eq!(r.take::<String>().unwrap(), "a***@example.org");
    }
}
