//! The D-Bus contract of twofactor: names, signatures, limits and the
//! rules of values both sides check (group names, dates), the login step
//! type, account status, error names and (with the `zbus` feature) typed
//! proxies and errors. A change to the contract is a change to this crate.
//!
//! The interfaces are also written down as introspection XML in
//! `proto/interfaces/`; a test compares the daemon's served interfaces with
//! those files.

pub mod date;
pub mod group;
pub mod key;
pub mod names;
pub mod signature;
pub mod step;
pub mod types;
pub mod wire;

#[cfg(feature = "zbus")]
pub mod error;
#[cfg(feature = "zbus")]
pub mod proxy;

pub use step::{Action, MessageKind, Step, WireStep};
pub use types::AccountStatus;
