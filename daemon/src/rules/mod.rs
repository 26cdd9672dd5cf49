//! The rules: synchronous functions over a store connection ([`Db`]), one
//! file per table or concept. A rule never sees a D-Bus face, a service
//! or an adapter; what it needs from outside comes in as a value, and what
//! should happen outside (a mail, an audit line) goes back as one.
//!
//! [`Db`]: crate::store::Db

pub mod account_view;
pub mod backup_codes;
pub mod bookkeeping;
pub mod email_codes;
pub mod fleet_hosts;
pub mod google_authenticator;
pub mod methods;
pub mod policy;
pub mod protected;
pub mod ratelimit;
pub mod recovery_codes;
pub mod security_keys;
pub mod ssh_keys;
pub mod totp;
pub mod trusted_devices;
