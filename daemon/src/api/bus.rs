//! The D-Bus face of the daemon: `org.twofactor.Login1` and
//! `org.twofactor.Account1` at `/org/twofactor/Daemon1`.
//!
//! A method that returns one struct returns it as a 1-tuple: zbus sends a
//! bare struct as its fields (several out arguments), which is not what
//! the interface XML says.
//!
//! Every call starts from the caller's uid as the kernel gives it: on the
//! bus, the bus daemon's credentials of the message's sender
//! (`GetConnectionCredentials`, asked once per connection: [`Callers`]);
//! on the login socket (`Login1` only, see `login_socket`), `SO_PEERCRED`
//! of the connection. Nothing the caller sends is trusted for identity;
//! if the uid cannot be had, the call fails.

use crate::adapters::procfs;
use crate::api::login::LoginSteps;
use crate::api::requests::{
    AccountCall, AccountRequests, AdminCall, AdminRequests, Password, Proof, Reply,
};
use crate::origin::Origin;
use crate::services::Caller;
use std::collections::HashMap;
use std::sync::Arc;
use twofactor_proto::error::Error;
use twofactor_proto::types::{
    AccountStatus, AppEnrolment, Device, ImportReport, Policy, Recovery, SshKey, UserReport,
};
use twofactor_proto::WireStep;
use zbus::message::Header;
use zbus::zvariant::{OwnedValue, Value};
use zbus::Connection;

/// The uid of each caller, by its unique bus name. The bus never gives a
/// unique name out twice while it runs (and when the bus goes, so does
/// this daemon's connection and with it every name here), so a name's
/// credentials never change: they are asked of the bus
/// (`GetConnectionCredentials`: its uid and pid) once per connection, not
/// once per call, and forgotten when the connection leaves the bus
/// (`forget`, from `NameOwnerChanged`). For a root caller, the user it
/// acts for is read from `/proc` then too ([`procfs::invoker_of`]).
#[derive(Default)]
pub struct Callers {
    known: std::sync::Mutex<HashMap<String, (u32, Option<u32>)>>,
    /// Look-ups made on the bus (for tests and measurements).
    asked: std::sync::atomic::AtomicU64,
}

/// Names kept at most; past this the table starts over (a bound, not a
/// limit on callers).
const MAX_CALLERS: usize = 65_536;

impl Callers {
    /// The caller of the message with `header`: its unique name and uid,
    /// from the bus, never from anything the caller sent.
    pub async fn of(&self, conn: &Connection, header: &Header<'_>) -> Result<Caller, Error> {
        let denied = || Error::PermissionDenied("the caller could not be identified".into());
        let sender = header.sender().ok_or_else(denied)?.to_string();
        if let Some((uid, invoker)) = self.cached(&sender) {
            return Ok(Caller {
                uid,
                connection: sender,
                invoker,
                on_host: None,
            });
        }
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reply = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "GetConnectionCredentials",
                &(sender.as_str(),),
            )
            .await
            .map_err(|_| denied())?;
        let credentials: HashMap<String, OwnedValue> =
            reply.body().deserialize().map_err(|_| denied())?;
        let number = |key: &str| match credentials.get(key).map(|v| &**v) {
            Some(Value::U32(n)) => Some(*n),
            _ => None,
        };
        let uid = number("UnixUserID").ok_or_else(denied)?;
        let invoker = match (uid, number("ProcessID")) {
            (0, Some(pid)) => procfs::invoker_of(pid),
            _ => None,
        };
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_CALLERS {
                known.clear();
            }
            known.insert(sender.clone(), (uid, invoker));
        }
        Ok(Caller {
            uid,
            connection: sender,
            invoker,
            on_host: None,
        })
    }

    fn cached(&self, sender: &str) -> Option<(u32, Option<u32>)> {
        self.known.lock().ok()?.get(sender).copied()
    }

    /// A connection left the bus.
    pub fn forget(&self, connection: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(connection);
        }
    }

    /// How many times the bus was asked for a caller's uid.
    pub fn asked(&self) -> u64 {
        self.asked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `org.twofactor.Login1` on the system bus. The login socket serves the
/// same calls to the same [`Logins`] (`login_socket::calls`), its caller
/// known from the kernel.
pub struct LoginInterface {
    pub logins: Arc<dyn LoginSteps>,
    pub callers: Arc<Callers>,
}

#[zbus::interface(name = "org.twofactor.Login1")]
impl LoginInterface {
    /// Starts a login; returns the session id and the first step.
    async fn begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        details: HashMap<String, OwnedValue>,
    ) -> Result<(String, WireStep), Error> {
        let origin = Origin::from_details(|key| {
            details.get(key).map(|v| match &**v {
                Value::Str(s) => Some(s.as_str().to_string()),
                _ => None,
            })
        })?;
        // The caller's uid is asked of the bus while the name is resolved.
        let caller = Box::pin(self.callers.of(conn, &header));
        let (id, step) = self.logins.begin_with(caller, origin).await?;
        Ok((id, step.to_wire()))
    }

    /// Answers the question of the last step; returns the next step.
    async fn answer(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        session: String,
        answer: Vec<u8>,
    ) -> Result<(WireStep,), Error> {
        let caller = self.callers.of(conn, &header).await?;
        let step = self.logins.answer(&caller, &session, answer).await?;
        Ok((step.to_wire(),))
    }

    /// Forgets a login in progress.
    async fn cancel(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        session: String,
    ) -> Result<(), Error> {
        let caller = self.callers.of(conn, &header).await?;
        self.logins.cancel(&caller, &session).await
    }

    /// Stores what the login left pending; called once the whole PAM auth
    /// stack has succeeded.
    async fn commit(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        session: String,
    ) -> Result<(WireStep,), Error> {
        let caller = self.callers.of(conn, &header).await?;
        let step = self.logins.commit(&caller, &session).await?;
        Ok((step.to_wire(),))
    }
}

pub struct AccountInterface {
    pub accounts: Arc<dyn AccountRequests>,
    pub callers: Arc<Callers>,
}

impl AccountInterface {
    /// Hands `call` on for the caller of the message with `header`.
    async fn call<T: TryFrom<Reply, Error = Error>>(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        call: AccountCall,
    ) -> Result<T, Error> {
        let caller = self.callers.of(conn, header).await?;
        self.accounts.account(&caller, call).await?.take()
    }
}

#[zbus::interface(name = "org.twofactor.Account1")]
impl AccountInterface {
    /// The caller's own account.
    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(AccountStatus,), Error> {
        Ok((self.call(conn, &header, AccountCall::Status).await?,))
    }

    /// Starts enrolment of an authenticator app (needs the password and,
    /// when the account has a method, a current second factor).
    async fn enroll_app(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(AppEnrolment,), Error> {
        let call = AccountCall::EnrollApp(Proof::new(password, code));
        Ok((self.call(conn, &header, call).await?,))
    }

    /// Activates the app with a code from it; returns new backup codes.
    async fn confirm_app(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enrolment: String,
        code: String,
    ) -> Result<Vec<String>, Error> {
        let call = AccountCall::ConfirmApp { enrolment, code };
        self.call(conn, &header, call).await
    }

    /// A new set of backup codes; the old set stops working (needs the
    /// password, an active method and a current second factor).
    async fn new_backup_codes(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<Vec<String>, Error> {
        let call = AccountCall::NewBackupCodes(Proof::new(password, code));
        self.call(conn, &header, call).await
    }

    /// Sends a code to a new email address (needs the password, and a
    /// current second factor when the account has a method); returns the
    /// address masked. Active once confirmed.
    async fn enroll_email(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        address: String,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<String, Error> {
        let proof = Proof::new(password, code);
        let call = AccountCall::EnrollEmail { address, proof };
        self.call(conn, &header, call).await
    }

    /// Sends a code to the confirmed address, to confirm a change with;
    /// returns the address masked.
    async fn send_code(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.call(conn, &header, AccountCall::SendCode).await
    }

    /// Sends a new code to the address being confirmed; returns it masked.
    async fn resend_email(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.call(conn, &header, AccountCall::ResendEmail).await
    }

    /// Activates email codes with the code sent; returns new backup codes
    /// when email is the first method (else none).
    async fn confirm_email(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        code: String,
    ) -> Result<Vec<String>, Error> {
        self.call(conn, &header, AccountCall::ConfirmEmail { code })
            .await
    }

    /// The method a login asks first ("" for the one used last).
    async fn set_preferred(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        method: String,
    ) -> Result<(), Error> {
        self.call(conn, &header, AccountCall::SetPreferred { method })
            .await
    }

    /// The caller's trusted devices.
    async fn list_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<Device>, Error> {
        self.call(conn, &header, AccountCall::ListDevices).await
    }

    /// Removes a trusted device by id, or all (needs the password and a
    /// current second factor).
    async fn remove_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        id: String,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<u32, Error> {
        let proof = Proof::new(password, code);
        self.call(conn, &header, AccountCall::RemoveDevices { id, proof })
            .await
    }

    /// Registers a security-key SSH public key (one .pub line) as a method
    /// (needs the password and, when the account has a method, a current
    /// second factor); with its key handle (from the private key file;
    /// empty: none) the same credential also serves local logins. Returns
    /// its id and, as a first method, new backup codes (else none).
    async fn enroll_ssh_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        public_key: String,
        key_handle: Vec<u8>,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(String, Vec<String>), Error> {
        let call = AccountCall::EnrollSshKey {
            public_key,
            key_handle,
            proof: Proof::new(password, code),
        };
        self.call(conn, &header, call).await
    }

    /// The caller's security-key SSH keys.
    async fn list_ssh_keys(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<SshKey>, Error> {
        self.call(conn, &header, AccountCall::ListSshKeys).await
    }

    /// Starts registering a FIDO2 security key (needs the password and,
    /// when the account has a method, a current second factor); returns
    /// the enrolment's id and what the key is to create (an encoded
    /// credential request, for `twofactorctl` to hand to the key).
    async fn enroll_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(String, Vec<u8>), Error> {
        let call = AccountCall::EnrollKey(Proof::new(password, code));
        self.call(conn, &header, call).await
    }

    /// Finishes registering a key with what it answered (an encoded
    /// attestation) and the name the user gave it; returns its id and, as
    /// a first method, new backup codes (else none).
    async fn confirm_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enrolment: String,
        label: String,
        attestation: Vec<u8>,
    ) -> Result<(String, Vec<String>), Error> {
        let call = AccountCall::ConfirmKey {
            enrolment,
            label,
            attestation,
        };
        self.call(conn, &header, call).await
    }

    /// The caller's security keys.
    async fn list_keys(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<SshKey>, Error> {
        self.call(conn, &header, AccountCall::ListKeys).await
    }

    /// Removes one security key by id (needs the password and a current
    /// second factor; the last one: as `Disable("key")`).
    async fn remove_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        id: String,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(), Error> {
        let proof = Proof::new(password, code);
        self.call(conn, &header, AccountCall::RemoveKey { id, proof })
            .await
    }

    /// Removes a method, or all (needs the password and a current second
    /// factor).
    async fn disable(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        method: String,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(), Error> {
        let proof = Proof::new(password, code);
        self.call(conn, &header, AccountCall::Disable { method, proof })
            .await
    }
}

pub struct AdminInterface {
    pub admin: Arc<dyn AdminRequests>,
    pub callers: Arc<Callers>,
}

impl AdminInterface {
    /// Hands `call` on for the caller of the message with `header`.
    async fn call<T: TryFrom<Reply, Error = Error>>(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        call: AdminCall,
    ) -> Result<T, Error> {
        let caller = self.callers.of(conn, header).await?;
        self.admin.admin(&caller, call).await?.take()
    }
}

#[zbus::interface(name = "org.twofactor.Admin1")]
impl AdminInterface {
    /// The mandatory policy.
    async fn get_policy(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(Policy,), Error> {
        Ok((self.call(conn, &header, AdminCall::GetPolicy).await?,))
    }

    /// Sets the mandatory policy (from: YYYY-MM-DD or empty).
    async fn set_policy(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        mandatory: bool,
        groups: Vec<String>,
        from: String,
        password: Vec<u8>,
    ) -> Result<(), Error> {
        let call = AdminCall::SetPolicy {
            mandatory,
            groups,
            from,
            password: Password::new(password),
        };
        self.call(conn, &header, call).await
    }

    /// The system's human users and every user the daemon knows.
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<UserReport>, Error> {
        self.call(conn, &header, AdminCall::ListUsers).await
    }

    /// One user.
    async fn get_user(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<(UserReport,), Error> {
        Ok((self
            .call(conn, &header, AdminCall::GetUser { user })
            .await?,))
    }

    /// Removes the user's methods; returns a 24-hour single-use recovery code.
    async fn reset(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        password: Vec<u8>,
    ) -> Result<(Recovery,), Error> {
        let password = Password::new(password);
        Ok((self
            .call(conn, &header, AdminCall::Reset { user, password })
            .await?,))
    }

    /// Clears a lockout.
    async fn unlock(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        password: Vec<u8>,
    ) -> Result<(), Error> {
        let password = Password::new(password);
        self.call(conn, &header, AdminCall::Unlock { user, password })
            .await
    }

    /// A user's trusted devices.
    async fn list_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<Device>, Error> {
        self.call(conn, &header, AdminCall::ListDevices { user })
            .await
    }

    /// A user's security keys: (method, (id, name, added, last used)),
    /// `key` for FIDO2 keys, `ssh-key` for security-key SSH keys.
    async fn list_keys(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<(String, SshKey)>, Error> {
        self.call(conn, &header, AdminCall::ListKeys { user }).await
    }

    /// Removes a user's trusted device by id, or all.
    async fn remove_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        id: String,
        password: Vec<u8>,
    ) -> Result<u32, Error> {
        let call = AdminCall::RemoveDevices {
            user,
            id,
            password: Password::new(password),
        };
        self.call(conn, &header, call).await
    }

    /// Imports ~user/.google_authenticator (or path).
    async fn import_google_authenticator(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        path: String,
        password: Vec<u8>,
    ) -> Result<(ImportReport,), Error> {
        let call = AdminCall::ImportGoogleAuthenticator {
            user,
            path,
            password: Password::new(password),
        };
        Ok((self.call(conn, &header, call).await?,))
    }

    /// Imports the file of every user who has one.
    async fn import_google_authenticator_all(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        password: Vec<u8>,
    ) -> Result<Vec<ImportReport>, Error> {
        let password = Password::new(password);
        self.call(
            conn,
            &header,
            AdminCall::ImportGoogleAuthenticatorAll { password },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::account::Accounts;
    use crate::api::admin::Admin;
    use crate::api::login::Logins;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use zbus::object_server::Interface;

    fn introspect(iface: &dyn Interface) -> String {
        let mut xml = String::new();
        iface.introspect_to_writer(&mut xml, 0);
        xml
    }

    fn normalise(xml: &str) -> Vec<String> {
        xml.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with("<!--"))
            .collect()
    }

    /// The served interfaces are exactly the reviewed XML in proto/interfaces.
    #[test]
    fn served_interfaces_match_reviewed_xml() {
        let clock = ManualClock::at(0);
        let handles = crate::services::testing::handles(
            Config::default(),
            &clock,
            &[],
            &[],
            Arc::new(crate::adapters::smtp::Disabled),
        );
        let callers = Arc::new(Callers::default());
        let login = LoginInterface {
            logins: Arc::new(Logins::new(&handles)),
            callers: callers.clone(),
        };
        let account = AccountInterface {
            accounts: Arc::new(Accounts::new(&handles)),
            callers: callers.clone(),
        };
        let admin = AdminInterface {
            admin: Arc::new(Admin::new(&handles)),
            callers,
        };
        for (served, file) in [
            (introspect(&login), "org.twofactor.Login1.xml"),
            (introspect(&account), "org.twofactor.Account1.xml"),
            (introspect(&admin), "org.twofactor.Admin1.xml"),
        ] {
            let path = format!("{}/../proto/interfaces/{file}", env!("CARGO_MANIFEST_DIR"));
            if std::env::var_os("TWOFACTOR_WRITE_XML").is_some() {
                std::fs::write(&path, &served).unwrap();
            }
            let reviewed = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                normalise(&served),
                normalise(&reviewed),
                "{file} differs from the served interface"
            );
        }
    }
}
