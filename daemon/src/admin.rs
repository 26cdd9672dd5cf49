//! `Admin1`: the mandatory policy, who has 2FA, resets with recovery codes,
//! unlocking, and importing google-authenticator files.
//!
//! Callers: uid 0, or members of `admin_group`. A non-root administrator
//! gives their own password (through `twofactor-reauth`) for every change;
//! reading needs no password. Every change is audited with who, what and
//! whom.

use crate::accounts;
use crate::audit::Event;
use crate::backup_codes::{self, Code};
use crate::config::{valid_date, valid_group_name};
use crate::core::{Caller, Core};
use crate::google_auth::{self, ImportError};
use crate::policy;
use crate::ratelimit;
use crate::recovery;
use crate::totp::{self, STEP_SECONDS};
use crate::users::plausible_name;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::sync::Arc;
use twofactor_proto::error::Error;
use twofactor_proto::types::{ImportReport, Policy, Recovery, UserReport};
use zeroize::Zeroizing;

pub struct Admin {
    core: Arc<Core>,
}

/// What a caller asks for: to look, or to change (which needs the
/// password of a non-root administrator).
enum Intent {
    Read,
    Change(Zeroizing<Vec<u8>>),
}

impl Admin {
    pub fn new(core: Arc<Core>) -> Self {
        Admin { core }
    }

    /// The administrator's name, if the caller is one (and, for a change by
    /// a non-root administrator, gave the right password).
    async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        intent: Intent,
    ) -> Result<String, Error> {
        if caller.uid == 0 {
            return Ok("root".into());
        }
        let name = self.core.users.name_of(caller.uid);
        let group = &self.core.config.admin_group;
        let admin = match &name {
            Some(n) if !group.is_empty() => self.core.users.groups_of(n).contains(group),
            _ => false,
        };
        let Some(name) = name.filter(|_| admin) else {
            self.core.audit.log(Event::Denied {
                uid: caller.uid,
                action,
            });
            return Err(Error::PermissionDenied(
                "administrators only: root, or members of the configured admin_group".into(),
            ));
        };
        if let Intent::Change(password) = intent {
            self.core.check_password(&name, password, action).await?;
        }
        Ok(name)
    }

    pub async fn get_policy(&self, caller: &Caller) -> Result<Policy, Error> {
        self.authorize(caller, "admin-get-policy", Intent::Read)
            .await?;
        let initial = self.core.config.policy.clone();
        self.core
            .store
            .run(move |c| policy::get(c, &initial))
            .await
            .map_err(|e| self.core.internal("admin-get-policy", &e.to_string()))
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
        if let Some(bad) = groups.iter().find(|g| !valid_group_name(g)) {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a valid group name",
                bad.chars().take(64).collect::<String>()
            )));
        }
        if groups.len() > 256 {
            return Err(Error::InvalidInput("too many groups".into()));
        }
        if !from.is_empty() && !valid_date(&from) {
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
            updated_at: self.core.clock.now(),
        };
        let stored = policy.clone();
        self.core
            .store
            .run(move |c| policy::set(c, &stored))
            .await
            .map_err(|e| self.core.internal("admin-set-policy", &e.to_string()))?;
        self.core.audit.log(Event::PolicySet {
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
            .core
            .users
            .human_users()
            .into_iter()
            .map(|(n, u)| (n, Some(u)))
            .collect();
        let known: Vec<String> = self
            .core
            .store
            .run(|c| {
                let mut st = c.prepare("SELECT user FROM accounts ORDER BY user")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await
            .map_err(|e| self.core.internal("admin-list-users", &e.to_string()))?;
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
        let now = self.core.clock.now();
        let initial = self.core.config.policy.clone();
        let wanted = names.clone();
        let (rows, policy) = self
            .core
            .store
            .run(move |c| {
                let mut rows = Vec::with_capacity(wanted.len());
                for user in &wanted {
                    rows.push(row(c, user, now)?);
                }
                Ok((rows, policy::get(c, &initial)?))
            })
            .await
            .map_err(|e| self.core.internal("admin-report", &e.to_string()))?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let uid = self.core.users.uid_of(&r.user);
                r.known_to_system = uid.is_some();
                r.uid = uid.unwrap_or(0);
                r.policy_applies = r.known_to_system
                    && policy::applies_to_user(self.core.users.as_ref(), &r.user, &policy, now)
                        == policy::Applies::Now;
                r
            })
            .collect())
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
        if self.core.users.uid_of(user).is_none() {
            return Err(no_user(user));
        }
        let code = recovery::generate(self.core.rng.as_ref())
            .map_err(|e| self.core.internal("admin-reset", &e.to_string()))?;
        let hash = self.hash(&code, "admin-reset").await?;
        let now = self.core.clock.now();
        let (u, b) = (user.to_string(), by.clone());
        self.core
            .store
            .run(move |c| {
                accounts::ensure(c, &u, now)?;
                totp::remove(c, &u)?;
                backup_codes::remove_all(c, &u)?;
                ratelimit::record_success(c, &u)?;
                recovery::replace(c, &u, &hash, now, &b)
            })
            .await
            .map_err(|e| self.core.internal("admin-reset", &e.to_string()))?;
        self.core.audit.log(Event::Reset { by: &by, user });
        Ok(Recovery {
            code: code.display(),
            expires: now + recovery::VALID_SECONDS,
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
        let u = user.to_string();
        self.core
            .store
            .run(move |c| ratelimit::record_success(c, &u))
            .await
            .map_err(|e| self.core.internal("admin-unlock", &e.to_string()))?;
        self.core.audit.log(Event::Unlock { by: &by, user });
        Ok(())
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
        if self.core.users.uid_of(user).is_none() {
            return Err(no_user(user));
        }
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
        for (user, _) in self.core.users.human_users() {
            let has_file = self
                .core
                .users
                .home_of(&user)
                .map(|h| h.join(".google_authenticator"))
                .is_some_and(|p| std::fs::symlink_metadata(p).is_ok());
            if has_file {
                reports.push(self.import_one(&by, &user, "").await);
            }
        }
        Ok(reports)
    }

    /// Imports one user's file; every outcome is a report, never an error.
    async fn import_one(&self, by: &str, user: &str, path: &str) -> ImportReport {
        let mut report = ImportReport {
            user: user.to_string(),
            ..ImportReport::default()
        };
        let (Some(uid), Some(home)) = (self.core.users.uid_of(user), self.core.users.home_of(user))
        else {
            report.message = "no such user".into();
            return report;
        };
        let path = if path.is_empty() {
            home.join(".google_authenticator")
        } else {
            std::path::PathBuf::from(path)
        };
        let shown = path.display().to_string();
        let parsed = tokio::task::spawn_blocking(move || {
            google_auth::read(&path, uid).and_then(|text| {
                let text = Zeroizing::new(text);
                google_auth::parse(&text, &shown)
            })
        })
        .await
        .unwrap_or_else(|e| Err(ImportError::Unreadable(String::new(), e.to_string())));
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                report.message = e.to_string();
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
        let now = self.core.clock.now();
        let count = hashed.len() as u32;
        let u = user.to_string();
        let secret = parsed.secret;
        let stored = self
            .core
            .store
            .run(move |c| {
                if totp::is_enrolled(c, &u)? {
                    return Ok(false);
                }
                accounts::ensure(c, &u, now)?;
                // Codes of the current and earlier steps may already have
                // been used with google-authenticator: accept only later ones.
                totp::activate(c, &u, &secret, now.div_euclid(STEP_SECONDS), now)?;
                if !hashed.is_empty() {
                    backup_codes::replace_set(c, &u, &hashed, now)?;
                }
                recovery::remove(c, &u)?;
                Ok(true)
            })
            .await;
        match stored {
            Ok(true) => {
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
                self.core.audit.log(Event::Import {
                    by,
                    user,
                    scratch_codes: count,
                });
            }
            Ok(false) => {
                report.message =
                    "already has an authenticator app in twofactor; not changed".into();
            }
            Err(e) => {
                self.core.internal("admin-import", &e.to_string());
                report.message = "internal error; nothing imported".into();
            }
        }
        report
    }

    async fn hash(&self, code: &Code, context: &str) -> Result<String, Error> {
        let _slot = self
            .core
            .hash_slots
            .acquire()
            .await
            .map_err(|e| self.core.internal(context, &e.to_string()))?;
        let core = self.core.clone();
        let code = code.clone();
        tokio::task::spawn_blocking(move || core.hasher.hash(&code, core.rng.as_ref()))
            .await
            .map_err(|e| self.core.internal(context, &e.to_string()))?
            .map_err(|e| self.core.internal(context, &e.to_string()))
    }
}

fn no_user(user: &str) -> Error {
    Error::NotFound(format!(
        "no user {:?} on this system",
        user.chars().take(64).collect::<String>()
    ))
}

/// The stored part of a report.
fn row(c: &Connection, user: &str, now: i64) -> rusqlite::Result<UserReport> {
    let s = accounts::status(c, user, now)?;
    Ok(UserReport {
        user: s.user,
        methods: s.methods,
        backup_codes_left: s.backup_codes_left,
        preferred: s.preferred,
        last_method: s.last_method,
        last_login: s.last_login,
        locked_until: s.locked_until,
        failures: s.failures,
        recovery_pending: recovery::pending(c, user, now)?.is_some(),
        ..UserReport::default()
    })
}
