//! The user directory: name-service look-ups (passwd, groups, shadow:
//! possibly LDAP or SSSD) run as blocking work ([`crate::blocking`]), so
//! that a slow directory never stalls the async workers that serve every
//! other login.

use crate::adapters::nss::{Shadow, Users};
use crate::adapters::syslog::Audit;
use crate::rules::trusted_devices;
use crate::store::{Db, DbResult, Store, StoreError};
use std::sync::Arc;
use twofactor_proto::error::Error;

#[derive(Clone)]
pub struct Directory {
    users: Arc<dyn Users>,
    store: Store,
    audit: Arc<Audit>,
}

/// What [`Directory::resolve_then_read`] found: the account, as (canonical
/// name, uid), and what was read for it (None: no account, no read).
pub struct Resolved<R> {
    pub account: Option<(String, u32)>,
    pub facts: Option<Result<R, StoreError>>,
}

impl Directory {
    pub fn new(users: Arc<dyn Users>, store: Store, audit: Arc<Audit>) -> Self {
        Directory {
            users,
            store,
            audit,
        }
    }

    /// The same directory over another name service (what a fleet's host
    /// reported for one login).
    pub fn reported_by(&self, users: Arc<dyn Users>) -> Directory {
        Directory {
            users,
            store: self.store.clone(),
            audit: self.audit.clone(),
        }
    }

    /// Runs `f` against the name service as blocking work.
    pub async fn lookup<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Users) -> T + Send + 'static,
    {
        let users = self.users.clone();
        crate::blocking::run(move || f(users.as_ref()))
            .await
            .map_err(|e| self.audit.internal("name-service", &e.to_string()))
    }

    /// What the shadow database says of `user`'s password now, as the
    /// trusted-device rule records and compares it
    /// ([`trusted_devices::Password`]). An error when the name service
    /// could not say: the caller uses no trust and gives none.
    pub async fn password_of(&self, user: &str) -> Result<trusted_devices::Password, String> {
        let user = user.to_string();
        self.lookup(move |users| users.shadow_of(&user))
            .await
            .map_err(|e| e.to_string())?
            .map(|entry| match entry {
                Some(Shadow { hash, last_change }) => {
                    trusted_devices::Password::Entry { hash, last_change }
                }
                None => trusted_devices::Password::NoEntry,
            })
            .map_err(|e| e.to_string())
    }

    /// The account `name` stands for, as (canonical name, uid); see
    /// [`Users::canonical`].
    pub async fn resolve(&self, name: &str) -> Result<Option<(String, u32)>, Error> {
        let name = name.to_string();
        self.lookup(move |users| users.canonical(&name)).await
    }

    /// [`Directory::resolve`], then, for a name that stands for an
    /// account, the read `read` makes for its canonical name: in one
    /// blocking job where the store allows ([`Store::read_after`]). A name
    /// that is not plausible is not looked up. The read's own failure is
    /// returned apart, so that the caller can decide on the account first.
    pub async fn resolve_then_read<R, G>(
        &self,
        name: &str,
        read: impl FnOnce(&str) -> G + Send + 'static,
    ) -> Result<Resolved<R>, Error>
    where
        R: Send + 'static,
        G: FnOnce(&Db) -> DbResult<R> + Send + 'static,
    {
        let (name, users) = (name.to_string(), self.users.clone());
        let (account, facts) = self
            .store
            .read_after(move || {
                let account = users.canonical(&name);
                let read = account.as_ref().map(|(canonical, _)| read(canonical));
                (account, read)
            })
            .await
            .map_err(|e| self.audit.internal("name-service", &e.to_string()))?;
        Ok(Resolved { account, facts })
    }
}
