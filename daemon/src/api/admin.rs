//! `Admin1`: the mandatory policy, who has 2FA, resets with recovery codes,
//! unlocking, and importing google-authenticator files.
//!
//! Callers: uid 0, or members of `admin_group`. A non-root administrator
//! gives their own password (through `twofactor-reauth`) for every change;
//! reading needs no password. Every change is audited with who, what and
//! whom.
//!
//! Only root acts on a protected user (rules::protected): a reset hands
//! out a recovery code that logs in as the target, an unlock clears the
//! lockout that stops codes being guessed, and an import gives the target
//! a secret (and voids a pending recovery code), so doing any of these to
//! someone who can become root is a way to root. A non-root administrator
//! asking for any of these (or to remove trusted devices) on uid 0, on a
//! member of `admin_group` (themselves included), on a member of a group
//! of `protected_groups` (primary or supplementary) or on a user whose
//! groups cannot be looked up is refused, told why, and audited; nothing
//! changes.

use crate::adapters::home_files;
use crate::adapters::nss::plausible_name;
use crate::adapters::syslog::Audit;
use crate::adapters::syslog::Event;
use crate::api::requests::{AdminCall, AdminRequests, Reply};
use crate::clock::Clock;
use crate::config::Config;
use crate::random::Random;
use crate::rules::backup_codes::{self, Code};
use crate::rules::bookkeeping;
use crate::rules::email_codes;
use crate::rules::google_authenticator;
use crate::rules::methods;
use crate::rules::policy;
use crate::rules::protected::{self, Protected};
use crate::rules::ratelimit;
use crate::rules::recovery_codes;
use crate::rules::security_keys;
use crate::rules::ssh_keys;
use crate::rules::totp::STEP_SECONDS;
use crate::rules::trusted_devices;
use crate::services::directory::Directory;
use crate::services::hash_pool::HashPool;
use crate::services::notices::Notice;
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::services::{Caller, Handles};
use crate::store::Store;
use crate::store::{Db, DbResult};
use std::collections::BTreeMap;
use std::sync::Arc;
use twofactor_proto::date::is_calendar_date;
use twofactor_proto::error::Error;
use twofactor_proto::group;
use twofactor_proto::types::{method, Device, ImportReport, Policy, Recovery, SshKey, UserReport};
use zeroize::Zeroizing;

pub struct Admin {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    audit: Arc<Audit>,
    hashing: Arc<HashPool>,
    passwords: Arc<Passwords>,
    outbox: Arc<Outbox>,
    directory: Directory,
}

/// What a caller asks for: to look, or to change (which needs the
/// password of a non-root administrator).
enum Intent {
    Read,
    Change(Zeroizing<Vec<u8>>),
}

impl Admin {
    pub fn new(h: &Handles) -> Self {
        Admin {
            config: h.config.clone(),
            store: h.store.clone(),
            clock: h.clock.clone(),
            rng: h.rng.clone(),
            audit: h.audit.clone(),
            hashing: h.hashing.clone(),
            passwords: h.passwords.clone(),
            outbox: h.outbox.clone(),
            directory: h.directory.clone(),
        }
    }

    /// Whether the system knows `user` (looked up off the async workers).
    async fn is_known(&self, user: &str) -> Result<bool, Error> {
        let u = user.to_string();
        self.directory
            .lookup(move |users| users.uid_of(&u).is_some())
            .await
    }

    /// The account a name given by an administrator stands for: a same-uid
    /// alias or another spelling is the same account as at login. A name
    /// the system does not know stays as given (its rows, if any, can
    /// still be shown and unlocked).
    pub async fn account_name(&self, name: &str) -> Result<String, Error> {
        Ok(self
            .directory
            .resolve(name)
            .await?
            .map_or_else(|| name.to_string(), |(canonical, _)| canonical))
    }

    /// The administrator's name, if the caller is one (and, for a change by
    /// a non-root administrator, gave the right password).
    ///
    /// A caller on a fleet's host is taken only from a host named in
    /// `[fleet] admin_hosts`: its root as root (named `root@HOST`), a
    /// member of `admin_group` by this machine's name service as an
    /// administrator (named `NAME@HOST`), whose password that host checked
    /// (it never leaves the host).
    async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        intent: Intent,
    ) -> Result<String, Error> {
        let denied = |why: &str| {
            self.audit.log(Event::Denied {
                uid: caller.uid,
                action,
            });
            Err(Error::PermissionDenied(why.into()))
        };
        let on_host = caller.on_host.as_deref();
        if let Some(on) = on_host {
            if !self.config.fleet.admin_from(&on.host) {
                return denied(&format!(
                    "the fleet is not administered from {}: run twofactorctl admin on a \
                     verifier, or name this host in the verifiers' [fleet] admin_hosts",
                    on.host
                ));
            }
        }
        let at = |name: &str| match on_host {
            Some(on) => format!("{name}@{}", on.host),
            None => name.to_string(),
        };
        if caller.uid == 0 {
            return Ok(at("root"));
        }
        let (uid, group) = (caller.uid, self.config.admin_group.clone());
        let reported = on_host.map(|on| on.name.clone());
        let admin = self
            .directory
            .lookup(move |users| {
                let name = match reported {
                    Some(name) => name?,
                    None => users.name_of(uid)?,
                };
                // A failed group look-up makes nobody an administrator.
                (!group.is_empty()
                    && plausible_name(&name)
                    && users.groups_of(&name).is_ok_and(|g| g.contains(&group)))
                .then_some(name)
            })
            .await?;
        let Some(name) = admin else {
            return denied("administrators only: root, or members of the configured admin_group");
        };
        if let Intent::Change(password) = intent {
            if on_host.is_none() {
                self.passwords.check(&name, password, action).await?;
            }
        }
        Ok(at(&name))
    }

    /// Refuses a non-root caller when `user` is protected (root, an
    /// administrator, a member of a group of `protected_groups`, or not
    /// told apart from one: see [`protected::protection`]); the refusal is
    /// audited.
    async fn check_target(
        &self,
        caller: &Caller,
        by: &str,
        action: &str,
        user: &str,
    ) -> Result<(), Error> {
        if caller.uid == 0 {
            return Ok(());
        }
        let Some(why) = self.protection(user).await else {
            return Ok(());
        };
        self.audit.log(Event::DeniedTarget {
            uid: caller.uid,
            by,
            action,
            user,
        });
        Err(Error::PermissionDenied(refusal(user, &why)))
    }

    /// Whether `user` is protected, and why. Fails closed: when the name
    /// service cannot be asked at all, the user cannot be told apart from
    /// a protected one.
    async fn protection(&self, user: &str) -> Option<Protected> {
        let user = user.to_string();
        let (admin_group, protected_groups) = (
            self.config.admin_group.clone(),
            self.config.protected_groups.clone(),
        );
        self.directory
            .lookup(move |users| {
                protected::protection(
                    users.uid_of(&user),
                    || users.groups_of(&user),
                    &admin_group,
                    &protected_groups,
                )
            })
            .await
            .unwrap_or(Some(Protected::GroupsUnknown))
    }

    pub async fn get_policy(&self, caller: &Caller) -> Result<Policy, Error> {
        self.authorize(caller, "admin-get-policy", Intent::Read)
            .await?;
        let initial = self.config.policy.clone();
        self.store
            .run(move |c| policy::get(c, &initial))
            .await
            .map_err(|e| self.audit.internal("admin-get-policy", &e.to_string()))
    }

    pub async fn set_policy(
        &self,
        caller: &Caller,
        mandatory: bool,
        groups: Vec<String>,
        from: String,
        password: Vec<u8>,
    ) -> Result<(), Error> {
        let password = Zeroizing::new(password);
        if let Some(bad) = groups.iter().find(|g| !group::is_valid_name(g)) {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a valid group name",
                bad.chars().take(group::MAX_NAME_BYTES).collect::<String>()
            )));
        }
        if groups.len() > group::MAX_POLICY_GROUPS {
            return Err(Error::InvalidInput("too many groups".into()));
        }
        if !from.is_empty() && !is_calendar_date(&from) {
            return Err(Error::InvalidInput(
                "the date must be written YYYY-MM-DD".into(),
            ));
        }
        let by = self
            .authorize(caller, "admin-set-policy", Intent::Change(password))
            .await?;
        let policy = Policy {
            mandatory,
            groups,
            from,
            updated_by: by.clone(),
            updated_at: self.clock.now(),
        };
        let stored = policy.clone();
        self.store
            .run(move |c| policy::set(c, &stored))
            .await
            .map_err(|e| self.audit.internal("admin-set-policy", &e.to_string()))?;
        self.audit.log(Event::PolicySet {
            by: &by,
            mandatory,
            groups: &policy.groups.join(","),
            from: &policy.from,
        });
        Ok(())
    }

    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<UserReport>, Error> {
        self.authorize(caller, "admin-list-users", Intent::Read)
            .await?;
        let mut names: BTreeMap<String, Option<u32>> = self
            .directory
            .lookup(|users| users.human_users())
            .await?
            .into_iter()
            .map(|(n, u)| (n, Some(u)))
            .collect();
        let known: Vec<String> = self
            .store
            .run(|c| {
                c.query_map(
                    "SELECT username FROM accounts ORDER BY username",
                    crate::params![],
                    |r| r.get(0),
                )
            })
            .await
            .map_err(|e| self.audit.internal("admin-list-users", &e.to_string()))?;
        for n in known {
            names.entry(n).or_insert(None);
        }
        self.reports(names.into_keys().collect()).await
    }

    pub async fn get_user(&self, caller: &Caller, user: &str) -> Result<UserReport, Error> {
        self.authorize(caller, "admin-get-user", Intent::Read)
            .await?;
        let report = self
            .reports(vec![user.to_string()])
            .await?
            .pop()
            .ok_or_else(|| no_user(user))?;
        if !report.known_to_system && report.methods.is_empty() && report.last_login == 0 {
            return Err(no_user(user));
        }
        Ok(report)
    }

    /// Reports for these users, in one read of the database.
    async fn reports(&self, names: Vec<String>) -> Result<Vec<UserReport>, Error> {
        let now = self.clock.now();
        let initial = self.config.policy.clone();
        let wanted = names.clone();
        let (rows, policy) = self
            .store
            .run(move |c| {
                let mut rows = Vec::with_capacity(wanted.len());
                for user in &wanted {
                    rows.push(row(c, user, now)?);
                }
                Ok((rows, policy::get(c, &initial)?))
            })
            .await
            .map_err(|e| self.audit.internal("admin-report", &e.to_string()))?;
        // The name service, off the async workers, for all rows at once.
        self.directory
            .lookup(move |users| {
                rows.into_iter()
                    .map(|mut r| {
                        let uid = users.uid_of(&r.user);
                        r.known_to_system = uid.is_some();
                        r.uid = uid.unwrap_or(0);
                        r.policy_applies = r.known_to_system
                            && policy::applies_to_user(|| users.groups_of(&r.user), &policy, now)
                                == Ok(policy::Applies::Now);
                        r
                    })
                    .collect()
            })
            .await
    }

    /// Removes the user's methods, backup codes and lockout, and makes a
    /// recovery code valid for 24 hours (an earlier one is voided).
    pub async fn reset(
        &self,
        caller: &Caller,
        user: &str,
        password: Vec<u8>,
    ) -> Result<Recovery, Error> {
        let password = Zeroizing::new(password);
        let by = self
            .authorize(caller, "admin-reset", Intent::Change(password))
            .await?;
        if !self.is_known(user).await? {
            return Err(no_user(user));
        }
        self.check_target(caller, &by, "admin-reset", user).await?;
        let code = recovery_codes::generate(self.rng.as_ref())
            .map_err(|e| self.audit.internal("admin-reset", &e.to_string()))?;
        let hash = self.hash(&code, "admin-reset").await?;
        let now = self.clock.now();
        let (u, b) = (user.to_string(), by.clone());
        // The notice goes to the address the user had before the reset.
        let had = self
            .store
            .run(move |c| {
                let had = email_codes::address(c, &u)?;
                bookkeeping::ensure(c, &u, now)?;
                methods::remove_all(c, &u)?;
                backup_codes::remove_all(c, &u)?;
                trusted_devices::remove_all(c, &u)?;
                ratelimit::clear(c, &u)?;
                recovery_codes::replace(c, &u, &hash, now, &b)?;
                Ok(had)
            })
            .await
            .map_err(|e| self.audit.internal("admin-reset", &e.to_string()))?;
        self.audit.log(Event::Reset { by: &by, user });
        self.outbox
            .notify_at(user, had, Notice::Reset { by: by.clone() });
        Ok(Recovery {
            code: code.display(),
            expires: now + recovery_codes::VALID_SECONDS,
        })
    }

    pub async fn unlock(
        &self,
        caller: &Caller,
        user: &str,
        password: Vec<u8>,
    ) -> Result<(), Error> {
        let password = Zeroizing::new(password);
        let by = self
            .authorize(caller, "admin-unlock", Intent::Change(password))
            .await?;
        if !plausible_name(user) {
            return Err(no_user(user));
        }
        self.check_target(caller, &by, "admin-unlock", user).await?;
        let u = user.to_string();
        self.store
            .run(move |c| ratelimit::clear(c, &u))
            .await
            .map_err(|e| self.audit.internal("admin-unlock", &e.to_string()))?;
        self.audit.log(Event::Unlock { by: &by, user });
        Ok(())
    }

    /// A user's trusted devices.
    pub async fn list_devices(&self, caller: &Caller, user: &str) -> Result<Vec<Device>, Error> {
        self.authorize(caller, "admin-devices", Intent::Read)
            .await?;
        let (u, now) = (user.to_string(), self.clock.now());
        self.store
            .run(move |c| trusted_devices::list(c, &u, now))
            .await
            .map_err(|e| self.audit.internal("admin-devices", &e.to_string()))
    }

    /// A user's security keys (FIDO2, and security-key SSH keys), as
    /// (method, key): the id, name, when added and last used; never a
    /// credential or a public key.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<Vec<(String, SshKey)>, Error> {
        self.authorize(caller, "admin-keys", Intent::Read).await?;
        let u = user.to_string();
        self.store
            .run(move |c| {
                let mut all: Vec<(String, SshKey)> = security_keys::list(c, &u)?
                    .into_iter()
                    .map(|k| (method::KEY.to_string(), k))
                    .collect();
                all.extend(
                    ssh_keys::list(c, &u)?
                        .into_iter()
                        .map(|k| (method::SSH_KEY.to_string(), k)),
                );
                Ok(all)
            })
            .await
            .map_err(|e| self.audit.internal("admin-keys", &e.to_string()))
    }

    /// Removes a user's trusted device (`all`: every one).
    pub async fn remove_devices(
        &self,
        caller: &Caller,
        user: &str,
        id: &str,
        password: Vec<u8>,
    ) -> Result<u32, Error> {
        let password = Zeroizing::new(password);
        let by = self
            .authorize(caller, "admin-devices-remove", Intent::Change(password))
            .await?;
        if !plausible_name(user) {
            return Err(no_user(user));
        }
        self.check_target(caller, &by, "admin-devices-remove", user)
            .await?;
        crate::api::account::remove_devices(&self.store, &self.audit, user, id, &by).await
    }

    pub async fn import_google_authenticator(
        &self,
        caller: &Caller,
        user: &str,
        path: &str,
        password: Vec<u8>,
    ) -> Result<ImportReport, Error> {
        let password = Zeroizing::new(password);
        let by = self
            .authorize(caller, "admin-import", Intent::Change(password))
            .await?;
        if !self.is_known(user).await? {
            return Err(no_user(user));
        }
        self.check_target(caller, &by, "admin-import", user).await?;
        Ok(self.import_one(&by, user, path).await)
    }

    pub async fn import_google_authenticator_all(
        &self,
        caller: &Caller,
        password: Vec<u8>,
    ) -> Result<Vec<ImportReport>, Error> {
        let password = Zeroizing::new(password);
        let by = self
            .authorize(caller, "admin-import", Intent::Change(password))
            .await?;
        let mut reports = Vec::new();
        let with_files: Vec<String> = self
            .directory
            .lookup(|users| {
                users
                    .human_users()
                    .into_iter()
                    .filter(|(user, _)| {
                        users
                            .home_of(user)
                            .map(|h| h.join(".google_authenticator"))
                            .is_some_and(|p| std::fs::symlink_metadata(p).is_ok())
                    })
                    .map(|(user, _)| user)
                    .collect()
            })
            .await?;
        for user in with_files {
            // Root and administrators are left to root: a report, not an
            // error, so that everyone else is still imported.
            if let Err(e) = self.check_target(caller, &by, "admin-import", &user).await {
                reports.push(ImportReport {
                    user,
                    message: e.text(),
                    ..ImportReport::default()
                });
                continue;
            }
            reports.push(self.import_one(&by, &user, "").await);
        }
        Ok(reports)
    }

    /// Imports one user's file; every outcome is a report, never an error.
    async fn import_one(&self, by: &str, user: &str, path: &str) -> ImportReport {
        let mut report = ImportReport {
            user: user.to_string(),
            ..ImportReport::default()
        };
        let u = user.to_string();
        let found = self
            .directory
            .lookup(move |users| (users.uid_of(&u), users.home_of(&u)))
            .await;
        let Ok((Some(uid), Some(home))) = found else {
            report.message = "no such user".into();
            return report;
        };
        let path = if path.is_empty() {
            home.join(".google_authenticator")
        } else {
            std::path::PathBuf::from(path)
        };
        let shown = path.display().to_string();
        let name = user.to_string();
        let parsed = tokio::task::spawn_blocking(move || {
            let owner = home_files::Owner {
                user: &name,
                uid,
                home: &home,
            };
            let text = Zeroizing::new(home_files::read(owner, &path).map_err(|e| e.to_string())?);
            google_authenticator::parse(&text, &shown).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| {
            Err(home_files::ReadError::Unreadable(String::new(), e.to_string()).to_string())
        });
        let parsed = match parsed {
            Ok(p) => p,
            Err(message) => {
                report.message = message;
                return report;
            }
        };
        // Scratch codes become backup codes; two with the same first four
        // digits cannot both be found by selector, so the second is skipped.
        let mut hashed: Vec<(String, String)> = Vec::new();
        let mut duplicates = 0u32;
        for code in &parsed.scratch {
            if hashed.iter().any(|(s, _)| s == code.selector()) {
                duplicates += 1;
                continue;
            }
            match self.hash(code, "admin-import").await {
                Ok(h) => hashed.push((code.selector().to_string(), h)),
                Err(_) => {
                    report.message = "could not hash the scratch codes; nothing imported".into();
                    return report;
                }
            }
        }
        let now = self.clock.now();
        let count = hashed.len() as u32;
        let u = user.to_string();
        let secret = parsed.secret;
        let stored = self
            .store
            .run(move |c| {
                if methods::has_any(c, &u)? {
                    return Ok(None);
                }
                Ok(Some(import_rows(c, &u, &secret, &hashed, now)?))
            })
            .await;
        match stored {
            Ok(Some(added)) => {
                self.outbox.notify(user, Notice::MethodAdded(added.method));
                report.imported = true;
                report.scratch_codes = count;
                let mut notes = vec![format!(
                    "imported the TOTP secret and {count} scratch code(s) as backup codes"
                )];
                if duplicates + parsed.skipped_lines > 0 {
                    notes.push(format!(
                        "skipped {} scratch line(s) (not 8 digits, or the same first four digits as another)",
                        duplicates + parsed.skipped_lines
                    ));
                }
                report.message = notes.join("; ");
                self.audit.log(Event::Import {
                    by,
                    user,
                    scratch_codes: count,
                });
            }
            Ok(None) => {
                report.message =
                    "already has an authenticator app in twofactor; not changed".into();
            }
            Err(e) => {
                self.audit.internal("admin-import", &e.to_string());
                report.message = "internal error; nothing imported".into();
            }
        }
        report
    }

    async fn hash(&self, code: &Code, context: &str) -> Result<String, Error> {
        self.hashing
            .hash(code)
            .await
            .map_err(|e| self.audit.internal(context, &e))
    }
}

/// The store's part of an import: the secret as the user's app, their
/// scratch codes (if any) as their backup codes.
#[async_trait::async_trait]
impl AdminRequests for Admin {
    async fn admin(&self, caller: &Caller, call: AdminCall) -> Result<Reply, Error> {
        let import = matches!(
            call,
            AdminCall::ImportGoogleAuthenticator { .. }
                | AdminCall::ImportGoogleAuthenticatorAll { .. }
        );
        if import && caller.on_host.is_some() {
            // The files are in the host's home directories, which this
            // machine cannot read.
            return Err(Error::InvalidInput(
                "google-authenticator files are not imported through a fleet's host yet \
                 (docs/fleet.md)"
                    .into(),
            ));
        }
        Ok(match call {
            AdminCall::GetPolicy => self.get_policy(caller).await?.into(),
            AdminCall::SetPolicy {
                mandatory,
                groups,
                from,
                mut password,
            } => self
                .set_policy(caller, mandatory, groups, from, password.take())
                .await?
                .into(),
            AdminCall::ListUsers => self.list_users(caller).await?.into(),
            AdminCall::GetUser { user } => {
                let user = self.account_name(&user).await?;
                self.get_user(caller, &user).await?.into()
            }
            AdminCall::Reset { user, mut password } => {
                let user = self.account_name(&user).await?;
                self.reset(caller, &user, password.take()).await?.into()
            }
            AdminCall::Unlock { user, mut password } => {
                let user = self.account_name(&user).await?;
                self.unlock(caller, &user, password.take()).await?.into()
            }
            AdminCall::ListDevices { user } => {
                let user = self.account_name(&user).await?;
                self.list_devices(caller, &user).await?.into()
            }
            AdminCall::ListKeys { user } => {
                let user = self.account_name(&user).await?;
                self.list_keys(caller, &user).await?.into()
            }
            AdminCall::RemoveDevices {
                user,
                id,
                mut password,
            } => {
                let user = self.account_name(&user).await?;
                self.remove_devices(caller, &user, &id, password.take())
                    .await?
                    .into()
            }
            AdminCall::ImportGoogleAuthenticator {
                user,
                path,
                mut password,
            } => {
                let user = self.account_name(&user).await?;
                self.import_google_authenticator(caller, &user, &path, password.take())
                    .await?
                    .into()
            }
            AdminCall::ImportGoogleAuthenticatorAll { mut password } => self
                .import_google_authenticator_all(caller, password.take())
                .await?
                .into(),
        })
    }
}

fn import_rows(
    c: &Db,
    user: &str,
    secret: &crate::rules::totp::Secret,
    hashed: &[(String, String)],
    now: i64,
) -> DbResult<methods::Added> {
    // Codes of the current and earlier steps may already have been used
    // with google-authenticator: accept only later ones.
    let new = methods::NewMethod::App {
        secret,
        step: now.div_euclid(STEP_SECONDS),
    };
    // A file without scratch codes leaves the set as it is.
    let backups = if hashed.is_empty() {
        methods::BackupCodes::Keep
    } else {
        methods::BackupCodes::Replace(hashed)
    };
    methods::activate(c, user, new, backups, now)
}

/// What a non-root administrator is told when `user` is protected: why,
/// and that root may. The group named is one the administrator can read
/// with getent(1) anyway; nothing else about the user is said.
fn refusal(user: &str, why: &Protected) -> String {
    let user = user.chars().take(64).collect::<String>();
    let why = match why {
        Protected::Root => format!("{user:?} is root"),
        Protected::Administrator => {
            format!("{user:?} is an administrator (a member of admin_group)")
        }
        Protected::Group(group) => {
            format!("{user:?} is in the protected group {group} (protected_groups)")
        }
        Protected::Unknown => {
            format!("the system does not know {user:?}, so they count as protected")
        }
        Protected::GroupsUnknown => {
            format!("the groups of {user:?} could not be looked up, so they count as protected")
        }
    };
    format!("{why}; only root may reset, unlock or import for them")
}

fn no_user(user: &str) -> Error {
    Error::NotFound(format!(
        "no user {:?} on this system",
        user.chars().take(64).collect::<String>()
    ))
}

/// The stored part of a report.
fn row(c: &Db, user: &str, now: i64) -> DbResult<UserReport> {
    let s = crate::rules::account_view::status(c, user, now)?;
    Ok(UserReport {
        user: s.user,
        methods: s.methods,
        backup_codes_left: s.backup_codes_left,
        preferred: s.preferred,
        last_method: s.last_method,
        last_login: s.last_login,
        locked_until: s.locked_until,
        failures: s.failures,
        recovery_pending: recovery_codes::pending(c, user, now)?.is_some(),
        last_host: bookkeeping::last_host(c, user)?,
        ..UserReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use twofactor_proto::{Action, Step};

    use crate::api::fixture::{as_uid, origin, root, World, T0};

    fn world() -> World {
        World::new(Config {
            admin_group: "staff".into(),
            ..Config::default()
        })
    }

    fn texts(step: &Step) -> String {
        step.messages
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn secret_of(step: &Step) -> crate::rules::totp::Secret {
        let text = texts(step);
        let line = text.lines().find(|l| l.starts_with("Secret: ")).unwrap();
        let b32: String = line["Secret: ".len()..].split_whitespace().collect();
        crate::rules::totp::Secret::from_bytes(totp_rs::Secret::Encoded(b32).to_bytes().unwrap())
    }

    impl World {
        fn set_policy(&self, on: bool, groups: &[&str], from: &str) {
            self.rt
                .block_on(self.admin.set_policy(
                    &root(),
                    on,
                    groups.iter().map(|g| g.to_string()).collect(),
                    from.into(),
                    Vec::new(),
                ))
                .unwrap();
        }
        fn begin(&self, user: &str) -> (String, Step) {
            self.rt
                .block_on(self.logins.begin(&root(), origin(user)))
                .unwrap()
        }
        fn answer(&self, id: &str, a: &str) -> Step {
            self.rt
                .block_on(self.logins.answer(&root(), id, a.as_bytes().to_vec()))
                .unwrap()
        }
        /// Walks an enrolment at the prompt to its end; returns the secret.
        fn enrol_at_prompt(&self, id: &str, first: &Step) -> crate::rules::totp::Secret {
            assert_eq!(
                first.action,
                Action::AskVisible("Code from the app: ".into())
            );
            assert!(texts(first).contains("Scan this QR code"));
            assert!(texts(first).contains("URI: otpauth://totp/"));
            let secret = secret_of(first);
            let codes = self.answer(id, &secret.code_at(self.clock.now(), 6));
            assert_eq!(
                codes.action,
                Action::AskVisible("Type yes once you have saved them: ".into())
            );
            assert_eq!(
                texts(&codes)
                    .lines()
                    .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
                    .count(),
                10,
                "{}",
                texts(&codes)
            );
            let done = self.answer(id, "YES");
            assert_eq!(done.action, Action::AcceptPending, "{done:?}");
            let before = self.rt.block_on(self.accounts.status(&as_uid(1000)));
            assert!(
                before.map(|s| s.methods.is_empty()).unwrap_or(true),
                "nothing is stored before the account phase commits"
            );
            let done = self.rt.block_on(self.logins.commit(&root(), id)).unwrap();
            assert_eq!(done.action, Action::Accept, "{done:?}");
            secret
        }
        /// Gives `user`, a member of `group`, an app and backup codes
        /// (an enrolment at the prompt under a policy for `group`); the
        /// policy is off again afterwards.
        fn give_app(&self, user: &str, group: &str) {
            self.set_policy(true, &[group], "");
            let (id, first) = self.begin(user);
            self.enrol_at_prompt(&id, &first);
            self.set_policy(false, &[], "");
        }
        fn methods(&self, uid: u32) -> (Vec<String>, u32) {
            let s = self
                .rt
                .block_on(self.accounts.status(&as_uid(uid)))
                .unwrap();
            (s.methods, s.backup_codes_left)
        }
    }

    #[test]
    fn mandatory_policy_enrols_at_the_prompt() {
        let w = world();
        w.set_policy(true, &[], "");
        let (id, first) = w.begin("alice");
        let secret = w.enrol_at_prompt(&id, &first);
        assert_eq!(w.methods(1000), (vec!["app".to_string()], 10));
        // The next login asks for a code, and the confirming code is used.
        let (id, step) = w.begin("alice");
        assert_eq!(
            step.action,
            Action::AskHidden(crate::api::login::APP_PROMPT.into())
        );
        assert_eq!(
            w.answer(&id, &secret.code_at(w.clock.now(), 6)).action,
            Action::Deny
        );
        w.clock.advance(30);
        let (id, _) = w.begin("alice");
        assert_eq!(
            w.answer(&id, &secret.code_at(w.clock.now(), 6)).action,
            Action::AcceptPending
        );
        // Turning the policy off removes nobody's method.
        w.set_policy(false, &[], "");
        assert_eq!(w.methods(1000).0, vec!["app".to_string()]);
        let (_, step) = w.begin("alice");
        assert_eq!(
            step.action,
            Action::AskHidden(crate::api::login::APP_PROMPT.into())
        );
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(lines.contains("enrol user=alice service=sshd"), "{lines}");
        assert!(lines.contains("via=login why=policy"), "{lines}");
        assert!(
            lines.contains("admin-policy by=root mandatory=on"),
            "{lines}"
        );
    }

    /// A name the system does not know is answered as a user without a
    /// method who is in no group (issue 18, item 2): the same step with
    /// the policy off, announced or on; its enrolment is never stored.
    #[test]
    fn unknown_names_are_answered_like_users_without_a_method() {
        let w = world();
        // The action and the words (a fresh secret, its QR code and URI
        // differ from login to login: their lines are left out).
        let shape = |step: &Step| {
            let words: Vec<String> = texts(step)
                .lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
                .filter(|l| !l.starts_with("Secret: ") && !l.starts_with("URI: "))
                .map(str::to_string)
                .collect();
            (step.action.clone(), words)
        };
        for (on, from) in [(false, ""), (true, "2999-01-01"), (true, "")] {
            w.set_policy(on, &[], from);
            let (bob_id, bob) = w.begin("bob");
            let (mallory_id, mallory) = w.begin("mallory");
            assert_eq!(
                bob_id.is_empty(),
                mallory_id.is_empty(),
                "policy {on} {from}"
            );
            assert_eq!(shape(&bob), shape(&mallory), "policy {on} {from}");
            if on && from.is_empty() {
                assert_eq!(
                    mallory.action,
                    Action::AskVisible("Code from the app: ".into())
                );
                // Walked to the end, the unknown name's enrolment is not
                // stored: its stack should have refused it, and the
                // account phase refuses it if it did not.
                let secret = secret_of(&mallory);
                let codes = w.answer(&mallory_id, &secret.code_at(w.clock.now(), 6));
                assert_eq!(
                    codes.action,
                    Action::AskVisible("Type yes once you have saved them: ".into())
                );
                assert_eq!(w.answer(&mallory_id, "yes").action, Action::AcceptPending);
                let done =
                    w.rt.block_on(w.logins.commit(&root(), &mallory_id))
                        .unwrap();
                assert_eq!(done.action, Action::Deny);
                let rows: i64 =
                    w.rt.block_on(w.handles.store.run(|c| {
                        c.query_row(
                            "SELECT COUNT(*) FROM accounts WHERE username = 'mallory'",
                            crate::params![],
                            |r| r.get(0),
                        )
                    }))
                    .unwrap();
                assert_eq!(
                    rows, 0,
                    "nothing stored for a name the system does not know"
                );
            }
        }
        let lines = w.audit_lines();
        assert!(lines.contains("login-unknown-user user=mallory"), "{lines}");
        assert!(!lines.contains("login-success user=mallory"), "{lines}");
    }

    /// A caller running as the user (a screen locker) checks a factor; it
    /// never sets one up (issue 18, item 3): no enrolment at the prompt,
    /// no recovery code. Root's login still can.
    #[test]
    fn a_caller_running_as_the_user_cannot_enrol_or_use_a_recovery_code() {
        let w = world();
        w.set_policy(true, &[], "");
        let bob = as_uid(1001);
        let (id, step) = w.rt.block_on(w.logins.begin(&bob, origin("bob"))).unwrap();
        assert!(id.is_empty());
        assert_eq!(step.action, Action::Deny);
        assert!(texts(&step).contains("not set up yet"), "{step:?}");
        assert_eq!(w.methods(1001), (vec![], 0));
        // A recovery code from a reset, typed at alice's own screen locker.
        w.set_policy(false, &[], "");
        let code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        let alice = as_uid(1000);
        let (id, _) =
            w.rt.block_on(w.logins.begin(&alice, origin("alice")))
                .unwrap();
        let step =
            w.rt.block_on(w.logins.answer(&alice, &id, code.code.clone().into_bytes()))
                .unwrap();
        assert_eq!(step.action, Action::Deny);
        assert!(texts(&step).contains("not here"), "{step:?}");
        // The code is not spent: root's login (console, ssh) takes it.
        let (id, _) = w.begin("alice");
        let step = w.answer(&id, &code.code);
        assert!(texts(&step).contains("Recovery code accepted"), "{step:?}");
        let lines = w.audit_lines();
        assert!(
            lines.contains("denied uid=1001 action=enrol-at-prompt"),
            "{lines}"
        );
    }

    #[test]
    fn wrong_codes_and_no_confirmation_store_nothing() {
        let w = world();
        w.set_policy(true, &[], "");
        let (id, first) = w.begin("alice");
        let again = w.answer(&id, "000000");
        assert_eq!(
            again.action,
            Action::AskVisible("Code from the app: ".into())
        );
        assert!(texts(&again).contains("not the current code"));
        w.answer(&id, "abc");
        let denied = w.answer(&id, "111111");
        assert_eq!(denied.action, Action::Deny);
        assert_eq!(w.methods(1000), (vec![], 0));
        // Right code but never "yes".
        let (id, first2) = w.begin("alice");
        assert_ne!(secret_of(&first).bytes(), secret_of(&first2).bytes());
        let code = secret_of(&first2).code_at(w.clock.now(), 6);
        w.answer(&id, &code);
        w.answer(&id, "no");
        w.answer(&id, "later");
        assert_eq!(w.answer(&id, "nope").action, Action::Deny);
        assert_eq!(w.methods(1000), (vec![], 0));
    }

    #[test]
    fn groups_and_announced_date() {
        let w = world();
        w.set_policy(true, &["staff"], "");
        let (id, step) = w.begin("bob");
        assert!(id.is_empty());
        assert_eq!(step.action, Action::Accept, "bob is not in staff");
        let (_, step) = w.begin("staffer");
        assert_eq!(
            step.action,
            Action::AskVisible("Code from the app: ".into())
        );
        w.set_policy(true, &[], "2026-02-01");
        let (_, step) = w.begin("bob");
        assert_eq!(step.action, Action::Accept);
        assert!(texts(&step).contains("becomes mandatory for your account on 2026-02-01"));
        w.clock.set(T0 + 31 * 86_400); // 2026-02-01 12:00 UTC
        let (_, step) = w.begin("bob");
        assert_eq!(
            step.action,
            Action::AskVisible("Code from the app: ".into())
        );
    }

    #[test]
    fn last_method_stays_while_the_policy_applies() {
        let w = world();
        w.set_policy(true, &[], "");
        let (id, first) = w.begin("alice");
        let secret = w.enrol_at_prompt(&id, &first);
        for which in ["app", "all"] {
            let e = w
                .rt
                .block_on(
                    w.accounts
                        .disable(&as_uid(1000), which, b"pw-a".to_vec(), Vec::new()),
                )
                .unwrap_err();
            assert!(
                matches!(e, Error::PermissionDenied(ref m) if m.contains("mandatory")),
                "{e:?}"
            );
        }
        w.set_policy(false, &[], "");
        w.clock.advance(30);
        let code = secret.code_at(w.clock.now(), 6).into_bytes();
        w.rt.block_on(
            w.accounts
                .disable(&as_uid(1000), "app", b"pw-a".to_vec(), code),
        )
        .unwrap();
    }

    #[test]
    fn reset_recovery_code_then_forced_enrolment() {
        let w = world();
        w.set_policy(true, &[], "");
        let (id, first) = w.begin("alice");
        w.enrol_at_prompt(&id, &first);
        w.set_policy(false, &[], "");
        let first_code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        assert_eq!(code.expires, w.clock.now() + 86_400);
        assert_eq!(code.code.len(), 19);
        assert_eq!(
            w.methods(1000),
            (vec![], 0),
            "reset removes methods and backup codes"
        );
        // The earlier code is void; bob cannot use alice's code.
        let (id, step) = w.begin("alice");
        assert_eq!(
            step.action,
            Action::AskHidden(crate::api::login::APP_PROMPT.into()),
            "still asked after a reset"
        );
        assert_eq!(w.answer(&id, &first_code.code).action, Action::Deny);
        let (id, _) = w.begin("bob");
        assert!(id.is_empty(), "bob has nothing: no prompt");
        // The right code leads to enrolment, whatever the policy says.
        let (id, _) = w.begin("alice");
        let step = w.answer(&id, &code.code.to_uppercase());
        assert!(texts(&step).contains("Recovery code accepted"), "{step:?}");
        w.enrol_at_prompt(&id, &step);
        assert_eq!(w.methods(1000), (vec!["app".to_string()], 10));
        // Used once.
        let (id, _) = w.begin("alice");
        assert_eq!(w.answer(&id, &code.code).action, Action::Deny);
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(lines.contains("admin-reset by=root user=alice"));
        assert!(lines.contains("recovery-code-used user=alice"));
        assert!(!lines.contains(&code.code));
    }

    #[test]
    fn recovery_code_is_claimed_by_one_login_and_used_only_by_a_completed_enrolment() {
        let w = world();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        let (first, _) = w.begin("alice");
        let (second, _) = w.begin("alice");
        let step = w.answer(&first, &code.code);
        assert!(texts(&step).contains("Recovery code accepted"));
        assert_eq!(
            w.answer(&second, &code.code).action,
            Action::Deny,
            "claimed by the first login"
        );
        // The first login's enrolment fails: the code is given back.
        for _ in 0..3 {
            w.answer(&first, "000000");
        }
        assert_eq!(w.methods(1000), (vec![], 0));
        let (id, step) = w.begin("alice");
        assert_eq!(
            step.action,
            Action::AskHidden(crate::api::login::APP_PROMPT.into()),
            "asked again"
        );
        let step = w.answer(&id, &code.code);
        // A second login meanwhile cannot take it.
        let (other, _) = w.begin("alice");
        assert_eq!(w.answer(&other, &code.code).action, Action::Deny);
        w.enrol_at_prompt(&id, &step);
        let (id, _) = w.begin("alice");
        assert_eq!(
            w.answer(&id, &code.code).action,
            Action::Deny,
            "used up by the enrolment"
        );
    }

    #[test]
    fn cancelled_login_gives_the_recovery_code_back() {
        let w = world();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        let (id, _) = w.begin("alice");
        let step = w.answer(&id, &code.code);
        assert!(texts(&step).contains("Recovery code accepted"));
        w.rt.block_on(w.logins.cancel(&root(), &id)).unwrap();
        let (id, _) = w.begin("alice");
        let step = w.answer(&id, &code.code);
        assert!(texts(&step).contains("Recovery code accepted"), "{step:?}");
    }

    #[test]
    fn recovery_code_expires_after_24_hours() {
        let w = world();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "alice", Vec::new()))
                .unwrap();
        w.clock.advance(86_400 + 1);
        let (id, step) = w.begin("alice");
        assert!(
            id.is_empty(),
            "no method and no live code: no prompt ({step:?})"
        );
        w.clock.advance(-2);
        let (id, _) = w.begin("alice");
        assert_eq!(
            w.answer(&id, &code.code).action,
            Action::AskVisible("Code from the app: ".into())
        );
    }

    #[test]
    fn only_admins_and_non_root_admins_give_their_password() {
        let w = world();
        let bob = as_uid(1001);
        let rt = &w.rt;
        let denied =
            |r: Result<(), Error>| assert!(matches!(r, Err(Error::PermissionDenied(_))), "{r:?}");
        denied(rt.block_on(w.admin.get_policy(&bob)).map(|_| ()));
        denied(
            rt.block_on(
                w.admin
                    .set_policy(&bob, true, vec![], "".into(), b"x".to_vec()),
            ),
        );
        denied(rt.block_on(w.admin.list_users(&bob)).map(|_| ()));
        denied(rt.block_on(w.admin.get_user(&bob, "alice")).map(|_| ()));
        denied(
            rt.block_on(w.admin.reset(&bob, "alice", b"x".to_vec()))
                .map(|_| ()),
        );
        denied(rt.block_on(w.admin.unlock(&bob, "alice", b"x".to_vec())));
        denied(
            rt.block_on(
                w.admin
                    .import_google_authenticator(&bob, "alice", "", b"x".to_vec()),
            )
            .map(|_| ()),
        );
        denied(
            rt.block_on(w.admin.import_google_authenticator_all(&bob, b"x".to_vec()))
                .map(|_| ()),
        );
        // staffer is in admin_group "staff": reads freely, changes with the password.
        let staffer = as_uid(1002);
        let users = rt.block_on(w.admin.list_users(&staffer)).unwrap();
        assert_eq!(
            users.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(),
            vec!["alice", "bob", "ldapdown", "staffer", "staffmate", "sudoer"]
        );
        assert!(matches!(
            rt.block_on(w.admin.reset(&staffer, "alice", b"wrong".to_vec())),
            Err(Error::BadPassword(_))
        ));
        rt.block_on(w.admin.reset(&staffer, "alice", b"pw-s".to_vec()))
            .unwrap();
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("admin-reset by=staffer user=alice"),
            "{lines}"
        );
        assert!(
            lines.contains("denied uid=1001 action=admin-reset"),
            "{lines}"
        );
    }

    /// A caller on a fleet's host, as a verifier sees it.
    fn on_host(uid: u32, name: Option<&str>, host: &str) -> Caller {
        Caller {
            on_host: Some(std::sync::Arc::new(crate::services::HostCaller {
                host: host.into(),
                name: name.map(str::to_string),
            })),
            ..as_uid(uid)
        }
    }

    #[test]
    fn administration_from_a_host_only_from_the_named_hosts() {
        let mut config = Config {
            admin_group: "staff".into(),
            ..Config::default()
        };
        config.fleet.admin_hosts = vec!["bastion".into()];
        let w = World::new(config);
        let rt = &w.rt;
        let denied = |r: Result<(), Error>| {
            assert!(
                matches!(&r, Err(Error::PermissionDenied(m)) if m.contains("not administered from")),
                "{r:?}"
            )
        };
        // Root of a host not named: not even a read.
        denied(
            rt.block_on(w.admin.get_policy(&on_host(0, Some("root"), "web1")))
                .map(|_| ()),
        );
        denied(
            rt.block_on(w.admin.reset(&on_host(0, None, "web1"), "alice", vec![]))
                .map(|_| ()),
        );
        // Root of the named host: root of the fleet, audited with its host.
        rt.block_on(
            w.admin
                .reset(&on_host(0, None, "bastion"), "staffmate", vec![]),
        )
        .unwrap();
        // A member of admin_group (by this machine's name service), by the
        // name the host gives: its password was checked there, none here.
        rt.block_on(
            w.admin
                .reset(&on_host(4242, Some("staffer"), "bastion"), "alice", vec![]),
        )
        .unwrap();
        // ...but not on a protected user.
        assert!(matches!(
            rt.block_on(w.admin.unlock(
                &on_host(4242, Some("staffer"), "bastion"),
                "staffmate",
                vec![]
            )),
            Err(Error::PermissionDenied(_))
        ));
        // Any other name, or none: not an administrator.
        for name in [Some("bob"), None, Some("../staffer")] {
            let r = rt.block_on(w.admin.list_users(&on_host(1002, name, "bastion")));
            assert!(
                matches!(r, Err(Error::PermissionDenied(_))),
                "{name:?}: {r:?}"
            );
        }
        // The files of an import are on the host: refused.
        let r = rt.block_on(w.admin.admin(
            &on_host(0, None, "bastion"),
            AdminCall::ImportGoogleAuthenticatorAll {
                password: Default::default(),
            },
        ));
        assert!(matches!(r, Err(Error::InvalidInput(_))));
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("admin-reset by=root@bastion user=staffmate"),
            "{lines}"
        );
        assert!(
            lines.contains("admin-reset by=staffer@bastion user=alice"),
            "{lines}"
        );
        assert!(
            !lines.contains("reauth"),
            "a password was asked here: {lines}"
        );
    }

    #[test]
    fn users_report_and_unlock() {
        let w = world();
        w.set_policy(true, &["staff"], "");
        let r = w.rt.block_on(w.admin.get_user(&root(), "staffer")).unwrap();
        assert!(r.policy_applies);
        assert!(r.known_to_system);
        assert_eq!(r.uid, 1002);
        let r = w.rt.block_on(w.admin.get_user(&root(), "bob")).unwrap();
        assert!(!r.policy_applies);
        assert!(matches!(
            w.rt.block_on(w.admin.get_user(&root(), "nobody-here")),
            Err(Error::NotFound(_))
        ));
        // Lock alice with wrong passwords, then unlock.
        for _ in 0..5 {
            let _ = w.rt.block_on(w.accounts.enroll_app(
                &as_uid(1000),
                b"bad".to_vec(),
                Vec::new(),
            ));
        }
        let r = w.rt.block_on(w.admin.get_user(&root(), "alice")).unwrap();
        assert!(r.locked_until > w.clock.now());
        w.rt.block_on(w.admin.unlock(&root(), "alice", Vec::new()))
            .unwrap();
        let r = w.rt.block_on(w.admin.get_user(&root(), "alice")).unwrap();
        assert_eq!((r.locked_until, r.failures), (0, 0));
    }

    #[test]
    fn bad_policy_input() {
        let w = world();
        for (groups, from) in [
            (vec!["a b".to_string()], ""),
            (vec![], "2026-13-01"),
            (vec![], "tomorrow"),
        ] {
            assert!(matches!(
                w.rt.block_on(
                    w.admin
                        .set_policy(&root(), true, groups, from.into(), Vec::new())
                ),
                Err(Error::InvalidInput(_))
            ));
        }
        assert!(
            !w.rt
                .block_on(w.admin.get_policy(&root()))
                .unwrap()
                .mandatory
        );
    }

    fn denied_for_target(r: Result<(), Error>) {
        assert!(
            matches!(r, Err(Error::PermissionDenied(ref m)) if m.contains("only root")),
            "{r:?}"
        );
    }

    #[test]
    fn a_non_root_admin_cannot_reset_root() {
        let w = world();
        let staffer = as_uid(1002);
        let before = w.rt.block_on(w.admin.get_user(&root(), "root")).unwrap();
        denied_for_target(
            w.rt.block_on(w.admin.reset(&staffer, "root", b"pw-s".to_vec()))
                .map(|_| ()),
        );
        let after = w.rt.block_on(w.admin.get_user(&root(), "root")).unwrap();
        assert!(!after.recovery_pending, "no recovery code was made");
        assert_eq!(before.methods, after.methods);
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("denied uid=1002 action=admin-reset user=root by=staffer"),
            "{lines}"
        );
        assert!(!lines.contains("admin-reset by="), "{lines}");
    }

    #[test]
    fn a_non_root_admin_cannot_reset_another_admin_or_themselves() {
        let w = world();
        // staffmate has an app and backup codes.
        w.give_app("staffmate", "staff");
        let staffer = as_uid(1002);
        for target in ["staffmate", "staffer"] {
            denied_for_target(
                w.rt.block_on(w.admin.reset(&staffer, target, b"pw-s".to_vec()))
                    .map(|_| ()),
            );
        }
        assert_eq!(w.methods(1003), (vec!["app".to_string()], 10), "unchanged");
        let r =
            w.rt.block_on(w.admin.get_user(&root(), "staffmate"))
                .unwrap();
        assert!(!r.recovery_pending);
        // A wrong password is still refused as such, before the target rule.
        assert!(matches!(
            w.rt.block_on(w.admin.reset(&staffer, "staffmate", b"wrong".to_vec())),
            Err(Error::BadPassword(_))
        ));
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("denied uid=1002 action=admin-reset user=staffmate by=staffer"),
            "{lines}"
        );
    }

    #[test]
    fn root_resets_an_admin_and_a_non_root_admin_resets_a_plain_user() {
        let w = world();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "staffmate", Vec::new()))
                .unwrap();
        assert_eq!(code.code.len(), 19);
        let code =
            w.rt.block_on(w.admin.reset(&root(), "root", Vec::new()))
                .unwrap();
        assert_eq!(code.code.len(), 19);
        w.rt.block_on(w.admin.reset(&as_uid(1002), "bob", b"pw-s".to_vec()))
            .unwrap();
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("admin-reset by=root user=staffmate"),
            "{lines}"
        );
        assert!(lines.contains("admin-reset by=root user=root"), "{lines}");
        assert!(lines.contains("admin-reset by=staffer user=bob"), "{lines}");
        assert!(!lines.contains("denied"), "{lines}");
    }

    #[test]
    fn a_non_root_admin_cannot_unlock_root_or_an_admin() {
        let w = world();
        // Lock staffmate with wrong passwords.
        for _ in 0..5 {
            let _ = w.rt.block_on(w.accounts.enroll_app(
                &as_uid(1003),
                b"bad".to_vec(),
                Vec::new(),
            ));
        }
        let locked = |w: &World| {
            w.rt.block_on(w.admin.get_user(&root(), "staffmate"))
                .unwrap()
                .locked_until
                > w.clock.now()
        };
        assert!(locked(&w));
        let staffer = as_uid(1002);
        for target in ["staffmate", "root", "staffer"] {
            denied_for_target(w.rt.block_on(w.admin.unlock(&staffer, target, b"pw-s".to_vec())));
        }
        assert!(locked(&w), "still locked");
        // A name the system does not know cannot be told apart from an
        // administrator: root only.
        denied_for_target(w.rt.block_on(w.admin.unlock(&staffer, "nobody-here", b"pw-s".to_vec())));
        // A plain user: fine; root: anyone.
        w.rt.block_on(w.admin.unlock(&staffer, "bob", b"pw-s".to_vec()))
            .unwrap();
        w.rt.block_on(w.admin.unlock(&root(), "staffmate", Vec::new()))
            .unwrap();
        assert!(!locked(&w));
        let lines = w.audit.captured.lock().unwrap().join("\n");
        assert!(
            lines.contains("denied uid=1002 action=admin-unlock user=staffmate by=staffer"),
            "{lines}"
        );
        assert!(
            lines.contains("admin-unlock by=root user=staffmate"),
            "{lines}"
        );
    }

    #[test]
    fn a_non_root_admin_cannot_import_for_root_or_an_admin() {
        let w = world();
        let staffer = as_uid(1002);
        for target in ["root", "staffmate", "staffer"] {
            denied_for_target(
                w.rt.block_on(w.admin.import_google_authenticator(
                    &staffer,
                    target,
                    "",
                    b"pw-s".to_vec(),
                ))
                .map(|_| ()),
            );
        }
        // A plain user: the import runs (the fake home has no file: a report).
        let r = w
            .rt
            .block_on(
                w.admin
                    .import_google_authenticator(&staffer, "bob", "", b"pw-s".to_vec()),
            )
            .unwrap();
        assert!(!r.imported);
        assert!(!r.message.contains("only root"), "{}", r.message);
        // Root is not refused for an administrator.
        let r = w
            .rt
            .block_on(
                w.admin
                    .import_google_authenticator(&root(), "staffmate", "", Vec::new()),
            )
            .unwrap();
        assert!(!r.message.contains("only root"), "{}", r.message);
    }

    /// A member of a group of `protected_groups` (by default sudo, wheel,
    /// docker, …) can become root: a non-root administrator may not reset,
    /// unlock, import for or remove the devices of them, is told which
    /// group, and the refusal is audited; nothing changes. Root may.
    #[test]
    fn a_non_root_admin_cannot_act_on_a_member_of_a_protected_group() {
        let w = world();
        // sudoer (in "sudo", a default protected group) has an app and
        // backup codes, a trusted device, and is locked.
        w.give_app("sudoer", "sudo");
        w.leave_leftovers("sudoer");
        for _ in 0..5 {
            let _ = w.rt.block_on(w.accounts.enroll_app(
                &as_uid(1005),
                b"bad".to_vec(),
                Vec::new(),
            ));
        }
        let report = |w: &World| w.rt.block_on(w.admin.get_user(&root(), "sudoer")).unwrap();
        let before = report(&w);
        assert!(before.locked_until > w.clock.now());
        let staffer = as_uid(1002);
        let told = |r: Result<(), Error>| {
            assert!(
                matches!(r, Err(Error::PermissionDenied(ref m))
                    if m == "\"sudoer\" is in the protected group sudo (protected_groups); \
                             only root may reset, unlock or import for them"),
                "{r:?}"
            )
        };
        told(
            w.rt.block_on(w.admin.reset(&staffer, "sudoer", b"pw-s".to_vec()))
                .map(|_| ()),
        );
        told(w.rt.block_on(w.admin.unlock(&staffer, "sudoer", b"pw-s".to_vec())));
        told(
            w.rt.block_on(w.admin.import_google_authenticator(
                &staffer,
                "sudoer",
                "",
                b"pw-s".to_vec(),
            ))
            .map(|_| ()),
        );
        told(
            w.rt.block_on(
                w.admin
                    .remove_devices(&staffer, "sudoer", "all", b"pw-s".to_vec()),
            )
            .map(|_| ()),
        );
        let after = report(&w);
        assert_eq!(after.methods, vec!["app".to_string()]);
        assert_eq!(after.backup_codes_left, 10);
        assert_eq!(after.locked_until, before.locked_until, "still locked");
        // The device is still trusted (the open recovery code is the one
        // left above: methods and backup codes show no reset ran).
        assert_eq!(w.leftovers("sudoer"), (true, 1));
        let lines = w.audit_lines();
        for action in [
            "admin-reset",
            "admin-unlock",
            "admin-import",
            "admin-devices-remove",
        ] {
            let line = format!("denied uid=1002 action={action} user=sudoer by=staffer");
            assert!(lines.contains(&line), "{line} not in:\n{lines}");
        }
        assert!(!lines.contains("by=staffer user=sudoer"), "{lines}");
        // Root may.
        w.rt.block_on(w.admin.unlock(&root(), "sudoer", Vec::new()))
            .unwrap();
        let code =
            w.rt.block_on(w.admin.reset(&root(), "sudoer", Vec::new()))
                .unwrap();
        assert_eq!(code.code.len(), 19);
        assert_eq!(w.methods(1005), (vec![], 0));
    }

    /// `protected_groups` is the administrator's: a group named there
    /// protects its members (here bob's own group, a primary group); an
    /// empty list protects only root and administrators, and a user whose
    /// groups cannot be looked up stays root's.
    #[test]
    fn protected_groups_come_from_the_config() {
        let w = World::new(Config {
            admin_group: "staff".into(),
            protected_groups: vec!["no-such-group".into(), "bob".into()],
            ..Config::default()
        });
        let staffer = as_uid(1002);
        let r =
            w.rt.block_on(w.admin.unlock(&staffer, "bob", b"pw-s".to_vec()));
        assert!(
            matches!(r, Err(Error::PermissionDenied(ref m))
                if m.starts_with("\"bob\" is in the protected group bob")),
            "{r:?}"
        );
        // sudo is not in this list: sudoer is an ordinary user here.
        w.rt.block_on(w.admin.unlock(&staffer, "sudoer", b"pw-s".to_vec()))
            .unwrap();
        w.rt.block_on(w.admin.unlock(&staffer, "alice", b"pw-s".to_vec()))
            .unwrap();

        let w = World::new(Config {
            admin_group: "staff".into(),
            protected_groups: Vec::new(),
            ..Config::default()
        });
        w.rt.block_on(w.admin.reset(&staffer, "sudoer", b"pw-s".to_vec()))
            .unwrap();
        for (target, why) in [
            ("root", "\"root\" is root;"),
            ("toor", "\"toor\" is root;"),
            ("staffmate", "\"staffmate\" is an administrator"),
            (
                "ldapdown",
                "the groups of \"ldapdown\" could not be looked up",
            ),
            ("nobody-here", "the system does not know \"nobody-here\""),
        ] {
            let r =
                w.rt.block_on(w.admin.unlock(&staffer, target, b"pw-s".to_vec()));
            assert!(
                matches!(r, Err(Error::PermissionDenied(ref m)) if m.starts_with(why)
                    && m.ends_with("only root may reset, unlock or import for them")),
                "{target}: {r:?}"
            );
        }
    }

    #[test]
    fn an_import_path_outside_the_home_is_refused_before_it_is_opened() {
        let w = world();
        let mut messages = Vec::new();
        for path in [
            "/etc/shadow",
            "/root/x",
            "/nonexistent/x",
            "/home/bob/.google_authenticator",
            "/home/alice/../bob/x",
            "/home/alice",
        ] {
            let r = w
                .rt
                .block_on(
                    w.admin
                        .import_google_authenticator(&root(), "alice", path, Vec::new()),
                )
                .unwrap();
            assert!(!r.imported);
            messages.push(r.message);
        }
        assert!(
            messages
                .iter()
                .all(|m| m == "the file must be inside alice's home directory (/home/alice)"),
            "{messages:?}"
        );
    }

    /// Enrolment at the login prompt: the post-state of methods::activate.
    #[test]
    fn enrolment_at_the_prompt_is_a_method_added() {
        let w = world();
        w.set_policy(true, &[], "");
        let (id, first) = w.begin("alice");
        // Left after the login began, before anything is committed.
        w.leave_leftovers("alice");
        w.enrol_at_prompt(&id, &first);
        w.assert_method_added("alice", "app", "enrol");
    }

    /// An import's store part: the same post-state (it used to leave
    /// trusted devices trusted under a new secret). The audit line and
    /// the file are the end-to-end import tests' (tests/tests/admin.rs).
    #[test]
    fn an_import_is_a_method_added() {
        let w = world();
        w.leave_leftovers("alice");
        let secret = crate::rules::totp::Secret::from_bytes(vec![9; 20]);
        let hashed = vec![("1234".to_string(), "hash".to_string())];
        let now = w.clock.now();
        let added =
            w.rt.block_on(
                w.handles
                    .store
                    .run(move |c| import_rows(c, "alice", &secret, &hashed, now)),
            )
            .unwrap();
        assert_eq!(added.backup_codes, Some(1));
        assert_eq!(added.devices_ended, 1);
        assert_eq!(w.methods(1000), (vec!["app".to_string()], 1));
        assert_eq!(w.leftovers("alice"), (false, 0));
    }

    /// The policy's groups follow the contract's rule (proto::group): a
    /// number, a `$` inside a name, or more than the limit are refused
    /// before anything is asked or stored.
    #[test]
    fn policy_groups_follow_the_contract() {
        let w = world();
        let set = |groups: Vec<String>| {
            w.rt.block_on(
                w.admin
                    .set_policy(&root(), true, groups, String::new(), Vec::new()),
            )
        };
        for bad in ["1000", "st$ff", "..", ""] {
            assert!(
                matches!(set(vec![bad.into()]), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
        let many = (0..=group::MAX_POLICY_GROUPS)
            .map(|i| format!("g{i}"))
            .collect();
        assert!(matches!(set(many), Err(Error::InvalidInput(_))));
        assert!(set(vec!["staff".into(), "wheel$".into()]).is_ok());
    }
}
