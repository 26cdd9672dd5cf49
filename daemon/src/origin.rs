//! Where a login comes from, as the module reports it: a plain value that
//! the rules (rate limits, trusted devices), the faces and the audit log
//! all read.

use twofactor_proto::error::Error;
use twofactor_proto::names::detail;

/// Who and where, for login events.
#[derive(Clone, Default)]
pub struct Origin {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// `SSH_AUTH_INFO_0` as the module found it in the PAM environment
    /// (used only to recognise a trusted device; never logged).
    pub ssh_auth_info: String,
    /// The module can run a security key (`security_keys` = `"1"`).
    pub security_keys: bool,
    /// The module reports a plain login's success without waiting for the
    /// reply (`commit_report` = `"1"`): such a login may end its auth
    /// phase with `AcceptReport`.
    pub commit_report: bool,
    /// At a fleet's verifier: the login came from this host, which
    /// reported what its own system says of the user.
    pub forwarded: Option<std::sync::Arc<Forwarded>>,
}

/// A login a fleet's host forwarded to this verifier.
#[derive(Debug)]
pub struct Forwarded {
    /// The host, as its certificate is registered here (never its word).
    pub host: String,
    pub facts: HostFacts,
}

/// What a fleet's host reports of a login's user: what its own name
/// service and sshd say, which only the host can know. The verifier
/// decides with these as a single machine decides with its own.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostFacts {
    /// The account the name stands for there: (canonical name, uid).
    pub account: Option<(String, u32)>,
    /// Its groups there; an error when the name service could not say.
    pub groups: Result<Vec<String>, String>,
    /// Its shadow entry there, as (a digest of the hash field, date of
    /// last change): the hash itself never leaves the host. None: no
    /// entry; an error when the name service could not say.
    pub shadow: Result<Option<(String, i64)>, String>,
    /// Whether sshd there requires a touch for this login's keys; only
    /// for a login that presents a security key over SSH.
    pub touch_required: Option<Result<(), String>>,
}

impl Origin {
    /// A login's details from `Begin`'s dictionary, whichever way it came
    /// (`lookup(key)`: `None` when absent, `Some(None)` when its value is not
    /// a string): `user` required, the other known keys optional (empty),
    /// every value a string; unknown keys are ignored (a newer module may
    /// send more).
    pub fn from_details(lookup: impl Fn(&str) -> Option<Option<String>>) -> Result<Origin, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match lookup(key) {
                None => Ok(None),
                Some(Some(s)) => Ok(Some(s)),
                Some(None) => Err(Error::InvalidInput(format!(
                    "the login detail {key:?} must be a string"
                ))),
            }
        };
        Ok(Origin {
            user: text(detail::USER)?.ok_or_else(|| {
                Error::InvalidInput("the login detail \"user\" is missing".into())
            })?,
            service: text(detail::SERVICE)?.unwrap_or_default(),
            rhost: text(detail::RHOST)?.unwrap_or_default(),
            tty: text(detail::TTY)?.unwrap_or_default(),
            ssh_auth_info: text(detail::SSH_AUTH_INFO)?.unwrap_or_default(),
            security_keys: text(detail::SECURITY_KEYS)?.as_deref() == Some("1"),
            commit_report: text(detail::COMMIT_REPORT)?.as_deref() == Some("1"),
            forwarded: None,
        })
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("user", &self.user)
            .field("service", &self.service)
            .field("rhost", &self.rhost)
            .field("tty", &self.tty)
            .field("security_keys", &self.security_keys)
            .field("commit_report", &self.commit_report)
            .field("forwarded", &self.forwarded.as_ref().map(|f| &f.host))
            .finish_non_exhaustive()
    }
}
