//! The connection to twofactord and the translation of bus errors into
//! [`Failure`]s.
//!
//! The CLI only talks to `org.twofactor.Account1` and `org.twofactor.Admin1`
//! through the proxies of the contract crate; everything the user sees about
//! an account comes from the daemon, which also decides who may do what.

use std::time::Duration;

use twofactor_proto::error::Error as DaemonError;
use twofactor_proto::proxy::{Account1ProxyBlocking, Admin1ProxyBlocking};
use twofactor_proto::types::{
    AppEnrolment, Device, ImportReport, Policy, Recovery, SecurityKey, SshKey, UserReport,
};
use twofactor_proto::AccountStatus;
use zbus::blocking::connection::Builder;

use crate::error::{Failure, Reason};

/// How long one call may take before the daemon counts as unreachable.
/// Password checks go through PAM, which may add a delay after a wrong
/// password, so this is generous.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The one line shown when the daemon cannot be reached at all.
pub const UNREACHABLE: &str = "twofactord is not running (or the system bus is unavailable)";

/// What confirms a change to one's own account: the account password and,
/// once the account has a method, a current second factor (a code of one
/// of its methods, or a backup code; empty for a first method).
#[derive(Clone, Copy)]
pub struct Proof<'a> {
    pub password: &'a [u8],
    pub code: &'a [u8],
}

/// What the commands need from `org.twofactor.Account1`. Implemented by
/// [`Client`]; unit tests of a command use a scripted stand-in.
pub trait Account {
    fn status(&self) -> Result<AccountStatus, Failure>;
    fn enroll_app(&self, proof: Proof) -> Result<AppEnrolment, Failure>;
    /// Activates the app; returns the new set of backup codes.
    fn confirm_app(&self, enrolment: &str, code: &str) -> Result<Vec<String>, Failure>;
    /// A new set of backup codes (the old set stops working).
    fn new_backup_codes(&self, proof: Proof) -> Result<Vec<String>, Failure>;
    /// Sends a code to `address` to confirm it (email codes are active
    /// only once it comes back); returns the address masked.
    fn enroll_email(&self, address: &str, proof: Proof) -> Result<String, Failure>;
    /// Sends a code to the confirmed address, to confirm a change with;
    /// returns the address masked.
    fn send_code(&self) -> Result<String, Failure>;
    /// A new code to the address being confirmed (the previous one stops
    /// working); returns the address masked.
    fn resend_email(&self) -> Result<String, Failure>;
    /// Activates email codes; returns a new set of backup codes when email
    /// is the first method, else an empty list.
    fn confirm_email(&self, code: &str) -> Result<Vec<String>, Failure>;
    /// The method a login asks first: `app`, `email`, or "" for the one
    /// used last.
    fn set_preferred(&self, method: &str) -> Result<(), Failure>;
    /// Removes a method (`app`, `email`, `ssh-key`, `key`) or `all`.
    fn disable(&self, method: &str, proof: Proof) -> Result<(), Failure>;
    /// The caller's trusted devices (expired ones are not listed).
    fn list_devices(&self) -> Result<Vec<Device>, Failure>;
    /// Removes the trusted device `id`, or every one with `all`; returns
    /// how many were removed.
    fn remove_devices(&self, id: &str, proof: Proof) -> Result<u32, Failure>;
    /// Registers a security-key SSH public key (the text of its .pub
    /// file); returns its id and, as a first method, backup codes.
    /// `key_handle`: from the key's private file, empty when only the
    /// `.pub` file was given.
    fn enroll_ssh_key(
        &self,
        public_key: &str,
        key_handle: &[u8],
        proof: Proof,
    ) -> Result<(String, Vec<String>), Failure>;
    /// The caller's security-key SSH keys.
    fn list_ssh_keys(&self) -> Result<Vec<SshKey>, Failure>;
    /// Starts registering a FIDO2 security key: the enrolment's id and
    /// the encoded `key::CredentialRequest` for the key.
    fn enroll_key(&self, proof: Proof) -> Result<(String, Vec<u8>), Failure>;
    /// Finishes it with the key's encoded `key::Attestation` and its name
    /// ("": twofactord's default); returns the key's id and, as a first
    /// method, backup codes.
    fn confirm_key(
        &self,
        enrolment: &str,
        label: &str,
        attestation: &[u8],
    ) -> Result<(String, Vec<String>), Failure>;
    /// The caller's security keys.
    fn list_keys(&self) -> Result<Vec<SecurityKey>, Failure>;
    /// Removes the security key `id` (the last one: the method).
    fn remove_key(&self, id: &str, proof: Proof) -> Result<(), Failure>;
}

/// What the `admin` commands need from `org.twofactor.Admin1`. Implemented
/// by [`Client`]; unit tests use a scripted stand-in. `password` is the
/// caller's own account password: empty for root, whose password the
/// daemon does not ask; reads need none.
pub trait Admin {
    fn get_policy(&self) -> Result<Policy, Failure>;
    fn set_policy(
        &self,
        mandatory: bool,
        groups: &[String],
        from: &str,
        password: &[u8],
    ) -> Result<(), Failure>;
    fn list_users(&self) -> Result<Vec<UserReport>, Failure>;
    fn get_user(&self, user: &str) -> Result<UserReport, Failure>;
    fn reset(&self, user: &str, password: &[u8]) -> Result<Recovery, Failure>;
    fn unlock(&self, user: &str, password: &[u8]) -> Result<(), Failure>;
    fn list_devices(&self, user: &str) -> Result<Vec<Device>, Failure>;
    /// A user's security keys: (method, key), method `key` or `ssh-key`.
    fn list_keys(&self, user: &str) -> Result<Vec<(String, SshKey)>, Failure>;
    /// `id` is a device id or `all`; returns how many were removed.
    fn remove_devices(&self, user: &str, id: &str, password: &[u8]) -> Result<u32, Failure>;
    /// `path` empty: the user's `~/.google_authenticator`.
    fn import_google_authenticator(
        &self,
        user: &str,
        path: &str,
        password: &[u8],
    ) -> Result<ImportReport, Failure>;
    fn import_google_authenticator_all(
        &self,
        password: &[u8],
    ) -> Result<Vec<ImportReport>, Failure>;
}

/// A connection to twofactord on the system bus (or the bus given with
/// `--bus`).
pub struct Client {
    proxy: Account1ProxyBlocking<'static>,
    admin: Admin1ProxyBlocking<'static>,
}

impl Client {
    /// Connects to `bus` (a D-Bus address), or to the system bus when `None`
    /// (`DBUS_SYSTEM_BUS_ADDRESS` if set, else the standard socket).
    pub fn connect(bus: Option<&str>) -> Result<Client, Failure> {
        let builder = match bus {
            Some(text) => {
                let address = zbus::Address::try_from(text).map_err(|_| {
                    Failure::usage(format!("--bus: not a valid D-Bus address: {text}"))
                })?;
                Builder::address(address)
            }
            None => Builder::system(),
        }
        .map_err(|_| unreachable())?;
        let connection = builder
            .method_timeout(CALL_TIMEOUT)
            .build()
            .map_err(|_| unreachable())?;
        let proxy = Account1ProxyBlocking::builder(&connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .map_err(map_error)?;
        let admin = Admin1ProxyBlocking::builder(&connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .map_err(map_error)?;
        Ok(Client { proxy, admin })
    }
}

impl Account for Client {
    fn status(&self) -> Result<AccountStatus, Failure> {
        self.proxy.status().map_err(map_error)
    }
    fn enroll_app(&self, proof: Proof) -> Result<AppEnrolment, Failure> {
        self.proxy
            .enroll_app(proof.password, proof.code)
            .map_err(map_error)
    }
    fn confirm_app(&self, enrolment: &str, code: &str) -> Result<Vec<String>, Failure> {
        self.proxy.confirm_app(enrolment, code).map_err(map_error)
    }
    fn new_backup_codes(&self, proof: Proof) -> Result<Vec<String>, Failure> {
        self.proxy
            .new_backup_codes(proof.password, proof.code)
            .map_err(map_error)
    }
    fn enroll_email(&self, address: &str, proof: Proof) -> Result<String, Failure> {
        self.proxy
            .enroll_email(address, proof.password, proof.code)
            .map_err(map_error)
    }
    fn send_code(&self) -> Result<String, Failure> {
        self.proxy.send_code().map_err(map_error)
    }
    fn resend_email(&self) -> Result<String, Failure> {
        self.proxy.resend_email().map_err(map_error)
    }
    fn confirm_email(&self, code: &str) -> Result<Vec<String>, Failure> {
        self.proxy.confirm_email(code).map_err(map_error)
    }
    fn set_preferred(&self, method: &str) -> Result<(), Failure> {
        self.proxy.set_preferred(method).map_err(map_error)
    }
    fn disable(&self, method: &str, proof: Proof) -> Result<(), Failure> {
        self.proxy
            .disable(method, proof.password, proof.code)
            .map_err(map_error)
    }
    fn list_devices(&self) -> Result<Vec<Device>, Failure> {
        self.proxy.list_devices().map_err(map_error)
    }
    fn remove_devices(&self, id: &str, proof: Proof) -> Result<u32, Failure> {
        self.proxy
            .remove_devices(id, proof.password, proof.code)
            .map_err(map_error)
    }
    fn enroll_ssh_key(
        &self,
        public_key: &str,
        key_handle: &[u8],
        proof: Proof,
    ) -> Result<(String, Vec<String>), Failure> {
        self.proxy
            .enroll_ssh_key(public_key, key_handle, proof.password, proof.code)
            .map_err(map_error)
    }
    fn list_ssh_keys(&self) -> Result<Vec<SshKey>, Failure> {
        self.proxy.list_ssh_keys().map_err(map_error)
    }
    fn enroll_key(&self, proof: Proof) -> Result<(String, Vec<u8>), Failure> {
        self.proxy
            .enroll_key(proof.password, proof.code)
            .map_err(map_error)
    }
    fn confirm_key(
        &self,
        enrolment: &str,
        label: &str,
        attestation: &[u8],
    ) -> Result<(String, Vec<String>), Failure> {
        self.proxy
            .confirm_key(enrolment, label, attestation)
            .map_err(map_error)
    }
    fn list_keys(&self) -> Result<Vec<SecurityKey>, Failure> {
        self.proxy.list_keys().map_err(map_error)
    }
    fn remove_key(&self, id: &str, proof: Proof) -> Result<(), Failure> {
        self.proxy
            .remove_key(id, proof.password, proof.code)
            .map_err(map_error)
    }
}

impl Admin for Client {
    fn get_policy(&self) -> Result<Policy, Failure> {
        self.admin.get_policy().map_err(map_error)
    }
    fn set_policy(
        &self,
        mandatory: bool,
        groups: &[String],
        from: &str,
        password: &[u8],
    ) -> Result<(), Failure> {
        self.admin
            .set_policy(mandatory, groups.to_vec(), from, password)
            .map_err(map_error)
    }
    fn list_users(&self) -> Result<Vec<UserReport>, Failure> {
        self.admin.list_users().map_err(map_error)
    }
    fn list_keys(&self, user: &str) -> Result<Vec<(String, SshKey)>, Failure> {
        self.admin.list_keys(user).map_err(map_error)
    }
    fn get_user(&self, user: &str) -> Result<UserReport, Failure> {
        self.admin.get_user(user).map_err(map_error)
    }
    fn reset(&self, user: &str, password: &[u8]) -> Result<Recovery, Failure> {
        self.admin.reset(user, password).map_err(map_error)
    }
    fn unlock(&self, user: &str, password: &[u8]) -> Result<(), Failure> {
        self.admin.unlock(user, password).map_err(map_error)
    }
    fn list_devices(&self, user: &str) -> Result<Vec<Device>, Failure> {
        self.admin.list_devices(user).map_err(map_error)
    }
    fn remove_devices(&self, user: &str, id: &str, password: &[u8]) -> Result<u32, Failure> {
        self.admin
            .remove_devices(user, id, password)
            .map_err(map_error)
    }
    fn import_google_authenticator(
        &self,
        user: &str,
        path: &str,
        password: &[u8],
    ) -> Result<ImportReport, Failure> {
        self.admin
            .import_google_authenticator(user, path, password)
            .map_err(map_error)
    }
    fn import_google_authenticator_all(
        &self,
        password: &[u8],
    ) -> Result<Vec<ImportReport>, Failure> {
        self.admin
            .import_google_authenticator_all(password)
            .map_err(map_error)
    }
}

fn unreachable() -> Failure {
    Failure::new(Reason::Unreachable, UNREACHABLE)
}

/// Translates the error of a call into a [`Failure`]: the daemon's typed
/// errors (`org.twofactor.Error.*`) become refusals with the daemon's own
/// text; bus errors that mean "nobody is there" become
/// [`Reason::Unreachable`]; everything else is unexpected.
pub fn map_error(err: zbus::Error) -> Failure {
    match DaemonError::from(err) {
        DaemonError::PermissionDenied(m) => {
            refusal(Reason::PermissionDenied, &m, "permission denied")
        }
        DaemonError::BadPassword(m) => refusal(Reason::BadPassword, &m, "wrong password"),
        DaemonError::BadCode(m) => refusal(Reason::BadCode, &m, "wrong code"),
        DaemonError::NotFound(m) => refusal(Reason::NotFound, &m, "not found"),
        DaemonError::InvalidInput(m) => refusal(Reason::InvalidInput, &m, "invalid input"),
        DaemonError::AlreadyEnrolled(m) => refusal(
            Reason::AlreadyEnrolled,
            &m,
            "this method is already enabled",
        ),
        DaemonError::NotEnrolled(m) => {
            refusal(Reason::NotEnrolled, &m, "this method is not enabled")
        }
        DaemonError::RateLimited(m) => refusal(
            Reason::RateLimited,
            &m,
            "too many failed attempts; try again later",
        ),
        DaemonError::Internal(m) => refusal(
            Reason::Internal,
            &m,
            "twofactord could not complete the request; nothing was changed",
        ),
        DaemonError::ZBus(e) => transport_error(&e),
    }
}

/// The daemon's text when it gave one, else a default.
fn refusal(reason: Reason, text: &str, default: &str) -> Failure {
    if text.trim().is_empty() {
        Failure::new(reason, default)
    } else {
        Failure::new(reason, text)
    }
}

fn transport_error(err: &zbus::Error) -> Failure {
    match err {
        zbus::Error::MethodError(name, text, _) => bus_error(name.as_str(), text.as_deref()),
        zbus::Error::FDO(e) => {
            let e: &zbus::fdo::Error = e;
            let name = zbus::DBusError::name(e);
            bus_error(name.as_str(), zbus::DBusError::description(e))
        }
        zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => no_answer(),
        zbus::Error::InputOutput(_)
        | zbus::Error::Connection(..)
        | zbus::Error::Handshake(_)
        | zbus::Error::Address(_) => unreachable(),
        other => Failure::new(
            Reason::Unexpected,
            format!("unexpected answer from twofactord: {other}"),
        ),
    }
}

fn no_answer() -> Failure {
    Failure::new(
        Reason::Unreachable,
        "twofactord did not answer in time (check the result with `twofactorctl status`)",
    )
}

/// Errors named by the bus itself, or error names this version does not know.
fn bus_error(name: &str, text: Option<&str>) -> Failure {
    const FDO: &str = "org.freedesktop.DBus.Error.";
    let short = name.strip_prefix(FDO);
    match short {
        Some("ServiceUnknown" | "NameHasNoOwner" | "NoServer" | "Disconnected") => unreachable(),
        Some(s) if s.starts_with("Spawn.") => unreachable(),
        Some("NoReply" | "Timeout" | "TimedOut") => no_answer(),
        Some("AccessDenied") => Failure::new(
            Reason::PermissionDenied,
            "the system bus refused the call to twofactord (D-Bus policy)",
        ),
        Some("UnknownMethod" | "UnknownInterface" | "UnknownObject" | "UnknownProperty") => {
            Failure::new(
                Reason::Unexpected,
                "twofactord does not offer this request (is it an older version?)",
            )
        }
        _ => {
            let text = text.unwrap_or("").trim();
            if text.is_empty() {
                Failure::new(
                    Reason::Unexpected,
                    format!("twofactord answered with {name}"),
                )
            } else {
                Failure::new(Reason::Unexpected, format!("{text} ({name})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::message::Message;

    /// A real D-Bus error reply, as the proxy would receive it.
    fn reply(name: &str, text: Option<&str>) -> zbus::Error {
        let call = Message::method_call("/org/twofactor/Daemon1", "Status")
            .and_then(|b| b.build(&()))
            .unwrap();
        let header = call.header();
        let builder = Message::error(&header, name).unwrap();
        let msg = match text {
            Some(t) => builder.build(&(t,)).unwrap(),
            None => builder.build(&()).unwrap(),
        };
        zbus::Error::from(msg)
    }

    #[test]
    fn daemon_errors_are_refusals_with_the_daemon_text() {
        let f = map_error(reply(
            "org.twofactor.Error.BadPassword",
            Some("Wrong password."),
        ));
        assert_eq!(f.reason, Reason::BadPassword);
        assert_eq!(f.exit_code(), 1);
        assert_eq!(f.message(), "Wrong password.");

        let f = map_error(reply(
            "org.twofactor.Error.BadCode",
            Some("That code is wrong."),
        ));
        assert_eq!(f.reason, Reason::BadCode);

        let f = map_error(reply("org.twofactor.Error.PermissionDenied", Some("no")));
        assert_eq!((f.reason, f.exit_code()), (Reason::PermissionDenied, 1));

        let f = map_error(reply(
            "org.twofactor.Error.RateLimited",
            Some("Too many failed attempts; try again in 60 seconds."),
        ));
        assert_eq!(f.reason, Reason::RateLimited);
        assert!(f.message().contains("60 seconds"));

        for (name, reason) in [
            ("NotFound", Reason::NotFound),
            ("InvalidInput", Reason::InvalidInput),
            ("AlreadyEnrolled", Reason::AlreadyEnrolled),
            ("NotEnrolled", Reason::NotEnrolled),
        ] {
            let f = map_error(reply(&format!("org.twofactor.Error.{name}"), Some("x")));
            assert_eq!((f.reason, f.exit_code()), (reason, 1), "{name}");
        }
    }

    #[test]
    fn internal_error_is_other() {
        let f = map_error(reply("org.twofactor.Error.Internal", Some("database busy")));
        assert_eq!((f.reason, f.exit_code()), (Reason::Internal, 4));
    }

    #[test]
    fn empty_daemon_text_gets_a_default() {
        let f = map_error(reply("org.twofactor.Error.BadPassword", None));
        assert_eq!(f.message(), "wrong password");
        let f = map_error(reply("org.twofactor.Error.BadCode", Some("  ")));
        assert_eq!(f.message(), "wrong code");
    }

    #[test]
    fn no_owner_means_unreachable() {
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.Spawn.ExecFailed",
        ] {
            let f = map_error(reply(name, Some("The name is not activatable")));
            assert_eq!(
                (f.reason, f.exit_code()),
                (Reason::Unreachable, 3),
                "{name}"
            );
            assert_eq!(f.message(), UNREACHABLE);
        }
        let f = map_error(zbus::Error::FDO(Box::new(
            zbus::fdo::Error::ServiceUnknown("x".into()),
        )));
        assert_eq!(f.reason, Reason::Unreachable);
    }

    #[test]
    fn io_errors_and_timeouts_are_unreachable() {
        let gone = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let f = map_error(zbus::Error::InputOutput(gone.into()));
        assert_eq!(f.message(), UNREACHABLE);
        let slow = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let f = map_error(zbus::Error::InputOutput(slow.into()));
        assert_eq!(f.reason, Reason::Unreachable);
        assert!(f.message().contains("did not answer"));
        let f = map_error(reply("org.freedesktop.DBus.Error.NoReply", None));
        assert!(f.message().contains("did not answer"));
    }

    #[test]
    fn bus_policy_denial_is_a_refusal() {
        let f = map_error(reply(
            "org.freedesktop.DBus.Error.AccessDenied",
            Some("policy"),
        ));
        assert_eq!((f.reason, f.exit_code()), (Reason::PermissionDenied, 1));
    }

    #[test]
    fn unknown_errors_are_other() {
        let f = map_error(reply("org.freedesktop.DBus.Error.UnknownMethod", Some("?")));
        assert_eq!((f.reason, f.exit_code()), (Reason::Unexpected, 4));
        let f = map_error(reply("com.example.Weird", Some("odd\nthing")));
        assert_eq!(f.exit_code(), 4);
        assert_eq!(f.message(), "odd thing (com.example.Weird)");
        let f = map_error(zbus::Error::InvalidReply);
        assert_eq!(f.exit_code(), 4);
    }

    #[test]
    fn bad_bus_address_is_usage() {
        match Client::connect(Some("this is not an address")) {
            Err(f) => assert_eq!((f.reason, f.exit_code()), (Reason::Usage, 2)),
            Ok(_) => panic!("connected to a malformed address"),
        }
    }

    #[test]
    fn missing_socket_is_unreachable() {
        match Client::connect(Some("unix:path=/nonexistent/twofactor-test-socket")) {
            Err(f) => assert_eq!(f.message(), UNREACHABLE),
            Ok(_) => panic!("connected to a socket that does not exist"),
        }
    }
}
