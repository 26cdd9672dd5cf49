//! twofactord as a library: the daemon's parts, one module per concept,
//! each owning its tables and rules. `main.rs` wires them to the bus; tests
//! and benchmarks use them directly.

pub mod account;
pub mod accounts;
pub mod admin;
pub mod args;
pub mod audit;
pub mod backup_codes;
pub mod bus;
pub mod clock;
pub mod config;
pub mod core;
pub mod devices;
pub mod email;
pub mod google_auth;
pub mod login;
pub mod mail;
pub mod methods;
pub mod notices;
pub mod policy;
pub mod qr;
pub mod random;
pub mod ratelimit;
pub mod reauth;
pub mod recovery;
pub mod sealing;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod totp;
pub mod users;
