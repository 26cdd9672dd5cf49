//! `Account1`: a user about their own account. The account is always the
//! caller's (from the bus credentials); changes that could weaken it need
//! the account password again.

use crate::adapters::syslog::Audit;
use crate::adapters::syslog::Event;
use crate::api::requests::{AccountCall, AccountRequests, Reply};
use crate::clock::Clock;
use crate::config::Config;
use crate::random;
use crate::random::Random;
use crate::rules::backup_codes::{self, Code};
use crate::rules::bookkeeping;
use crate::rules::email_codes::{self, EmailCheck, Purpose, Sent};
use crate::rules::methods::{self, BackupCodes, Method, NewMethod};
use crate::rules::policy::{self, Applies};
use crate::rules::ratelimit::REAUTH_SOURCE;
use crate::rules::security_keys;
use crate::rules::ssh_keys;
use crate::rules::totp::{self, Confirm, Secret};
use crate::rules::trusted_devices;
use crate::services::directory::Directory;
use crate::services::factors::{classify, Asked, Factors, Verdict};
use crate::services::hash_pool::HashPool;
use crate::services::notices::Notice;
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::services::{Caller, Handles};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use twofactor_proto::error::Error;
use twofactor_proto::key::{Attestation, CredentialRequest, HASH_LEN};
use twofactor_proto::types::{method, AppEnrolment, Device, SshKey};
use twofactor_proto::AccountStatus;
use zeroize::Zeroizing;

pub struct Accounts {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    audit: Arc<Audit>,
    hashing: Arc<HashPool>,
    passwords: Arc<Passwords>,
    factors: Arc<Factors>,
    outbox: Arc<Outbox>,
    directory: Directory,
    /// Security-key enrolments between `EnrollKey` and `ConfirmKey`, one
    /// per user (a newer one replaces it).
    key_enrolments: Arc<std::sync::Mutex<HashMap<String, KeyEnrolment>>>,
}

/// A challenge handed to `twofactorctl` for a new key.
struct KeyEnrolment {
    id: String,
    request: CredentialRequest,
    expires: i64,
}

/// How long a key enrolment waits for the key's answer.
const KEY_ENROLMENT_SECONDS: i64 = 120;

impl Accounts {
    pub fn new(h: &Handles) -> Self {
        Accounts {
            config: h.config.clone(),
            store: h.store.clone(),
            clock: h.clock.clone(),
            rng: h.rng.clone(),
            audit: h.audit.clone(),
            hashing: h.hashing.clone(),
            passwords: h.passwords.clone(),
            factors: h.factors.clone(),
            outbox: h.outbox.clone(),
            directory: h.directory.clone(),
            key_enrolments: Default::default(),
        }
    }

    pub async fn status(&self, caller: &Caller) -> Result<AccountStatus, Error> {
        let user = self.user_of(caller).await?;
        let now = self.clock.now();
        self.store
            .run(move |c| crate::rules::account_view::status(c, &user, now))
            .await
            .map_err(|e| self.internal("status", &e.to_string()))
    }

    /// Checks the password, makes a new secret and keeps it pending until
    /// [`Accounts::confirm_app`] sees a right code from the app.
    pub async fn enroll_app(
        &self,
        caller: &Caller,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<AppEnrolment, Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        let user = self.user_of(caller).await?;
        self.prove(caller, &user, password, code, "enroll-app")
            .await?;
        let secret = Secret::generate(self.rng.as_ref())
            .map_err(|e| self.internal("enroll-app", &e.to_string()))?;
        let id = random::token(self.rng.as_ref())
            .map_err(|e| self.internal("enroll-app", &e.to_string()))?;
        let issuer = self.config.issuer_or_hostname();
        let host = crate::config::hostname();
        let enrolment = AppEnrolment {
            enrolment: id.clone(),
            secret_base32: secret.base32(),
            uri: secret.uri(&issuer, &format!("{user}@{host}")),
        };
        let now = self.clock.now();
        let u = user.clone();
        self.store
            .run(move |c| {
                bookkeeping::ensure(c, &u, now)?;
                totp::add_pending(c, &id, &u, &secret, now)
            })
            .await
            .map_err(|e| self.internal("enroll-app", &e.to_string()))?;
        self.audit.log(Event::EnrolStart {
            user: &user,
            method: method::APP,
        });
        Ok(enrolment)
    }

    /// Activates the app if `code` is right for the pending secret, and
    /// makes a new set of backup codes in the same transaction (the old
    /// set, if any, stops working). Returns the codes, shown once.
    pub async fn confirm_app(
        &self,
        caller: &Caller,
        id: &str,
        code: &str,
    ) -> Result<Vec<String>, Error> {
        let user = self.user_of(caller).await?;
        let code = totp::parse_code(code.as_bytes()).map_err(|_| {
            Error::InvalidInput("the confirmation code is the 6 digits the app shows".into())
        })?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_pending());
        }
        let now = self.clock.now();
        let skew = self.config.totp.skew_steps;
        // Check first, so that a wrong code costs no hashing.
        let (u, i, c) = (user.clone(), id.to_string(), code.clone());
        let checked = self
            .store
            .run(move |conn| totp::check_pending(conn, &i, &u, &c, now, skew))
            .await
            .map_err(|e| self.internal("confirm-app", &e.to_string()))?;
        if checked != Confirm::Activated {
            return Err(self.confirm_failed(&user, checked));
        }
        let (codes, hashed) = self.new_set("confirm-app").await?;
        let (u, i) = (user.clone(), id.to_string());
        let outcome = self
            .store
            .run(move |conn| {
                let outcome = totp::confirm_pending(conn, &i, &u, &code, now, skew)?;
                if outcome == Confirm::Activated {
                    // `enable app` always shows a new set, first method or not.
                    methods::activate(
                        conn,
                        &u,
                        NewMethod::Written(Method::App),
                        BackupCodes::Replace(&hashed),
                        now,
                    )?;
                }
                Ok(outcome)
            })
            .await
            .map_err(|e| self.internal("confirm-app", &e.to_string()))?;
        if outcome != Confirm::Activated {
            return Err(self.confirm_failed(&user, outcome));
        }
        self.audit.log(Event::Enrol {
            user: &user,
            method: method::APP,
        });
        self.audit.log(Event::BackupCodesNew {
            user: &user,
            count: codes.len(),
        });
        self.outbox.notify(&user, Notice::MethodAdded(Method::App));
        Ok(codes.iter().map(Code::display).collect())
    }

    /// Checks the password and sends a code to `address`; the method is
    /// active (or the address replaces the old one) only once
    /// [`Accounts::confirm_email`] gets that code. Returns the masked
    /// address.
    pub async fn enroll_email(
        &self,
        caller: &Caller,
        address: &str,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<String, Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        if !Method::Email.offered(&self.config) {
            return Err(email_off());
        }
        if !crate::message::valid_address(address) {
            return Err(Error::InvalidInput(
                "that is not an email address this daemon accepts (name@domain, ASCII, no \
                 spaces)"
                    .into(),
            ));
        }
        let user = self.user_of(caller).await?;
        self.prove(caller, &user, password, code, "enroll-email")
            .await?;
        self.audit.log(Event::EnrolStart {
            user: &user,
            method: method::EMAIL,
        });
        self.send_confirmation(&user, address).await
    }

    /// Sends a new confirmation code to the address being confirmed (the
    /// previous code stops working). Returns the masked address.
    pub async fn resend_email(&self, caller: &Caller) -> Result<String, Error> {
        if !Method::Email.offered(&self.config) {
            return Err(email_off());
        }
        let user = self.user_of(caller).await?;
        let now = self.clock.now();
        let u = user.clone();
        let address = self
            .store
            .run(move |c| email_codes::pending_address(c, &u, now))
            .await
            .map_err(|e| self.internal("resend-email", &e.to_string()))?
            .ok_or_else(no_email_pending)?;
        self.send_confirmation(&user, &address).await
    }

    async fn send_confirmation(&self, user: &str, address: &str) -> Result<String, Error> {
        let send = email_codes::Send {
            user,
            purpose: Purpose::Confirm,
            source: email_codes::CTL_SOURCE,
        };
        self.mail_code(send, address).await
    }

    /// Mails a code for `send` to `address`; the address masked, or why no
    /// code went out.
    async fn mail_code(&self, send: email_codes::Send<'_>, address: &str) -> Result<String, Error> {
        match self.outbox.send_code(send, address, "twofactorctl").await {
            Sent::Sent => Ok(crate::message::masked(address)),
            Sent::TooMany { wait, .. } => Err(Error::RateLimited(format!(
                "too many codes were sent; the next can be sent in {} minutes",
                (wait + 59) / 60
            ))),
            Sent::Failed => Err(Error::Internal(
                "the code could not be sent (the daemon's log says why); try again later".into(),
            )),
        }
    }

    /// Activates email codes (or moves them to the new address) if `code`
    /// is the one sent. When email is the user's first method, returns a
    /// new set of backup codes (shown once); otherwise none.
    pub async fn confirm_email(&self, caller: &Caller, code: &str) -> Result<Vec<String>, Error> {
        if !Method::Email.offered(&self.config) {
            return Err(email_off());
        }
        let user = self.user_of(caller).await?;
        let code = totp::parse_code(code.as_bytes()).map_err(|_| {
            Error::InvalidInput("the confirmation code is the 6 digits of the email".into())
        })?;
        let (codes, hashed) = self.new_set("confirm-email").await?;
        let now = self.clock.now();
        let u = user.clone();
        let outcome = self
            .store
            .run(move |c| {
                let first = !methods::has_any(c, &u)?;
                let old = email_codes::address(c, &u)?;
                let found = email_codes::check(
                    c,
                    &u,
                    (Purpose::Confirm, email_codes::CTL_SOURCE),
                    &code,
                    now,
                )?;
                if let EmailCheck::Accepted(address) = &found {
                    // Email brings backup codes only as a first method: a
                    // user who has the app keeps the set they saved.
                    let backups = if first {
                        BackupCodes::Replace(&hashed)
                    } else {
                        BackupCodes::Keep
                    };
                    methods::activate(c, &u, NewMethod::Email { address }, backups, now)?;
                }
                Ok((found, first, old))
            })
            .await
            .map_err(|e| self.internal("confirm-email", &e.to_string()))?;
        match outcome {
            (EmailCheck::Accepted(new), first, old) => {
                self.audit.log(Event::Enrol {
                    user: &user,
                    method: method::EMAIL,
                });
                let notice = match old {
                    Some(old) if old != new => Notice::AddressChanged { old, new },
                    _ => Notice::MethodAdded(Method::Email),
                };
                self.outbox.notify(&user, notice);
                if !first {
                    return Ok(Vec::new());
                }
                self.audit.log(Event::BackupCodesNew {
                    user: &user,
                    count: codes.len(),
                });
                Ok(codes.iter().map(Code::display).collect())
            }
            (found, ..) => {
                let reason = match found {
                    EmailCheck::Wrong => "wrong-code",
                    EmailCheck::Dropped => "wrong-code-dropped",
                    EmailCheck::Expired => "expired",
                    _ => "no-code",
                };
                self.audit.log(Event::EnrolFailure {
                    user: &user,
                    method: method::EMAIL,
                    reason,
                });
                Err(match found {
                    EmailCheck::Wrong => Error::BadCode(
                        "wrong code; check the latest email, or ask for a new code".into(),
                    ),
                    EmailCheck::Dropped => Error::BadCode(
                        "wrong code, too many times; start again with `twofactorctl enable email ADDRESS`"
                            .into(),
                    ),
                    EmailCheck::Expired => Error::NotFound(
                        "that code has expired; start again with `twofactorctl enable email \
                         ADDRESS`"
                            .into(),
                    ),
                    _ => no_email_pending(),
                })
            }
        }
    }

    /// The method a login asks first: one the user has, or "" to go back
    /// to the one used last.
    pub async fn set_preferred(&self, caller: &Caller, which: &str) -> Result<(), Error> {
        let wanted = match which {
            "" => None,
            name => Some(Method::from_name(name).ok_or_else(|| unknown_method(which))?),
        };
        let user = self.user_of(caller).await?;
        let now = self.clock.now();
        let u = user.clone();
        let set = self
            .store
            .run(move |c| {
                if let Some(m) = wanted {
                    if !m.is_enrolled(c, &u)? {
                        return Ok(false);
                    }
                }
                bookkeeping::ensure(c, &u, now)?;
                bookkeeping::set_preferred(c, &u, wanted.map(Method::name).unwrap_or(""))?;
                Ok(true)
            })
            .await
            .map_err(|e| self.internal("prefer", &e.to_string()))?;
        if !set {
            return Err(Error::NotEnrolled(format!(
                "you have no {which} method; set it up first (`twofactorctl enable {which}`)"
            )));
        }
        self.audit.log(Event::Prefer {
            user: &user,
            method: which,
        });
        Ok(())
    }

    /// Registers a security-key SSH public key (one `.pub` line) as a
    /// method, after the password and, when the account has a method, a
    /// current second factor. Returns the key's id and, when it is the
    /// first method, a first set of backup codes (shown once; else none).
    pub async fn enroll_ssh_key(
        &self,
        caller: &Caller,
        public_key: &str,
        key_handle: Vec<u8>,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(String, Vec<String>), Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        if !Method::SshKey.offered(&self.config) {
            return Err(Error::InvalidInput(
                "security keys over SSH are turned off on this machine ([keys] ssh)".into(),
            ));
        }
        // Refused before the password is asked of PAM: a wrong file costs
        // no try.
        let key = ssh_keys::parse_public_key(public_key)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        // With its key handle (from the private key file, which holds no
        // secret of a security key), the same credential also serves local
        // logins, under the relying party OpenSSH gave it.
        let credential = if key_handle.is_empty() {
            None
        } else {
            if key_handle.len() > ssh_keys::MAX_KEY_HANDLE_BYTES {
                return Err(Error::InvalidInput(format!(
                    "the key handle is longer than {} bytes",
                    ssh_keys::MAX_KEY_HANDLE_BYTES
                )));
            }
            let parts = key.fido_parts().ok_or_else(|| {
                Error::InvalidInput(
                    "this key was not made by OpenSSH for a security key (its application \
                     does not start with ssh:); give its .pub file alone"
                        .into(),
                )
            })?;
            Some(security_keys::Credential {
                credential_id: key_handle,
                alg: parts.alg,
                public_key: parts.public_key,
                aaguid: Vec::new(),
                sign_count: 0,
                rp_id: parts.application,
            })
        };
        let user = self.user_of(caller).await?;
        self.prove(caller, &user, password, code, "enroll-ssh-key")
            .await?;
        let id = trusted_devices::new_id(self.rng.as_ref())
            .map_err(|e| self.internal("enroll-ssh-key", &e.to_string()))?;
        let (codes, hashed) = self.new_set("enroll-ssh-key").await?;
        let now = self.clock.now();
        let (u, i) = (user.clone(), id.clone());
        let label = key.label();
        let outcome = self
            .store
            .run(move |c| {
                let with_credential = |c: &crate::store::Db, id: &str| match &credential {
                    Some(cred) if security_keys::find(c, &u, &cred.credential_id)?.is_none() => {
                        security_keys::add(c, &u, id, &label, cred, now)
                    }
                    _ => Ok(false),
                };
                if let Some(existing) = ssh_keys::find(c, &u, &key)? {
                    // Registered from its .pub before: the key handle
                    // adds local logins, nothing else changes.
                    let added = with_credential(c, &existing)?;
                    return Ok(added.then_some((existing, None)));
                }
                // Backup codes only as a first method, as for email.
                let first = !methods::has_any(c, &u)?;
                let backups = if first {
                    BackupCodes::Replace(&hashed)
                } else {
                    BackupCodes::Keep
                };
                let new = NewMethod::SshKey { id: &i, key: &key };
                let added = methods::activate(c, &u, new, backups, now)?;
                with_credential(c, &i)?;
                Ok(Some((i.clone(), Some(added))))
            })
            .await
            .map_err(|e| self.internal("enroll-ssh-key", &e.to_string()))?;
        let Some((id, added)) = outcome else {
            return Err(Error::AlreadyEnrolled(
                "this security key is registered for your account already".into(),
            ));
        };
        let Some(added) = added else {
            // Only the credential for local logins was new.
            self.audit.log(Event::Enrol {
                user: &user,
                method: method::KEY,
            });
            self.outbox.notify(&user, Notice::MethodAdded(Method::Key));
            return Ok((id, Vec::new()));
        };
        self.audit.log(Event::Enrol {
            user: &user,
            method: method::SSH_KEY,
        });
        self.outbox
            .notify(&user, Notice::MethodAdded(Method::SshKey));
        if added.backup_codes.is_none() {
            return Ok((id, Vec::new()));
        }
        self.audit.log(Event::BackupCodesNew {
            user: &user,
            count: codes.len(),
        });
        Ok((id, codes.iter().map(Code::display).collect()))
    }

    /// Starts registering a FIDO2 security key, after the password and,
    /// when the account has a method, a current second factor: returns the
    /// enrolment's id and what the key is to create (an encoded
    /// `CredentialRequest`: the relying party, a handle for the account,
    /// a fresh challenge, the credentials the user has already).
    pub async fn enroll_key(
        &self,
        caller: &Caller,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(String, Vec<u8>), Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        if !Method::Key.offered(&self.config) {
            return Err(Error::InvalidInput(
                "security keys are turned off on this machine ([keys] local)".into(),
            ));
        }
        let user = self.user_of(caller).await?;
        let u = user.clone();
        let existing = self
            .store
            .read(move |c| security_keys::credential_ids(c, &u))
            .await
            .map_err(|e| self.internal("enroll-key", &e.to_string()))?;
        if existing.len() >= security_keys::MAX_KEYS {
            return Err(Error::InvalidInput(format!(
                "you have {} security keys, the most one account may have; remove one first",
                existing.len()
            )));
        }
        self.prove(caller, &user, password, code, "enroll-key")
            .await?;
        let mut fresh = [0u8; HASH_LEN + 16];
        self.rng
            .fill(&mut fresh)
            .map_err(|e| self.internal("enroll-key", &e.to_string()))?;
        let (challenge, handle) = fresh.split_at(HASH_LEN);
        let mut client_data_hash = [0u8; HASH_LEN];
        client_data_hash.copy_from_slice(challenge);
        let request = CredentialRequest {
            rp_id: self.config.key_rp_id(),
            user_id: handle.to_vec(),
            user_name: user.clone(),
            client_data_hash,
            user_verification: self.config.key_user_verification(),
            exclude: existing,
        };
        let id = random::token(self.rng.as_ref())
            .map_err(|e| self.internal("enroll-key", &e.to_string()))?;
        let encoded = request.encode();
        let now = self.clock.now();
        if let Ok(mut pending) = self.key_enrolments.lock() {
            pending.retain(|_, p| p.expires > now);
            pending.insert(
                user,
                KeyEnrolment {
                    id: id.clone(),
                    request,
                    expires: now + KEY_ENROLMENT_SECONDS,
                },
            );
        }
        Ok((id, encoded))
    }

    /// Finishes registering a key: `attestation` (an encoded
    /// `Attestation`) must answer the enrolment's own request (libfido2
    /// checks the relying party, the challenge, the touch, the verification
    /// when required, and the attestation's signature). Returns the key's
    /// id and, when it is the first method, a first set of backup codes.
    pub async fn confirm_key(
        &self,
        caller: &Caller,
        enrolment: &str,
        label: &str,
        attestation: &[u8],
    ) -> Result<(String, Vec<String>), Error> {
        let label =
            security_keys::clean_label(label).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let attestation =
            Attestation::decode(attestation).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let user = self.user_of(caller).await?;
        let now = self.clock.now();
        let pending = self
            .key_enrolments
            .lock()
            .ok()
            .and_then(|mut p| match p.remove(&user) {
                Some(k) if k.id == enrolment && k.expires > now => Some(k),
                _ => None,
            })
            .ok_or_else(|| {
                Error::NotFound(
                    "no such key enrolment (it expired after 2 minutes, or a newer one \
                     replaced it); start again"
                        .into(),
                )
            })?;
        let credential = twofactor_fido::verify_attestation(&attestation, &pending.request)
            .map_err(|e| {
                self.audit.log(Event::ConfirmFailure {
                    user: &user,
                    action: "enroll-key",
                    reason: "bad-attestation",
                });
                Error::BadCode(format!("the security key's answer was not accepted: {e}"))
            })?;
        let credential = security_keys::Credential {
            credential_id: credential.id,
            alg: credential.alg.cose(),
            public_key: credential.public_key,
            aaguid: credential.aaguid.to_vec(),
            sign_count: credential.sign_count,
            rp_id: String::new(),
        };
        let id = trusted_devices::new_id(self.rng.as_ref())
            .map_err(|e| self.internal("enroll-key", &e.to_string()))?;
        let (codes, hashed) = self.new_set("enroll-key").await?;
        let (u, i) = (user.clone(), id.clone());
        let outcome = self
            .store
            .run(move |c| {
                if security_keys::find(c, &u, &credential.credential_id)?.is_some() {
                    return Ok(None);
                }
                let first = !methods::has_any(c, &u)?;
                let backups = if first {
                    BackupCodes::Replace(&hashed)
                } else {
                    BackupCodes::Keep
                };
                let new = NewMethod::Key {
                    id: &i,
                    label: &label,
                    credential: &credential,
                };
                methods::activate(c, &u, new, backups, now).map(Some)
            })
            .await
            .map_err(|e| self.internal("enroll-key", &e.to_string()))?;
        let Some(added) = outcome else {
            return Err(Error::AlreadyEnrolled(
                "this security key is registered for your account already".into(),
            ));
        };
        self.audit.log(Event::Enrol {
            user: &user,
            method: method::KEY,
        });
        self.outbox.notify(&user, Notice::MethodAdded(Method::Key));
        if added.backup_codes.is_none() {
            return Ok((id, Vec::new()));
        }
        self.audit.log(Event::BackupCodesNew {
            user: &user,
            count: codes.len(),
        });
        Ok((id, codes.iter().map(Code::display).collect()))
    }

    /// The caller's security keys.
    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<SshKey>, Error> {
        let user = self.user_of(caller).await?;
        self.store
            .run(move |c| security_keys::list(c, &user))
            .await
            .map_err(|e| self.internal("keys", &e.to_string()))
    }

    /// Removes one security key (by id) after the password and a current
    /// second factor. The last key is the method: removing it is
    /// `disable key` (refused while the mandatory policy needs it).
    pub async fn remove_key(
        &self,
        caller: &Caller,
        id: &str,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(), Error> {
        let user = self.user_of(caller).await?;
        let u = user.clone();
        let keys = self
            .store
            .read(move |c| security_keys::list(c, &u))
            .await
            .map_err(|e| self.internal("remove-key", &e.to_string()))?;
        if !keys.iter().any(|k| k.id == id) {
            return Err(Error::NotFound(format!(
                "you have no security key {id:?} (`twofactorctl keys` lists them)"
            )));
        }
        if keys.len() == 1 {
            return self.disable(caller, method::KEY, password, code).await;
        }
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        self.prove(caller, &user, password, code, "remove-key")
            .await?;
        let (u, i) = (user.clone(), id.to_string());
        let removed = self
            .store
            .run(move |c| {
                let removed = security_keys::remove_one(c, &u, &i)?;
                if removed {
                    trusted_devices::remove_all(c, &u)?;
                }
                Ok(removed)
            })
            .await
            .map_err(|e| self.internal("remove-key", &e.to_string()))?;
        if !removed {
            return Err(Error::NotFound(format!("you have no security key {id:?}")));
        }
        self.audit.log(Event::Disable {
            user: &user,
            method: method::KEY,
        });
        self.outbox
            .notify(&user, Notice::MethodRemoved(Some(Method::Key)));
        Ok(())
    }

    /// The caller's security-key SSH keys.
    pub async fn list_ssh_keys(&self, caller: &Caller) -> Result<Vec<SshKey>, Error> {
        let user = self.user_of(caller).await?;
        self.store
            .run(move |c| ssh_keys::list(c, &user))
            .await
            .map_err(|e| self.internal("ssh-keys", &e.to_string()))
    }

    /// The caller's trusted devices.
    pub async fn list_devices(&self, caller: &Caller) -> Result<Vec<Device>, Error> {
        let user = self.user_of(caller).await?;
        let now = self.clock.now();
        self.store
            .run(move |c| trusted_devices::list(c, &user, now))
            .await
            .map_err(|e| self.internal("devices", &e.to_string()))
    }

    /// Removes a trusted device (`all`: every one) after the password and a
    /// current second factor.
    pub async fn remove_devices(
        &self,
        caller: &Caller,
        id: &str,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<u32, Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        let user = self.user_of(caller).await?;
        self.prove(caller, &user, password, code, "devices-remove")
            .await?;
        remove_devices(&self.store, &self.audit, &user, id, &user).await
    }

    /// A new set of backup codes after the password and a current second
    /// factor; the old set stops
    /// working, and every trusted device's trust ends, in the same
    /// transaction.
    pub async fn new_backup_codes(
        &self,
        caller: &Caller,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<Vec<String>, Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        let user = self.user_of(caller).await?;
        self.refuse_without_method(&user).await?;
        self.prove(caller, &user, password, code, "backup-codes")
            .await?;
        let (codes, hashed) = self.new_set("backup-codes").await?;
        let now = self.clock.now();
        let u = user.clone();
        let replaced = self
            .store
            .run(move |c| {
                if !methods::has_any(c, &u)? {
                    return Ok(None);
                }
                backup_codes::renew(c, &u, &hashed, now).map(Some)
            })
            .await
            .map_err(|e| self.internal("backup-codes", &e.to_string()))?;
        let Some(devices_ended) = replaced else {
            return Err(Error::NotEnrolled(
                "backup codes need an active method first: run `twofactorctl enable app`".into(),
            ));
        };
        self.audit.log(Event::BackupCodesNew {
            user: &user,
            count: codes.len(),
        });
        if devices_ended > 0 {
            self.audit.log(Event::DevicesRemoved {
                user: &user,
                by: &user,
                device: "all",
                count: devices_ended,
                why: "backup-codes-new",
            });
        }
        self.outbox.notify(&user, Notice::BackupCodesNew);
        Ok(codes.iter().map(Code::display).collect())
    }

    async fn new_set(&self, context: &str) -> Result<(Vec<Code>, Vec<(String, String)>), Error> {
        self.hashing
            .new_set()
            .await
            .map_err(|e| self.internal(context, &e))
    }

    fn confirm_failed(&self, user: &str, outcome: Confirm) -> Error {
        match outcome {
            Confirm::WrongCode { dropped } => {
                self.audit.log(Event::EnrolFailure {
                    user,
                    method: method::APP,
                    reason: if dropped {
                        "wrong-code-dropped"
                    } else {
                        "wrong-code"
                    },
                });
                Error::BadCode(if dropped {
                    "wrong code, too many times; start again with `twofactorctl enable app`".into()
                } else {
                    "wrong code; check the app's clock and try the current code".into()
                })
            }
            Confirm::NotFound | Confirm::Activated => not_pending(),
        }
    }

    pub async fn disable(
        &self,
        caller: &Caller,
        which: &str,
        password: Vec<u8>,
        code: Vec<u8>,
    ) -> Result<(), Error> {
        let (password, code) = (Zeroizing::new(password), Zeroizing::new(code));
        // None: all methods.
        let only = match which {
            "all" => None,
            name => Some(Method::from_name(name).ok_or_else(|| unknown_method(which))?),
        };
        let user = self.user_of(caller).await?;
        self.refuse_removing_last_method(&user, only).await?;
        self.prove(caller, &user, password, code, "disable").await?;
        let u = user.clone();
        // With no method left, the backup codes go too: they are a fallback
        // for a method, not a method.
        let (removed, had) = self
            .store
            .run(move |c| {
                let had = email_codes::address(c, &u)?;
                let removed = match only {
                    Some(m) => m.remove(c, &u)?,
                    None => methods::remove_all(c, &u)?,
                };
                if !methods::has_any(c, &u)? {
                    backup_codes::remove_all(c, &u)?;
                }
                if removed {
                    trusted_devices::remove_all(c, &u)?;
                }
                Ok((removed, had))
            })
            .await
            .map_err(|e| self.internal("disable", &e.to_string()))?;
        if !removed {
            return Err(Error::NotEnrolled(
                "two-factor authentication is not enabled for your account".into(),
            ));
        }
        self.audit.log(Event::Disable {
            user: &user,
            method: which,
        });
        // Told at the address the user had: removing email must not
        // silence the notice of its removal.
        self.outbox
            .notify_at(&user, had, Notice::MethodRemoved(only));
        Ok(())
    }

    /// While the mandatory policy applies to the user, their last method
    /// stays: removing `only` (None: all) must leave one.
    async fn refuse_removing_last_method(
        &self,
        user: &str,
        only: Option<Method>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let initial = self.config.policy.clone();
        let u = user.to_string();
        let (enrolled, policy) = self
            .store
            .run(move |c| Ok((methods::enrolled(c, &u)?, policy::get(c, &initial)?)))
            .await
            .map_err(|e| self.internal("disable", &e.to_string()))?;
        let left = enrolled.iter().filter(|m| only.is_some_and(|o| o != **m));
        if enrolled.is_empty() || left.count() > 0 {
            return Ok(());
        }
        let u = user.to_string();
        let applies = self
            .directory
            .lookup(move |users| policy::applies_to_user(|| users.groups_of(&u), &policy, now))
            .await?
            // Group membership unknown: the method stays (fail closed).
            .map_err(|e| self.internal("disable", &e.to_string()))?;
        if applies == Applies::Now {
            return Err(Error::PermissionDenied(
                "two-factor authentication is mandatory for your account, so its last method \
                 cannot be removed. To move to a new phone, run `twofactorctl enable app` \
                 again (the new app replaces the old one); if the phone is lost, log in \
                 with a backup code or ask an administrator for a reset"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The caller's account: its uid's own name (looked up off the async
    /// workers), or, for a caller on a fleet's host, the name that host
    /// gives it.
    async fn user_of(&self, caller: &Caller) -> Result<String, Error> {
        let missing = || {
            Error::NotFound(format!(
                "uid {} has no user name on this system",
                caller.uid
            ))
        };
        if let Some(on) = &caller.on_host {
            return match &on.name {
                Some(name) if crate::adapters::nss::plausible_name(name) => Ok(name.clone()),
                Some(_) => Err(Error::InvalidInput(
                    "the host's name for the caller is not a user name".into(),
                )),
                None => Err(missing()),
            };
        }
        let uid = caller.uid;
        let name = self
            .directory
            .lookup(move |users| users.name_of(uid))
            .await?;
        name.ok_or_else(missing)
    }

    /// What confirms a change to the account: the password, then, when the
    /// account has a method, a current second factor (`code`: a code of one
    /// of its methods, or a backup code), through the one code-checking
    /// path, counted against the re-check's source. Someone with only the
    /// password, or a process running as the user, cannot take over or
    /// remove the second factor; who lost every factor asks an
    /// administrator for a reset. 6 digits are the email code when one was
    /// sent for this ([`Accounts::send_code`]) and is still valid, else
    /// the app's.
    async fn prove(
        &self,
        caller: &Caller,
        user: &str,
        password: Zeroizing<Vec<u8>>,
        code: Zeroizing<Vec<u8>>,
        action: &str,
    ) -> Result<(), Error> {
        // A fleet's host checked the password, which never leaves it
        // (`fleet::host`), counted here; the second factor is checked here.
        if caller.on_host.is_none() {
            self.passwords.check(user, password, action).await?;
        }
        let (u, now) = (user.to_string(), self.clock.now());
        let (enrolled, email_sent) = self
            .store
            .read(move |c| {
                let enrolled = methods::enrolled(c, &u)?;
                let sent = email_codes::has_live_code(c, &u, Purpose::Login, REAUTH_SOURCE, now)?;
                Ok((enrolled, sent))
            })
            .await
            .map_err(|e| self.internal(action, &e.to_string()))?;
        if enrolled.is_empty() {
            // A first method: there is no factor to prove yet.
            return Ok(());
        }
        let asked = if email_sent && enrolled.contains(&Method::Email) {
            Method::Email
        } else {
            enrolled[0]
        };
        let failed = |reason: &str| {
            self.audit.log(Event::ConfirmFailure {
                user,
                action,
                reason,
            });
        };
        let attempt = match classify(&code, asked) {
            Ok(a) => a,
            Err(_) => {
                failed("no-code");
                return Err(Error::BadCode(NEED_A_FACTOR.into()));
            }
        };
        let asked = Asked {
            user,
            source: REAUTH_SOURCE,
            login: None,
        };
        match self.factors.check(asked, attempt).await {
            Ok(Verdict::Accepted { .. }) => Ok(()),
            Ok(Verdict::Refused { reason, lock }) => {
                failed(reason);
                if let Some(seconds) = lock {
                    self.audit.log(Event::Lockout { user, seconds });
                }
                Err(Error::BadCode(format!("wrong code. {NEED_A_FACTOR}")))
            }
            Ok(Verdict::Locked(wait)) => {
                failed("locked");
                Err(Error::RateLimited(format!(
                    "too many failed attempts; try again in {wait} seconds"
                )))
            }
            Err(e) => Err(self.internal(action, &e)),
        }
    }

    /// Sends a code to the user's confirmed address, to confirm a change
    /// with (`twofactorctl` asks for it when email is the way the user has
    /// at hand). Counted against the re-check's source's send budget.
    pub async fn send_code(&self, caller: &Caller) -> Result<String, Error> {
        if !Method::Email.offered(&self.config) {
            return Err(email_off());
        }
        let user = self.user_of(caller).await?;
        let u = user.clone();
        let address = self
            .store
            .read(move |c| email_codes::address(c, &u))
            .await
            .map_err(|e| self.internal("send-code", &e.to_string()))?
            .ok_or_else(|| {
                Error::NotEnrolled("email codes are not set up for your account".into())
            })?;
        let send = email_codes::Send {
            user: &user,
            purpose: Purpose::Login,
            source: REAUTH_SOURCE,
        };
        self.mail_code(send, &address).await
    }

    /// New backup codes are a fallback for a method: refused before the
    /// password when there is none.
    async fn refuse_without_method(&self, user: &str) -> Result<(), Error> {
        let u = user.to_string();
        let has = self
            .store
            .read(move |c| methods::has_any(c, &u))
            .await
            .map_err(|e| self.internal("backup-codes", &e.to_string()))?;
        if has {
            Ok(())
        } else {
            Err(Error::NotEnrolled(
                "backup codes need an active method first: run `twofactorctl enable app`".into(),
            ))
        }
    }

    fn internal(&self, context: &str, error: &str) -> Error {
        self.audit.internal(context, error)
    }
}

/// Removes `user`'s device `id` (`all`: every one), as `by`; shared by the
/// user's own command and the administrator's.
pub(crate) async fn remove_devices(
    store: &Store,
    audit: &Audit,
    user: &str,
    id: &str,
    by: &str,
) -> Result<u32, Error> {
    let all = id == "all";
    if !all && (id.is_empty() || id.len() > 16 || !id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(Error::InvalidInput(
            "a device id is the hex id `devices` lists, or \"all\"".into(),
        ));
    }
    let (u, i) = (user.to_string(), id.to_ascii_lowercase());
    let removed = store
        .run(move |c| {
            if all {
                trusted_devices::remove_all(c, &u)
            } else {
                Ok(u32::from(trusted_devices::remove(c, &u, &i)?))
            }
        })
        .await
        .map_err(|e| audit.internal("devices-remove", &e.to_string()))?;
    if removed == 0 && !all {
        return Err(Error::NotFound(format!(
            "no trusted device with id {:?}",
            id.chars().take(16).collect::<String>()
        )));
    }
    audit.log(Event::DevicesRemoved {
        user,
        by,
        device: if all { "all" } else { id },
        count: removed,
        why: "removed",
    });
    Ok(removed)
}

#[async_trait::async_trait]
impl AccountRequests for Accounts {
    async fn account(&self, caller: &Caller, call: AccountCall) -> Result<Reply, Error> {
        Ok(match call {
            AccountCall::Status => self.status(caller).await?.into(),
            AccountCall::EnrollApp(proof) => {
                let (password, code) = proof.take();
                self.enroll_app(caller, password, code).await?.into()
            }
            AccountCall::ConfirmApp { enrolment, code } => {
                self.confirm_app(caller, &enrolment, &code).await?.into()
            }
            AccountCall::NewBackupCodes(proof) => {
                let (password, code) = proof.take();
                self.new_backup_codes(caller, password, code).await?.into()
            }
            AccountCall::EnrollEmail { address, proof } => {
                let (password, code) = proof.take();
                self.enroll_email(caller, &address, password, code)
                    .await?
                    .into()
            }
            AccountCall::SendCode => self.send_code(caller).await?.into(),
            AccountCall::ResendEmail => self.resend_email(caller).await?.into(),
            AccountCall::ConfirmEmail { code } => self.confirm_email(caller, &code).await?.into(),
            AccountCall::SetPreferred { method } => {
                self.set_preferred(caller, &method).await?.into()
            }
            AccountCall::ListDevices => self.list_devices(caller).await?.into(),
            AccountCall::RemoveDevices { id, proof } => {
                let (password, code) = proof.take();
                self.remove_devices(caller, &id, password, code)
                    .await?
                    .into()
            }
            AccountCall::EnrollSshKey {
                public_key,
                key_handle,
                proof,
            } => {
                let (password, code) = proof.take();
                self.enroll_ssh_key(caller, &public_key, key_handle, password, code)
                    .await?
                    .into()
            }
            AccountCall::ListSshKeys => self.list_ssh_keys(caller).await?.into(),
            AccountCall::EnrollKey(proof) => {
                let (password, code) = proof.take();
                self.enroll_key(caller, password, code).await?.into()
            }
            AccountCall::ConfirmKey {
                enrolment,
                label,
                attestation,
            } => self
                .confirm_key(caller, &enrolment, &label, &attestation)
                .await?
                .into(),
            AccountCall::ListKeys => self.list_keys(caller).await?.into(),
            AccountCall::RemoveKey { id, proof } => {
                let (password, code) = proof.take();
                self.remove_key(caller, &id, password, code).await?.into()
            }
            AccountCall::Disable { method, proof } => {
                let (password, code) = proof.take();
                self.disable(caller, &method, password, code).await?.into()
            }
        })
    }
}

fn unknown_method(which: &str) -> Error {
    let names: Vec<String> = Method::ALL
        .iter()
        .map(|m| format!("{:?}", m.name()))
        .collect();
    Error::InvalidInput(format!(
        "unknown method {:?}; use {} or \"all\"",
        which.chars().take(32).collect::<String>(),
        names.join(", ")
    ))
}

/// What a change to an account with a method needs besides the password.
pub const NEED_A_FACTOR: &str = "a current second factor is needed: a code from your app, \
     a code sent by email, or a backup code (without any of them, an administrator can reset \
     your account)";

fn email_off() -> Error {
    Error::InvalidInput(
        "email codes are not offered on this machine (an administrator turns them on in \
         twofactord.toml, [email] codes = true)"
            .into(),
    )
}

fn no_email_pending() -> Error {
    Error::NotFound(
        "no email address is waiting for confirmation; run `twofactorctl enable email ADDRESS`"
            .into(),
    )
}

fn not_pending() -> Error {
    Error::NotFound(
        "no app enrolment in progress (it expires after 10 minutes); run `twofactorctl enable app` again"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixture::World;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::rules::{email_codes, policy};

    fn setup() -> World {
        World::at(
            Config {
                issuer: "Example".into(),
                ..Config::default()
            },
            1_700_000_000,
        )
    }

    fn alice() -> Caller {
        Caller {
            uid: 1000,
            connection: ":1.5".into(),
            invoker: None,
            on_host: None,
        }
    }

    #[test]
    fn enrol_confirm_disable() {
        let w = setup();
        let (a, clock, rt, audit) = (&w.accounts, &w.clock, &w.rt, &w.audit);
        assert!(matches!(
            rt.block_on(a.enroll_app(&alice(), b"nope".to_vec(), Vec::new())),
            Err(Error::BadPassword(_))
        ));
        let e = rt
            .block_on(a.enroll_app(&alice(), b"pw-a".to_vec(), Vec::new()))
            .unwrap();
        assert!(e.uri.starts_with("otpauth://totp/Example:alice%40"));
        assert!(e.uri.contains("issuer=Example"));
        let status = rt.block_on(a.status(&alice())).unwrap();
        assert!(status.methods.is_empty());
        assert!(status.enrolment_pending);
        // Confirm with a code computed from the returned secret.
        let secret = totp_rs::Secret::Encoded(e.secret_base32.clone())
            .to_bytes()
            .unwrap();
        assert_eq!(secret.len(), 20);
        let secret = Secret::from_bytes(secret);
        let wrong = if secret.code_at(clock.now(), 6) == "123456" {
            "654321"
        } else {
            "123456"
        };
        assert!(matches!(
            rt.block_on(a.confirm_app(&alice(), &e.enrolment, wrong)),
            Err(Error::BadCode(_))
        ));
        let codes = rt
            .block_on(a.confirm_app(&alice(), &e.enrolment, &secret.code_at(clock.now(), 6)))
            .unwrap();
        assert_eq!(codes.len(), 10);
        let status = rt.block_on(a.status(&alice())).unwrap();
        assert_eq!(status.methods, vec!["app".to_string()]);
        assert!(!status.enrolment_pending);
        assert_eq!(status.backup_codes_left, 10);
        // A new set needs the password and a current second factor (here
        // a backup code), and replaces the old one.
        assert!(matches!(
            rt.block_on(a.new_backup_codes(
                &alice(),
                b"bad".to_vec(),
                codes[0].clone().into_bytes()
            )),
            Err(Error::BadPassword(_))
        ));
        assert!(matches!(
            rt.block_on(a.new_backup_codes(&alice(), b"pw-a".to_vec(), Vec::new())),
            Err(Error::BadCode(_))
        ));
        let fresh = rt
            .block_on(a.new_backup_codes(&alice(), b"pw-a".to_vec(), codes[0].clone().into_bytes()))
            .unwrap();
        assert_eq!(fresh.len(), 10);
        assert!(fresh.iter().all(|c| !codes.contains(c)));
        // Disable needs the password.
        assert!(matches!(
            rt.block_on(a.disable(&alice(), "app", b"bad".to_vec(), Vec::new())),
            Err(Error::BadPassword(_))
        ));
        assert_eq!(rt.block_on(a.status(&alice())).unwrap().methods.len(), 1);
        rt.block_on(a.disable(
            &alice(),
            "app",
            b"pw-a".to_vec(),
            fresh[0].clone().into_bytes(),
        ))
        .unwrap();
        assert!(rt.block_on(a.status(&alice())).unwrap().methods.is_empty());
        // Nothing secret in the audit lines.
        let lines = audit.captured.lock().unwrap().join("\n");
        assert!(!lines.contains(&e.secret_base32));
        for c in codes.iter().chain(&fresh) {
            assert!(!lines.contains(c.as_str()));
        }
        assert!(!lines.contains("otpauth"));
        assert!(!lines.contains("pw-a"));
        assert!(lines.contains("enrol user=alice method=app"));
    }

    /// Managing a factor takes a factor (issue 18, item 3): with a method,
    /// the password alone changes nothing; a wrong or replayed code is
    /// refused, audited and counted like a login's, up to the lockout.
    #[test]
    fn a_change_takes_a_current_second_factor() {
        let w = setup();
        let (a, rt) = (&w.accounts, &w.rt);
        let secret = Secret::from_bytes(vec![1; 20]);
        rt.block_on(w.handles.store.run(|c| {
            bookkeeping::ensure(c, "alice", 0)?;
            totp::activate(c, "alice", &Secret::from_bytes(vec![1; 20]), 0, 0)
        }))
        .unwrap();
        let code = secret.code_at(w.clock.now(), 6);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let remove = |code: &str| {
            rt.block_on(a.remove_devices(&alice(), "all", b"pw-a".to_vec(), code.into()))
        };
        assert!(matches!(remove(""), Err(Error::BadCode(_))));
        assert!(matches!(remove(wrong), Err(Error::BadCode(_))));
        assert_eq!(remove(&code).unwrap(), 0);
        assert!(matches!(remove(&code), Err(Error::BadCode(_))), "replayed");
        let lines = w.audit_lines();
        assert!(lines.contains("confirm-failure user=alice action=devices-remove reason=no-code"));
        assert!(lines.contains("reason=wrong-code"));
        assert!(lines.contains("reason=replayed-code"));
        assert!(!lines.contains(&code));
        // Counted like a login's (the right code reset the count): the
        // fifth failure locks.
        for _ in 0..4 {
            assert!(matches!(remove(wrong), Err(Error::BadCode(_))));
        }
        assert!(matches!(remove(wrong), Err(Error::RateLimited(_))));
        w.clock.advance(30);
        let next = secret.code_at(w.clock.now(), 6);
        assert!(
            matches!(remove(&next), Err(Error::RateLimited(_))),
            "locked"
        );
        // Nothing was removed or changed: the method is there.
        assert_eq!(rt.block_on(a.status(&alice())).unwrap().methods, ["app"]);
    }

    #[test]
    fn a_callers_account_on_a_fleets_host_is_the_name_the_host_gives() {
        let w = setup();
        let on = |name: Option<&str>| Caller {
            on_host: Some(Arc::new(crate::services::HostCaller {
                host: "web1".into(),
                name: name.map(str::to_string),
            })),
            ..alice()
        };
        // Another uid here: the host's name is what counts.
        let caller = Caller {
            uid: 4242,
            ..on(Some("alice"))
        };
        let status = w.rt.block_on(w.accounts.status(&caller)).unwrap();
        assert_eq!(status.user, "alice");
        assert!(matches!(
            w.rt.block_on(w.accounts.status(&on(None))),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            w.rt.block_on(w.accounts.status(&on(Some("../x")))),
            Err(Error::InvalidInput(_))
        ));
        // A first method needs no factor; the password was the host's to
        // check (none here: no re-check runs).
        let e =
            w.rt.block_on(w.accounts.enroll_app(&caller, vec![], vec![]))
                .unwrap();
        let secret = totp_rs::Secret::Encoded(e.secret_base32.clone())
            .to_bytes()
            .unwrap();
        let code = Secret::from_bytes(secret).code_at(w.clock.now(), 6);
        w.rt.block_on(w.accounts.confirm_app(&caller, &e.enrolment, &code))
            .unwrap();
        // Now a change needs the account's second factor, whatever the host says.
        for code in [b"".to_vec(), b"000000".to_vec()] {
            let r =
                w.rt.block_on(w.accounts.disable(&caller, "app", vec![], code));
            assert!(matches!(r, Err(Error::BadCode(_))), "{r:?}");
        }
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            !lines.contains("reauth"),
            "a password was asked here: {lines}"
        );
    }

    #[test]
    fn wrong_passwords_are_limited() {
        let w = setup();
        let (a, rt) = (&w.accounts, &w.rt);
        for _ in 0..5 {
            assert!(matches!(
                rt.block_on(a.enroll_app(&alice(), b"x".to_vec(), Vec::new())),
                Err(Error::BadPassword(_))
            ));
        }
        // Now even the right password waits.
        assert!(matches!(
            rt.block_on(a.enroll_app(&alice(), b"pw-a".to_vec(), Vec::new())),
            Err(Error::RateLimited(_))
        ));
    }

    #[test]
    fn unknown_uid_and_bad_input() {
        let w = setup();
        let (a, rt) = (&w.accounts, &w.rt);
        let ghost = Caller {
            uid: 4242,
            connection: ":1.6".into(),
            invoker: None,
            on_host: None,
        };
        assert!(matches!(
            rt.block_on(a.status(&ghost)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            rt.block_on(a.disable(&alice(), "phone", b"pw-a".to_vec(), Vec::new())),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            rt.block_on(a.confirm_app(&alice(), "nope", "123456")),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            rt.block_on(a.confirm_app(&alice(), &"0".repeat(32), "12345x")),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            rt.block_on(a.disable(&alice(), "app", b"pw-a".to_vec(), Vec::new())),
            Err(Error::NotEnrolled(_))
        ));
    }

    fn mailing() -> World {
        let mut config = Config::default();
        config.email.codes = true;
        config.email.notices = true;
        World::at(config, 1_700_000_000)
    }

    fn code_in(mail: &crate::message::Mail) -> String {
        mail.body
            .split(|c: char| !c.is_ascii_digit())
            .find(|d| d.len() == 6)
            .unwrap()
            .to_string()
    }

    /// The `n` mails sent by now or soon (notices go out in the
    /// background): waits for them, up to 5 s.
    fn mails(w: &World, n: usize) -> Vec<crate::message::Mail> {
        w.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while w.mail.sent.lock().map(|s| s.len()).unwrap_or(0) < n
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        w.mail.take()
    }

    #[test]
    fn email_is_confirmed_before_it_counts_and_a_new_address_only_once_confirmed() {
        let w = mailing();
        let (a, rt) = (&w.accounts, &w.rt);
        assert!(matches!(
            rt.block_on(a.enroll_email(&alice(), "not an address", b"pw-a".to_vec(), Vec::new())),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            rt.block_on(a.enroll_email(&alice(), "a@example.com", b"bad".to_vec(), Vec::new())),
            Err(Error::BadPassword(_))
        ));
        assert!(w.mail.take().is_empty());
        let masked = rt
            .block_on(a.enroll_email(&alice(), "alice@example.com", b"pw-a".to_vec(), Vec::new()))
            .unwrap();
        assert_eq!(masked, "a***@example.com");
        let sent = w.mail.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "alice@example.com");
        let status = rt.block_on(a.status(&alice())).unwrap();
        assert!(status.methods.is_empty() && status.enrolment_pending);
        // Wrong code: refused; the right one activates and, as the first
        // method, brings backup codes.
        let code = code_in(&sent[0]);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matches!(
            rt.block_on(a.confirm_email(&alice(), wrong)),
            Err(Error::BadCode(_))
        ));
        let codes = rt.block_on(a.confirm_email(&alice(), &code)).unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(
            rt.block_on(a.status(&alice())).unwrap().methods,
            vec!["email".to_string()]
        );
        // Reused: nothing pending any more.
        assert!(matches!(
            rt.block_on(a.confirm_email(&alice(), &code)),
            Err(Error::NotFound(_))
        ));
        let notices = mails(&w, 1);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].to, "alice@example.com");
        assert!(notices[0].body.contains("method was added: codes by email"));
        // A new address replaces the old only once confirmed; a resend
        // voids the first code.
        // Email is a method now: the change takes a second factor too
        // (here a backup code).
        assert!(matches!(
            rt.block_on(a.enroll_email(&alice(), "new@example.net", b"pw-a".to_vec(), Vec::new())),
            Err(Error::BadCode(_))
        ));
        rt.block_on(a.enroll_email(
            &alice(),
            "new@example.net",
            b"pw-a".to_vec(),
            codes[0].clone().into_bytes(),
        ))
        .unwrap();
        let first = code_in(&w.mail.take()[0]);
        let address = |w: &World| {
            w.rt.block_on(w.handles.store.run(|c| email_codes::address(c, "alice")))
                .unwrap()
        };
        assert_eq!(address(&w).as_deref(), Some("alice@example.com"));
        assert_eq!(
            rt.block_on(a.resend_email(&alice())).unwrap(),
            "n***@example.net"
        );
        let second = code_in(&w.mail.take()[0]);
        if first != second {
            assert!(rt.block_on(a.confirm_email(&alice(), &first)).is_err());
        }
        assert_eq!(
            rt.block_on(a.confirm_email(&alice(), &second)).unwrap(),
            Vec::<String>::new(),
            "not the first method: the backup codes stay"
        );
        assert_eq!(address(&w).as_deref(), Some("new@example.net"));
        // The old address is told, not the new one.
        let notice = mails(&w, 1);
        assert_eq!(notice[0].to, "alice@example.com");
        assert!(notice[0]
            .body
            .contains("another address (n***@example.net)"));
        let lines = w.audit_lines();
        assert!(!lines.contains("alice@example.com") && !lines.contains("new@example.net"));
        assert!(!lines.contains(&code) && !lines.contains(&second));
    }

    #[test]
    fn email_is_refused_when_the_machine_does_not_offer_it() {
        let w = setup();
        assert!(matches!(
            w.rt.block_on(w.accounts.enroll_email(&alice(), "a@example.com", b"pw-a".to_vec(), Vec::new())),
            Err(Error::InvalidInput(m)) if m.contains("[email] codes")
        ));
    }

    #[test]
    fn prefer_only_a_method_one_has() {
        let w = mailing();
        let (a, rt) = (&w.accounts, &w.rt);
        assert!(matches!(
            rt.block_on(a.set_preferred(&alice(), "email")),
            Err(Error::NotEnrolled(_))
        ));
        assert!(matches!(
            rt.block_on(a.set_preferred(&alice(), "sms")),
            Err(Error::InvalidInput(_))
        ));
        rt.block_on(w.handles.store.run(|c| {
            bookkeeping::ensure(c, "alice", 0)?;
            email_codes::activate(c, "alice", "a@example.com", 0)
        }))
        .unwrap();
        rt.block_on(a.set_preferred(&alice(), "email")).unwrap();
        assert_eq!(rt.block_on(a.status(&alice())).unwrap().preferred, "email");
        rt.block_on(a.set_preferred(&alice(), "")).unwrap();
        assert_eq!(rt.block_on(a.status(&alice())).unwrap().preferred, "");
    }

    #[test]
    fn under_the_policy_either_of_two_methods_may_go_but_not_the_last() {
        let w = mailing();
        let (a, rt) = (&w.accounts, &w.rt);
        rt.block_on(w.handles.store.run(|c| {
            bookkeeping::ensure(c, "alice", 0)?;
            totp::activate(c, "alice", &Secret::from_bytes(vec![1; 20]), 0, 0)?;
            email_codes::activate(c, "alice", "a@example.com", 0)?;
            policy::set(
                c,
                &twofactor_proto::types::Policy {
                    mandatory: true,
                    ..Default::default()
                },
            )
        }))
        .unwrap();
        assert!(matches!(
            rt.block_on(a.disable(&alice(), "all", b"pw-a".to_vec(), Vec::new())),
            Err(Error::PermissionDenied(_))
        ));
        let app_code = Secret::from_bytes(vec![1; 20])
            .code_at(w.clock.now(), 6)
            .into_bytes();
        rt.block_on(a.disable(&alice(), "app", b"pw-a".to_vec(), app_code))
            .unwrap();
        assert!(matches!(
            rt.block_on(a.disable(&alice(), "email", b"pw-a".to_vec(), Vec::new())),
            Err(Error::PermissionDenied(_))
        ));
        let notices = mails(&w, 1);
        assert_eq!(notices.len(), 1);
        assert!(notices[0]
            .body
            .contains("method was removed: authenticator app"));
        // Notices go to the confirmed address, else the local mailbox. With
        // email alone, the code that confirms the change is sent first.
        assert_eq!(
            rt.block_on(a.send_code(&alice())).unwrap(),
            "a***@example.com"
        );
        let code = code_in(&w.mail.take()[0]);
        rt.block_on(a.new_backup_codes(&alice(), b"pw-a".to_vec(), code.into_bytes()))
            .unwrap();
        assert_eq!(mails(&w, 1)[0].to, "a@example.com");
        // Without a confirmed address: the local mailbox.
        let bob = Caller {
            uid: 1002,
            connection: ":1.9".into(),
            invoker: None,
            on_host: None,
        };
        rt.block_on(w.handles.store.run(|c| {
            bookkeeping::ensure(c, "staffer", 0)?;
            totp::activate(c, "staffer", &Secret::from_bytes(vec![2; 20]), 0, 0)
        }))
        .unwrap();
        let staff_code = Secret::from_bytes(vec![2; 20])
            .code_at(w.clock.now(), 6)
            .into_bytes();
        rt.block_on(a.new_backup_codes(&bob, b"pw-s".to_vec(), staff_code))
            .unwrap();
        let notice = mails(&w, 1);
        assert_eq!(notice[0].to, "staffer@localhost");
        assert!(notice[0].body.contains("new set of backup codes"));
    }

    #[test]
    fn removing_email_is_told_at_the_address_removed() {
        let w = mailing();
        let (a, rt) = (&w.accounts, &w.rt);
        rt.block_on(w.handles.store.run(|c| {
            bookkeeping::ensure(c, "alice", 0)?;
            email_codes::activate(c, "alice", "a@example.com", 0)
        }))
        .unwrap();
        rt.block_on(a.send_code(&alice())).unwrap();
        let code = code_in(&w.mail.take()[0]);
        rt.block_on(a.disable(&alice(), "email", b"pw-a".to_vec(), code.into_bytes()))
            .unwrap();
        let notice = mails(&w, 1);
        assert_eq!(notice[0].to, "a@example.com");
        assert!(notice[0]
            .body
            .contains("method was removed: codes by email"));
    }

    /// `enable app`: the post-state of methods::activate.
    #[test]
    fn confirming_the_app_is_a_method_added() {
        let w = setup();
        w.leave_leftovers("alice");
        let e =
            w.rt.block_on(
                w.accounts
                    .enroll_app(&alice(), b"pw-a".to_vec(), Vec::new()),
            )
            .unwrap();
        let secret = Secret::from_bytes(
            totp_rs::Secret::Encoded(e.secret_base32.clone())
                .to_bytes()
                .unwrap(),
        );
        let code = secret.code_at(w.clock.now(), 6);
        w.rt.block_on(w.accounts.confirm_app(&alice(), &e.enrolment, &code))
            .unwrap();
        w.assert_method_added("alice", "app", "enrol");
    }

    /// `enable email`: the same post-state. It used to leave an open
    /// recovery code usable.
    #[test]
    fn confirming_email_is_a_method_added() {
        let w = mailing();
        w.leave_leftovers("alice");
        w.rt.block_on(w.accounts.enroll_email(
            &alice(),
            "alice@example.com",
            b"pw-a".to_vec(),
            Vec::new(),
        ))
        .unwrap();
        let code = code_in(&w.mail.take()[0]);
        let codes =
            w.rt.block_on(w.accounts.confirm_email(&alice(), &code))
                .unwrap();
        assert_eq!(codes.len(), 10, "a first method brings backup codes");
        w.assert_method_added("alice", "email", "enrol");
    }
}
