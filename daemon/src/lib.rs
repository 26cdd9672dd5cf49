//! twofactord as a library. The folders are the layers, and arrows only
//! point down (docs/architecture.md; `scripts/check-layers` enforces it):
//!
//! - [`api`]: the D-Bus faces (`Login1` with the login state machine,
//!   `Account1`, `Admin1`), the bus wiring, and the login socket
//!   (`Login1` peer to peer, with its own limits);
//! - [`services`]: the capabilities the faces are handed (password
//!   re-checks, the hashing pool, the outbox, the user directory);
//! - [`rules`]: synchronous functions over the store, one file per table
//!   or concept;
//! - [`store`]: the SQLite and PostgreSQL engines, the writer and readers;
//! - [`adapters`]: the outside world (SMTP, syslog, PAM, NSS, sealing,
//!   google-authenticator files, `/proc`, the login socket's listener).
//!
//! [`config`], [`args`], [`clock`] and [`random`] are plain values every
//! layer may read. `main.rs` wires the layers to the bus; tests and
//! benchmarks use them directly.

pub mod adapters;

pub mod api;
pub mod args;
pub mod blocking;
pub mod clock;
pub mod config;
pub mod message;
pub mod origin;
pub mod random;
pub mod rules;
pub mod services;
pub mod store;
