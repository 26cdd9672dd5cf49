//! What a fleet's host and its verifiers say to each other: one JSON body
//! per HTTP/2 request and reply, one path per `Login1` call, one for
//! `Account1` calls, one for `Admin1` calls, and two for counting a
//! password attempt that the host's PAM checks. A reply carries only what
//! the module or `twofactorctl` shows (a step, an `api::requests::Reply`),
//! or an error by its name: never a stored secret, a hash or a device key.

use crate::api::requests::{AccountCall, AdminCall};
use crate::origin::{HostFacts, Origin};
use crate::services::{Caller, HostCaller};
use serde::{Deserialize, Serialize};
use twofactor_proto::error::Error;
use twofactor_proto::WireStep;

pub const BEGIN: &str = "/v1/login/begin";
pub const ANSWER: &str = "/v1/login/answer";
pub const COMMIT: &str = "/v1/login/commit";
pub const CANCEL: &str = "/v1/login/cancel";
pub const CLOSED: &str = "/v1/login/closed";
pub const ACCOUNT: &str = "/v1/account";
pub const ADMIN: &str = "/v1/admin";
pub const PASSWORD_TURN: &str = "/v1/password/turn";
pub const PASSWORD_SETTLE: &str = "/v1/password/settle";

/// The largest body either side reads.
pub const MAX_BODY: usize = 64 * 1024;

/// The process that called the host's daemon, as the host's kernel or bus
/// said ([`Caller`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallerWire {
    pub uid: u32,
    pub connection: String,
    pub invoker: Option<u32>,
    /// The uid's user name on the host, for `Account1` and `Admin1` calls
    /// (a login names its user in its origin).
    #[serde(default)]
    pub name: Option<String>,
}

impl CallerWire {
    pub fn of(caller: &Caller) -> Self {
        CallerWire {
            uid: caller.uid,
            connection: caller.connection.clone(),
            invoker: caller.invoker,
            name: None,
        }
    }

    /// The caller at the verifier: its connection named with its host, so
    /// that no host reaches another's logins.
    pub fn at(&self, host: &str) -> Caller {
        Caller {
            uid: self.uid,
            connection: connection_at(host, &self.connection),
            invoker: self.invoker,
            on_host: Some(std::sync::Arc::new(HostCaller {
                host: host.to_string(),
                name: self.name.clone(),
            })),
        }
    }
}

/// A host's connection as the verifier names it.
pub fn connection_at(host: &str, connection: &str) -> String {
    format!("{host}/{connection}")
}

/// A login's details as the module gave them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginWire {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    pub ssh_auth_info: String,
    pub security_keys: bool,
    /// The host's module reports a plain login's success without waiting
    /// (absent from an older host: false).
    #[serde(default)]
    pub commit_report: bool,
}

impl OriginWire {
    pub fn of(o: &Origin) -> Self {
        OriginWire {
            user: o.user.clone(),
            service: o.service.clone(),
            rhost: o.rhost.clone(),
            tty: o.tty.clone(),
            ssh_auth_info: o.ssh_auth_info.clone(),
            security_keys: o.security_keys,
            commit_report: o.commit_report,
        }
    }

    pub fn into_origin(self, forwarded: crate::origin::Forwarded) -> Origin {
        Origin {
            user: self.user,
            service: self.service,
            rhost: self.rhost,
            tty: self.tty,
            ssh_auth_info: self.ssh_auth_info,
            security_keys: self.security_keys,
            commit_report: self.commit_report,
            forwarded: Some(std::sync::Arc::new(forwarded)),
        }
    }
}

/// `Login1.Begin`, with what the host's system says of the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Begin {
    pub caller: CallerWire,
    pub origin: OriginWire,
    pub facts: HostFacts,
}

/// `Answer` (with the answer), `Commit` and `Cancel` (without).
#[derive(Serialize, Deserialize)]
pub struct Call {
    pub caller: CallerWire,
    pub session: String,
    /// Wiped when the call is dropped.
    #[serde(default)]
    pub answer: zeroize::Zeroizing<Vec<u8>>,
}

/// A connection to the host's daemon closed: its logins go.
#[derive(Debug, Serialize, Deserialize)]
pub struct Closed {
    pub connection: String,
}

/// The reply to `Begin`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Began {
    pub session: String,
    pub step: WireStep,
}

/// An `Account1` call of a host's caller (its `name` set), without the
/// password, which the host checked.
#[derive(Serialize, Deserialize)]
pub struct AccountRequest {
    pub caller: CallerWire,
    pub call: AccountCall,
}

/// An `Admin1` call, likewise.
#[derive(Serialize, Deserialize)]
pub struct AdminRequest {
    pub caller: CallerWire,
    pub call: AdminCall,
}

/// A password attempt the host is about to have its PAM check: counted at
/// the verifier first.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordTurn {
    pub user: String,
    pub action: String,
}

/// The reply to a turn: the lockout a failure starts, and the ticket that
/// settles it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Turned {
    pub lock: Option<i64>,
    pub ticket: String,
}

/// What the host's PAM said of the attempt of `ticket`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordSettle {
    pub user: String,
    pub action: String,
    pub ticket: String,
    pub right: bool,
}

/// The reply to `Answer` and `Commit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stepped {
    pub step: WireStep,
}

/// An error the verifier's login state machine gave, by name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub message: String,
}

impl Failure {
    pub fn of(e: &Error) -> Self {
        let error = match e {
            Error::ZBus(_) | Error::Internal(_) => "Internal",
            Error::PermissionDenied(_) => "PermissionDenied",
            Error::BadPassword(_) => "BadPassword",
            Error::BadCode(_) => "BadCode",
            Error::NotFound(_) => "NotFound",
            Error::InvalidInput(_) => "InvalidInput",
            Error::AlreadyEnrolled(_) => "AlreadyEnrolled",
            Error::NotEnrolled(_) => "NotEnrolled",
            Error::RateLimited(_) => "RateLimited",
        };
        Failure {
            error: error.into(),
            message: e.text(),
        }
    }

    /// The error again, for the host's caller; a name this build does not
    /// know is an internal error.
    pub fn into_error(self) -> Error {
        let m = self.message;
        match self.error.as_str() {
            "PermissionDenied" => Error::PermissionDenied(m),
            "BadPassword" => Error::BadPassword(m),
            "BadCode" => Error::BadCode(m),
            "NotFound" => Error::NotFound(m),
            "InvalidInput" => Error::InvalidInput(m),
            "AlreadyEnrolled" => Error::AlreadyEnrolled(m),
            "NotEnrolled" => Error::NotEnrolled(m),
            "RateLimited" => Error::RateLimited(m),
            _ => Error::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_name_across_the_wire() {
        for e in [
            Error::PermissionDenied("p".into()),
            Error::NotFound("n".into()),
            Error::InvalidInput("i".into()),
            Error::RateLimited("r".into()),
            Error::Internal("x".into()),
        ] {
            let back =
                serde_json::from_str::<Failure>(&serde_json::to_string(&Failure::of(&e)).unwrap())
                    .unwrap()
                    .into_error();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
        let unknown = Failure {
            error: "Whatever".into(),
            message: "m".into(),
        };
        assert!(matches!(unknown.into_error(), Error::Internal(m) if m == "m"));
    }

    #[test]
    fn a_hosts_connections_are_its_own_at_the_verifier() {
        let c = CallerWire {
            uid: 0,
            connection: ":1.5".into(),
            invoker: Some(1000),
            name: None,
        };
        assert_eq!(c.at("web1").connection, "web1/:1.5");
        assert_ne!(c.at("web1").connection, c.at("web2").connection);
    }
}
